//! The HTTP side every service shares: ops routes (`/healthz`, `/readyz`, `/metrics`), request
//! spans joined to the caller's trace, latency metrics by route, body limits, a timeout and a
//! bound on requests in progress (more are shed), problem+json fallbacks, a handler's panic
//! answered as a logged 500, and a server that drains in-flight requests on shutdown.

pub use crate::readiness::{Liveness, Readiness, ReadinessCheck};
use crate::{Problem, telemetry};
use axum::{
    Json, Router,
    extract::{DefaultBodyLimit, MatchedPath, Request, State},
    http::{Method, StatusCode, Uri},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use std::{
    sync::{Arc, OnceLock},
    time::{Duration, Instant},
};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower_http::{catch_panic::CatchPanicLayer, trace::TraceLayer};

/// Largest request body any route accepts.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Buckets of `consumer_batch_messages`: how many messages a consumer applied together.
const BATCH_SIZES: [f64; 8] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];

/// The global Prometheus recorder, installed on first use. Every histogram has buckets, so
/// quantiles can be taken across replicas (`histogram_quantile`).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // The first matcher that matches a name picks its buckets: the named ones first.
            let builder = PrometheusBuilder::new()
                // A saga lives from its request to its payment or its expiry: minutes.
                .set_buckets_for_metric(
                    Matcher::Full("saga_duration_seconds".into()),
                    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0],
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("consumer_batch_messages".into()), &BATCH_SIZES)
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Suffix("duration_seconds".into()),
                        &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0],
                    )
                })
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
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(readiness)
}

/// 200 while every background task runs; 503 naming those that died (the process is then
/// stopping, or should be replaced).
async fn healthz(State(readiness): State<Readiness>) -> Response {
    let dead = readiness.liveness.dead();
    if dead.is_empty() {
        return Json(json!({"status": "ok"})).into_response();
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "failing", "deadTasks": dead}))).into_response()
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
pub fn json_route<T: serde::Serialize + Send + Sync + 'static>(path: &str, doc: T) -> Router {
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
    json_route(&format!("/openapi/{service}.json"), doc)
}

/// `GET /openapi.json` (the document of every service) and `GET /docs/` (Swagger UI over it,
/// its assets built into the binary: the page works offline and loads nothing from elsewhere).
pub fn docs_router(doc: utoipa::openapi::OpenApi) -> Router {
    Router::from(utoipa_swagger_ui::SwaggerUi::new("/docs").url("/openapi.json", doc))
}

/// Listens on `addr` with a deep accept queue: the clients of a sale's opening connect in a
/// burst of thousands, and a queue as short as tokio's default (1,024) drops the rest, which
/// then try again only a second or more later. The kernel caps it at `net.core.somaxconn`.
pub fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket =
        if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_QUEUE)
}

/// The accept queue [`listen`] asks for.
const ACCEPT_QUEUE: u32 = 16_384;

/// How much one process takes on over HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// The longest a request may run (`TICKETING_HTTP_TIMEOUT_SECS`, default 15, more than the
    /// longest `Prefer: wait`); then it is abandoned and answered 503 `REQUEST_TIMEOUT`.
    pub timeout: Duration,
    /// Requests in progress at once (`TICKETING_HTTP_MAX_IN_FLIGHT`, default 1024); one more
    /// is shed at once with 503 `OVERLOADED` rather than queued behind them.
    pub max_in_flight: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(15), max_in_flight: 1024 }
    }
}

impl crate::config::Settings for HttpLimits {
    fn read(vars: &mut crate::config::Vars<'_>) -> Self {
        let default = Self::default();
        let timeout = vars.secs("TICKETING_HTTP_TIMEOUT_SECS", default.timeout.as_secs());
        if timeout <= crate::paging::MAX_WAIT {
            let longest = crate::paging::MAX_WAIT.as_secs();
            vars.fail(
                "TICKETING_HTTP_TIMEOUT_SECS",
                format!("must be more than {longest} (the longest Prefer: wait)"),
            );
        }
        let max_in_flight =
            vars.positive("TICKETING_HTTP_MAX_IN_FLIGHT", default.max_in_flight as u32) as usize;
        Self { timeout, max_in_flight }
    }
}

