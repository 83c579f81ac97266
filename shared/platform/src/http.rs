//! The HTTP side every service shares: ops routes (`/healthz`, `/readyz`, `/metrics`), request
//! spans joined to the caller's trace, latency metrics by route, body limits, problem+json
//! fallbacks, and a server that drains in-flight requests on shutdown.

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
use tower_http::trace::TraceLayer;

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
    let checks: serde_json::Map<_, _> = results
        .into_iter()
        .map(|(name, r)| (name.to_owned(), json!(r.err().unwrap_or_else(|| "ok".to_owned()))))
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
/// caller's `traceparent`), latency metrics by route and status, a body limit, and problem+json
/// answers for unknown routes and methods.
pub fn finish(router: Router) -> Router {
    metrics_handle();
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
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
