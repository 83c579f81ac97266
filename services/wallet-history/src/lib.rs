//! wallet-history: the read side of the wallet. Every charge, payment and refund the wallet
//! announces becomes one history entry (the event id is the entry id, so a redelivered event
//! cannot add a second one), readable newest first by its owner.

mod handlers;
mod http;
mod store;

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{ConsumerSpec, PgInbox, Runtime};
use platform::auth::JwtKeys;
use sea_orm::DatabaseConnection;
use servicekit::StartError;

/// The service name (consumer names).
pub const NAME: &str = "wallet-history";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "wallet_history";

/// What the HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub jwt: JwtKeys,
}

/// The service's OpenAPI document (served at `GET /openapi/wallet-history.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

/// The history routes, and their document.
pub fn router(state: AppState) -> Router {
    servicekit::routes(NAME, http::routes().with_state(state), openapi())
}

/// Starts the WALLET consumer; returns the routes.
pub fn start(rt: &Runtime) -> Result<Router, StartError> {
    rt.spawn_consumer(
        ConsumerSpec::declared(NAME, Stream::Wallet)?,
        PgInbox::new(rt.db.clone(), SCHEMA, handlers::History),
    );
    Ok(router(AppState { db: rt.db.clone(), jwt: JwtKeys::new(&rt.config.jwt_secret) }))
}

#[cfg(test)]
mod consumer_filters {
    use super::*;
    use messaging::{Handler as _, check_filters};

    #[test]
    fn each_consumer_is_given_exactly_the_events_its_handler_takes() {
        check_filters(&ConsumerSpec::declared(NAME, Stream::Wallet).unwrap(), |k| {
            handlers::History.handles(k)
        })
        .unwrap();
    }
}
