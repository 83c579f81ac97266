//! The web pages (`/`): the buyer's (sign in, a sale's waiting room and live seat map, a
//! reservation's live saga, the wallet) and the organizer's (concerts and schedules, sales,
//! failed deliveries). Three files under `web/`, built into the binary: every process serves
//! them, as it serves the API's documents, so behind the ingress they come from the catch-all
//! route. They call the public API only.

use axum::{
    Router,
    http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE},
    response::IntoResponse,
    routing::get,
};

const INDEX: &str = include_str!("../../web/index.html");
const SCRIPT: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/app.css");

/// Pages and scripts from this origin alone, nothing inline, no frames.
const POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/// `GET /`, `GET /app/app.js`, `GET /app/app.css`.
pub fn router() -> Router {
    let file = |body: &'static str, kind: &'static str| {
        move || async move {
            ([(CONTENT_TYPE, kind), (CACHE_CONTROL, "no-cache"), (CONTENT_SECURITY_POLICY, POLICY)], body)
                .into_response()
        }
    };
    Router::new()
        .route("/", get(file(INDEX, "text/html; charset=utf-8")))
        .route("/app/app.js", get(file(SCRIPT, "text/javascript; charset=utf-8")))
        .route("/app/app.css", get(file(STYLE, "text/css; charset=utf-8")))
}