/// Wraps an application router with what every service gets: request spans (children of the
/// caller's `traceparent`), latency metrics by route and status, a body limit, `limits` (the ops
/// routes excepted, so that probes and scrapes still answer under load), problem+json answers
/// for unknown routes and methods, and a logged 500 problem for a handler that panics (instead
/// of a connection dropped without an answer).
pub fn finish(router: Router, limits: HttpLimits) -> Router {
    metrics_handle();
    let bound = Bound { limits, in_flight: Arc::new(Semaphore::new(limits.max_in_flight)) };
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(panicked))
        .layer(middleware::from_fn_with_state(bound, bounded))
        .layer(middleware::from_fn(track_metrics))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
}

/// [`HttpLimits`] as a process enforces them.
#[derive(Clone)]
struct Bound {
    limits: HttpLimits,
    in_flight: Arc<Semaphore>,
}

/// Sheds a request beyond the process's bound, and abandons one that runs past the timeout.
async fn bounded(State(bound): State<Bound>, req: Request, next: Next) -> Response {
    if matches!(req.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(req).await;
    }
    let Ok(permit) = bound.in_flight.try_acquire_owned() else {
        metrics::counter!("http_shed_total", "reason" => "overloaded").increment(1);
        return Problem::overloaded(
            "this process has as many requests in progress as it takes; retry in a moment",
        )
        .into_response();
    };
    // The place is held here until the handler is done (or parks): the request and its
    // extensions are dropped as soon as the handler has taken what it needs.
    let place = Arc::new(std::sync::Mutex::new(Some(permit)));
    let mut req = req;
    req.extensions_mut().insert(Parking(Some(place.clone())));
    let answered = tokio::time::timeout(bound.limits.timeout, next.run(req)).await;
    drop(place);
    match answered {
        Ok(res) => res,
        Err(_) => {
            metrics::counter!("http_shed_total", "reason" => "timeout").increment(1);
            let seconds = bound.limits.timeout.as_secs();
            Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "REQUEST_TIMEOUT",
                format!(
                    "the request ran longer than {seconds} s and was abandoned; a write it started may have \
                     happened, so retry it with the same Idempotency-Key"
                ),
            )
            .retry_after(1)
            .into_response()
        }
    }
}

/// A request's place among those in progress ([`HttpLimits::max_in_flight`]). A handler about
/// to wait for something that costs nothing while it waits (a waiting-room token's turn, under
/// `Prefer: wait`) parks: it gives its place up, so that a hundred thousand users waiting for
/// their turn do not shed the requests that do work. The wait stays bounded by the timeout.
#[derive(Clone, Default)]
pub struct Parking(Option<Arc<std::sync::Mutex<Option<tokio::sync::OwnedSemaphorePermit>>>>);

