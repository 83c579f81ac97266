//! The HTTP side every service shares: ops routes (`/healthz`, `/readyz`, `/metrics`), request
//! spans joined to the caller's trace, latency metrics by route, body limits, problem+json
//! fallbacks, a handler's panic answered as a logged 500, and a server that drains in-flight
//! requests on shutdown.

pub use crate::readiness::{Readiness, ReadinessCheck};
use crate::{Problem, telemetry};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{Method, StatusCode, Uri},
    middleware::{self, Next},
    response::{Html, IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

/// Largest request body any route accepts.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The global Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("duration_seconds".into()),
                    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0],
                )
                .unwrap_or_else(|_| PrometheusBuilder::new());
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; the handle then renders nothing.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// `/healthz`, `/readyz` and `/metrics`.
pub fn ops_router(readiness: Readiness) -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(readiness)
}

async fn readyz(State(readiness): State<Readiness>) -> Response {
    let results = readiness.run().await;
    let ready = results.iter().all(|(_, r)| r.is_ok());
    // Why a dependency failed (an address, a driver's message) goes to the log, not to callers.
    let checks: serde_json::Map<_, _> = results
        .into_iter()
        .map(|(name, r)| {
            let state = match r {
                Ok(()) => "ok",
                Err(reason) => {
                    tracing::warn!(dependency = name, %reason, "not ready");
                    "unavailable"
                }
            };
            (name.to_owned(), json!(state))
        })
        .collect();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(json!({"status": if ready { "ready" } else { "unavailable" }, "checks": checks})))
        .into_response()
}

async fn metrics_text() -> impl IntoResponse {
    let handle = metrics_handle();
    handle.run_upkeep();
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
}

/// Serves a document as JSON at `path`.
fn document_route(path: &str, doc: utoipa::openapi::OpenApi) -> Router {
    let doc = Arc::new(doc);
    Router::new().route(
        path,
        get(move || {
            let doc = Arc::clone(&doc);
            async move { Json(&*doc).into_response() }
        }),
    )
}

/// `GET /openapi/<service>.json`: one service's own OpenAPI document.
pub fn openapi_router(service: &str, doc: utoipa::openapi::OpenApi) -> Router {
    document_route(&format!("/openapi/{service}.json"), doc)
}

/// The `/docs` page: Swagger UI (from the `swagger-ui-dist` CDN) over `/openapi.json`.
pub const DOCS_PAGE: &str = include_str!("docs.html");

/// `GET /openapi.json` (the document of everything the process serves) and `GET /docs`
/// (Swagger UI over it).
pub fn docs_router(doc: utoipa::openapi::OpenApi) -> Router {
    document_route("/openapi.json", doc).route("/docs", get(|| async { Html(DOCS_PAGE) }))
}

/// Wraps an application router with what every service gets: request spans (children of the
/// caller's `traceparent`), latency metrics by route and status, a body limit, problem+json
/// answers for unknown routes and methods, and a logged 500 problem for a handler that panics
/// (instead of a connection dropped without an answer).
pub fn finish(router: Router) -> Router {
    metrics_handle();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn(track_metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

fn request_span(req: &Request) -> tracing::Span {
    let route = req.extensions().get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or("unmatched");
    let span = tracing::info_span!("http", method = %req.method(), route, otel.kind = "server");
    telemetry::set_parent_from(
        &span,
        req.headers().iter().filter_map(|(k, v)| v.to_str().ok().map(|v| (k.as_str(), v))),
    );
    span
}

async fn track_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned());
    let method = req.method().to_string();
    let res = next.run(req).await;
    let route = route.unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16().to_string();
    metrics::histogram!("http_request_duration_seconds", "method" => method.clone(), "route" => route.clone(), "status" => status.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!("http_requests_total", "method" => method, "route" => route, "status" => status)
        .increment(1);
    res
}

/// A handler's panic, logged, answered as an opaque 500 problem with a reference to quote.
fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    let cause = std::io::Error::other(format!("handler panicked: {message}"));
    Problem::internal(&cause).into_response()
}

async fn not_found(method: Method, uri: Uri) -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "ROUTE_NOT_FOUND", format!("no route for {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// Serves `router` until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn answer(router: Router, path: &str) -> (StatusCode, Option<String>, serde_json::Value) {
        let res = router.oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = res.status();
        let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body = axum::body::to_bytes(res.into_body(), BODY_LIMIT).await.unwrap();
        (status, kind, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn a_handler_that_panics_is_answered_with_a_500_problem() {
        async fn boom() -> &'static str {
            panic!("secret detail of the panic")
        }
        let (status, kind, body) = answer(finish(Router::new().route("/boom", get(boom))), "/boom").await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(kind.as_deref(), Some(crate::problem::PROBLEM_JSON));
        assert_eq!(body["code"], "INTERNAL");
        assert!(!body.to_string().contains("secret detail"), "the panic's message stays in the log: {body}");
    }

    struct Down;

    impl ReadinessCheck for Down {
        fn name(&self) -> &'static str {
            "postgres"
        }

        fn check(&self) -> futures::future::BoxFuture<'_, Result<(), String>> {
            Box::pin(async { Err("connection refused: postgres://ticketing:hunter2@10.0.0.7/db".to_owned()) })
        }
    }

    #[tokio::test]
    async fn readiness_says_which_dependency_is_down_but_not_why() {
        let (status, _, body) =
            answer(ops_router(Readiness::default().with(Arc::new(Down))), "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["checks"]["postgres"], "unavailable");
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }
}
