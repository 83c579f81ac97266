//! wallet: prepaid wallets. Users top them up over HTTP; `PaymentRequested` debits atomically
//! (never below zero, at most one payment per reservation, never after `payBy`) and
//! `RefundRequested` gives a payment back exactly once.

mod domain;
mod handlers;
mod http;
mod store;

use axum::Router;
use contracts::Stream;
use messaging::{ConsumerSpec, PgInbox, Runtime};
use servicekit::StartError;

/// The service name (consumer names, event `source`).
pub const NAME: &str = "wallet";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "wallet";

/// What the HTTP handlers need: the database, the outbox and the JWT keys.
pub type AppState = servicekit::ServiceState;

/// The wallet service's OpenAPI document (served at `GET /openapi/wallet.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

/// The wallet routes, and their document.
pub fn router(state: AppState) -> Router {
    servicekit::routes(NAME, http::routes().with_state(state), openapi())
}

/// Starts the relay and the payment consumer; returns the routes.
pub fn start(rt: &Runtime) -> Result<Router, StartError> {
    let state = AppState::new(rt, SCHEMA);
    rt.spawn_relay(SCHEMA);
    rt.spawn_consumer(
        ConsumerSpec::declared(NAME, Stream::Reservation)?,
        PgInbox::publishing(
            rt.db.clone(),
            &state.outbox,
            handlers::Payments { outbox: state.outbox.clone() },
        ),
    );
    Ok(router(state))
}

#[cfg(test)]
mod consumer_filters {
    use super::*;
    use messaging::{Handler as _, Outbox, check_filters};

    #[test]
    fn each_consumer_is_given_exactly_the_events_its_handler_takes() {
        let payments =
            handlers::Payments { outbox: Outbox::new(SCHEMA, contracts::Namespace::new("t").unwrap()) };
        check_filters(&ConsumerSpec::declared(NAME, Stream::Reservation).unwrap(), |k| payments.handles(k))
            .unwrap();
    }
}
