//! external-data: hands every completed reservation to the external data platform. The consumer
//! only records a PENDING delivery (so consumption never waits on the platform); a delivery
//! worker POSTs each one, signed with HMAC-SHA256, at least once, retrying with exponential
//! backoff and jitter until it is DELIVERED or its last attempt makes it FAILED. Admins list the
//! delivery log and send a FAILED delivery again.

mod deliverer;
mod destination;
mod domain;
mod handlers;
mod http;
mod store;

pub use deliverer::{HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
pub use destination::Destination;
pub use domain::{DeliveryId, DeliverySettings, DeliveryStatus};

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{ConsumerSpec, MessagingError, PgInbox, Runtime};
use platform::auth::JwtKeys;
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
    /// Its settings are wrong (every problem, each naming its variable).
    #[error(transparent)]
    Settings(#[from] platform::ConfigError),
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// What the HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub jwt: JwtKeys,
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
    let Destination(target) = rt.config.settings()?;
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
