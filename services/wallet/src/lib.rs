//! wallet: prepaid wallets. Users top them up over HTTP; `PaymentRequested` debits atomically
//! (never below zero, at most one payment per reservation, never after `payBy`) and
//! `RefundRequested` gives a payment back exactly once.

mod domain;
mod error;
mod handlers;
mod http;
mod store;

use axum::Router;
use contracts::Stream;
use messaging::{PgInbox, Runtime};
use servicekit::{Service, StartError};

/// The service name (consumer names, event `source`).
pub const NAME: &str = "wallet";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "wallet";

/// What the HTTP handlers need: the database, the outbox and the JWT keys.
pub type AppState = servicekit::ServiceState;

/// The wallet service.
pub struct Wallet;

impl Service for Wallet {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "prepaid wallets: charges, payments, refunds";
    type Api = http::Api;

    /// Starts the relay and the payment consumer.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let state = AppState::new(rt, SCHEMA);
        rt.spawn_relay(SCHEMA);
        rt.spawn_pruner(SCHEMA);
        rt.spawn_consumer(
            rt.declared(NAME, Stream::Reservation)?,
            PgInbox::publishing(rt.db.clone(), &state.outbox, handlers::payments(state.outbox.clone())),
        )?;
        Ok(http::routes().with_state(state))
    }
}
