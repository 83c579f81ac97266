//! external-data: hands every completed reservation to the external data platform. The consumer
//! only records a PENDING delivery (so consumption never waits on the platform); a delivery
//! worker POSTs each one, signed with HMAC-SHA256, at least once, retrying with exponential
//! backoff and jitter until it is DELIVERED or its last attempt makes it FAILED. Admins list the
//! delivery log and send a FAILED delivery again.

mod deliverer;
mod domain;
mod handlers;
mod http;
mod store;

pub use deliverer::{HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
pub use domain::{DeliveryId, DeliverySettings, DeliveryStatus};

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{ConsumerSpec, MessagingError, PgInbox, Runtime};
use platform::{auth::JwtKeys, config::ExternalData};
use sea_orm::DatabaseConnection;

/// The service name (consumer names).
pub const NAME: &str = "external-data";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "external_data";

/// Why the service cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Messaging(#[from] MessagingError),
    /// A setting the service cannot work with, naming its variable.
    #[error("invalid configuration: {var}: {problem}")]
    Config { var: &'static str, problem: String },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub jwt: JwtKeys,
}

impl FromRef<AppState> for JwtKeys {
    fn from_ref(state: &AppState) -> Self {
        state.jwt.clone()
    }
}

impl AppState {
    /// State over a runtime's connections.
    pub fn new(rt: &Runtime) -> Self {
        Self { db: rt.db.clone(), jwt: JwtKeys::new(&rt.config.jwt_secret) }
    }
}

/// The external-data service's OpenAPI document (served at `GET /openapi/external-data.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

/// The admin routes, and their document.
pub fn router(state: AppState) -> Router {
    servicekit::routes(NAME, http::routes().with_state(state), openapi())
}

/// Starts the consumer and the delivery worker with the default settings; returns the routes.
pub fn start(rt: &Runtime) -> Result<Router, Error> {
    start_with(rt, DeliverySettings::default())
}

/// Starts the consumer and the delivery worker with `settings` (tests use tiny delays).
pub fn start_with(rt: &Runtime, settings: DeliverySettings) -> Result<Router, Error> {
    let target = target(&rt.config.external_data)?;
    let http = reqwest::Client::builder()
        // A redirect is an answer that is not 2xx: following it would send signed data to a
        // place nobody configured.
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(settings.timeout)
        .user_agent(concat!("ticketing-external-data/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(Error::Client)?;
    rt.spawn_consumer(
        ConsumerSpec::declared(NAME, Stream::Reservation)?,
        PgInbox::new(rt.db.clone(), SCHEMA, handlers::Completed),
    );
    rt.spawn(deliverer::TASK, deliverer::run(rt.db.clone(), http, target, settings, rt.shutdown.clone()));
    Ok(router(AppState::new(rt)))
}

/// The configured platform, if any. Configuration validation already ties the secret to the URL;
/// what it cannot know is that this build's HTTP client speaks plain http only.
fn target(cfg: &ExternalData) -> Result<Option<deliverer::Target>, Error> {
    const URL: &str = "TICKETING_EXTERNAL_DATA_URL";
    const SECRET: &str = "TICKETING_EXTERNAL_DATA_SECRET";
    let Some(raw) = &cfg.url else { return Ok(None) };
    let url = reqwest::Url::parse(raw)
        .map_err(|e| Error::Config { var: URL, problem: format!("not a valid URL: {e}") })?;
    if url.scheme() != "http" {
        return Err(Error::Config {
            var: URL,
            problem: "deliveries go over plain http:// only (this build has no TLS client); \
                      reach an https:// platform through a TLS-originating proxy or sidecar"
                .to_owned(),
        });
    }
    let secret = cfg.secret.as_ref().ok_or_else(|| Error::Config {
        var: SECRET,
        problem: format!("is required when {URL} is set (every delivery is signed with it)"),
    })?;
    let signer = domain::Signer::new(secret.expose().as_bytes())
        .map_err(|e| Error::Config { var: SECRET, problem: e.to_string() })?;
    Ok(Some(deliverer::Target { url, signer }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use platform::Secret;

    fn cfg(url: Option<&str>, secret: Option<&str>) -> ExternalData {
        ExternalData { url: url.map(str::to_owned), secret: secret.map(Secret::new) }
    }

    #[test]
    fn no_url_means_no_target() {
        assert!(target(&cfg(None, None)).unwrap().is_none());
        assert!(target(&cfg(None, Some("0123456789abcdef"))).unwrap().is_none());
    }

    #[test]
    fn the_target_needs_plain_http_and_a_secret() {
        let ok = target(&cfg(Some("http://127.0.0.1:9/in"), Some("0123456789abcdef"))).unwrap().unwrap();
        assert_eq!(ok.url.as_str(), "http://127.0.0.1:9/in");
        for (url, secret, var) in [
            ("https://example.com/in", Some("0123456789abcdef"), "TICKETING_EXTERNAL_DATA_URL"),
            ("http://", Some("0123456789abcdef"), "TICKETING_EXTERNAL_DATA_URL"),
            ("http://127.0.0.1:9/in", None, "TICKETING_EXTERNAL_DATA_SECRET"),
        ] {
            match target(&cfg(Some(url), secret)) {
                Err(Error::Config { var: named, .. }) => assert_eq!(named, var, "{url}"),
                other => panic!("{url}: expected a configuration error, got {other:?}"),
            }
        }
    }
}

#[cfg(test)]
mod consumer_filters {
    use super::*;
    use messaging::{Handler as _, check_filters};

    #[test]
    fn each_consumer_is_given_exactly_the_events_its_handler_takes() {
        check_filters(&ConsumerSpec::declared(NAME, Stream::Reservation).unwrap(), |k| {
            handlers::Completed.handles(k)
        })
        .unwrap();
    }
}