impl Parking {
    /// Gives the request's place up (once; nothing outside [`finish`]'s layers).
    pub fn park(&self) {
        if let Some(place) = &self.0 {
            place.lock().unwrap_or_else(|e| e.into_inner()).take();
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Parking {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(parts.extensions.get::<Parking>().cloned().unwrap_or_default())
    }
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

/// A `text/event-stream` answer of `events`, kept alive with comments while nothing happens.
/// `X-Accel-Buffering: no` asks nginx to pass each event on at once instead of buffering them.
pub fn event_stream<S>(events: S) -> axum::response::Response
where
    S: futures::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>> + Send + 'static,
{
    use axum::response::{
        IntoResponse,
        sse::{KeepAlive, Sse},
    };
    ([("x-accel-buffering", "no")], Sse::new(events).keep_alive(KeepAlive::default())).into_response()
}

/// What a panic said: its payload when that is a message, as `panic!` makes it.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message")
}

/// A handler's panic, logged, answered as an opaque 500 problem with a reference to quote.
fn panicked(payload: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic_message(&*payload);
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
    // The peer's address reaches the handlers (rate limits per client address).
    let app = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    #[test]
    fn every_histogram_has_buckets_that_fit_what_it_measures() {
        let handle = metrics_handle();
        metrics::histogram!("saga_duration_seconds", "status" => "CONFIRMED").record(90.0);
        metrics::histogram!("consumer_batch_messages", "consumer" => "c").record(3.0);
        metrics::histogram!("http_request_duration_seconds", "route" => "/r").record(0.003);
        let text = handle.render();
        // Minutes for a saga, counts for a batch, milliseconds for a request.
        assert!(text.contains(r#"saga_duration_seconds_bucket{status="CONFIRMED",le="1200"} 1"#), "{text}");
        assert!(text.contains(r#"saga_duration_seconds_bucket{status="CONFIRMED",le="60"} 0"#), "{text}");
        assert!(text.contains(r#"consumer_batch_messages_bucket{consumer="c",le="4"} 1"#), "{text}");
        assert!(text.contains(r#"http_request_duration_seconds_bucket{route="/r",le="0.005"} 1"#), "{text}");
    }

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
        let (status, kind, body) =
            answer(finish(Router::new().route("/boom", get(boom)), HttpLimits::default()), "/boom").await;
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

    /// A router whose `/slow` waits until `go` is notified, finished with `limits`.
    fn slow(limits: HttpLimits, go: Arc<tokio::sync::Notify>) -> Router {
        let router = Router::new()
            .route(
                "/slow",
                get(move || async move {
                    go.notified().await;
                    "done"
                }),
            )
            .merge(ops_router(Readiness::default()));
        finish(router, limits)
    }

    #[tokio::test]
    async fn a_request_beyond_those_in_progress_is_shed_with_retry_after_but_probes_answer() {
        let go = Arc::new(tokio::sync::Notify::new());
        let limits = HttpLimits { timeout: Duration::from_secs(30), max_in_flight: 1 };
        let router = slow(limits, go.clone());
        let first = tokio::spawn(router.clone().oneshot(Request::get("/slow").body(Body::empty()).unwrap()));
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let res = router.clone().oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        let (status, kind, body) = answer(router.clone(), "/slow").await;
        assert_eq!(
            (status, kind.as_deref(), body["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some(crate::problem::PROBLEM_JSON), Some("OVERLOADED"))
        );
        let (status, _, _) = answer(router.clone(), "/healthz").await;
        assert_eq!(status, StatusCode::OK, "probes are not shed");
        go.notify_one();
        assert_eq!(first.await.unwrap().unwrap().status(), StatusCode::OK);
        go.notify_one();
        let res = router.oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "room again once the first is done");
    }

    #[tokio::test]
    async fn a_parked_request_gives_its_place_to_the_next() {
        let go = Arc::new(tokio::sync::Notify::new());
        let limits = HttpLimits { timeout: Duration::from_secs(30), max_in_flight: 1 };
        let wait = go.clone();
        let router = finish(
            Router::new().route(
                "/wait",
                get(move |parking: Parking| async move {
                    parking.park();
                    wait.notified().await;
                    "done"
                }),
            ),
            limits,
        );
        let parked = tokio::spawn(router.clone().oneshot(Request::get("/wait").body(Body::empty()).unwrap()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        let second = tokio::spawn(router.clone().oneshot(Request::get("/wait").body(Body::empty()).unwrap()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        go.notify_waiters();
        assert_eq!(parked.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(second.await.unwrap().unwrap().status(), StatusCode::OK, "not shed: the first had parked");
    }

    #[tokio::test]
    async fn a_request_that_runs_past_the_timeout_is_abandoned_with_a_problem() {
        let limits = HttpLimits { timeout: Duration::from_millis(100), max_in_flight: 8 };
        let router = slow(limits, Arc::new(tokio::sync::Notify::new()));
        let res = router.clone().oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        let (status, _, body) = answer(router, "/slow").await;
        assert_eq!(
            (status, body["code"].as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, Some("REQUEST_TIMEOUT"))
        );
    }

    #[test]
    fn the_limits_are_settings_and_the_timeout_outlasts_the_longest_wait() {
        let read = |vars: &'static [(&'static str, &'static str)]| {
            crate::config::read_settings::<HttpLimits>(&|k| {
                vars.iter().find(|(name, _)| *name == k).map(|(_, v)| (*v).to_owned())
            })
        };
        assert_eq!(read(&[]).unwrap(), HttpLimits::default());
        let set =
            read(&[("TICKETING_HTTP_TIMEOUT_SECS", "30"), ("TICKETING_HTTP_MAX_IN_FLIGHT", "64")]).unwrap();
        assert_eq!(set, HttpLimits { timeout: Duration::from_secs(30), max_in_flight: 64 });
        let err = read(&[("TICKETING_HTTP_TIMEOUT_SECS", "10"), ("TICKETING_HTTP_MAX_IN_FLIGHT", "0")])
            .unwrap_err();
        assert!(
            err.names("TICKETING_HTTP_TIMEOUT_SECS") && err.names("TICKETING_HTTP_MAX_IN_FLIGHT"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn health_fails_naming_a_background_task_that_died() {
        let readiness = Readiness::default();
        let router = ops_router(readiness.clone());
        assert_eq!(answer(router.clone(), "/healthz").await.0, StatusCode::OK);
        readiness.liveness.died("relay[seat]", "panicked: boom");
        let (status, _, body) = answer(router, "/healthz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["deadTasks"], json!(["relay[seat]: panicked: boom"]));
    }
}
