//! external-data: hands every completed reservation to the external data platform. The consumer
//! only records a PENDING delivery (so consumption never waits on the platform); a delivery
//! worker POSTs each one, signed with HMAC-SHA256, at least once, retrying with exponential
//! backoff and jitter until it is DELIVERED or its last attempt makes it FAILED. Admins list the
//! delivery log and send a FAILED delivery again.

mod deliverer;
mod destination;
mod domain;
mod error;
mod handlers;
mod http;
mod sender;
mod store;

pub use deliverer::{HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
pub use destination::Destination;
pub use domain::{DeliveryId, DeliverySettings, DeliveryStatus};

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{PgInbox, Runtime};
use platform::auth::JwtKeys;
use sea_orm::DatabaseConnection;
use servicekit::{Service, StartError};

/// The service name (consumer names).
pub const NAME: &str = "external-data";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "external_data";

/// What the HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub jwt: JwtKeys,
}

impl AppState {
    /// State over a runtime's connections.
    pub fn new(rt: &Runtime) -> Self {
        Self { db: rt.db.clone(), jwt: rt.config.jwt.clone() }
    }
}

/// The external-data service.
pub struct ExternalData;

impl Service for ExternalData {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "delivers completed reservations to the external data platform";
    type Api = http::Api;

    fn settings(config: &platform::Config) -> Result<(), platform::ConfigError> {
        config.settings::<Destination>().map(drop)
    }

    /// Starts the consumer and the delivery worker with the default settings.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        routes_with(rt, DeliverySettings::default())
    }
}

/// Starts the consumer and the delivery worker with `settings` (tests use tiny delays);
/// answers the admin routes.
pub fn routes_with(rt: &Runtime, settings: DeliverySettings) -> Result<Router, StartError> {
    let Destination(target) = rt.config.settings()?;
    rt.spawn_consumer(
        rt.declared(NAME, Stream::Reservation)?,
        PgInbox::new(rt.db.clone(), SCHEMA, messaging::react(handlers::Completed)),
    )?;
    rt.spawn_pruner(SCHEMA);
    rt.spawn(deliverer::TASK, deliverer::run(rt.db.clone(), target, settings, rt.shutdown.clone()));
    Ok(http::routes().with_state(AppState::new(rt)))
}
