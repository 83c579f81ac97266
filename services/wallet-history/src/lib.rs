//! wallet-history: the read side of the wallet. Every charge, payment and refund the wallet
//! announces becomes one history entry (the event id is the entry id, so a redelivered event
//! cannot add a second one), readable newest first by its owner.

mod handlers;
mod http;
mod store;

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{PgInbox, Runtime};
use platform::auth::JwtKeys;
use sea_orm::DatabaseConnection;
use servicekit::{Service, StartError};

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

/// The wallet-history service.
pub struct WalletHistory;

impl Service for WalletHistory {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "read side: each user's wallet history";
    type Api = http::Api;

    /// Starts the WALLET consumer.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        rt.spawn_consumer(
            rt.declared(NAME, Stream::Wallet)?,
            PgInbox::new(rt.db.clone(), SCHEMA, messaging::react(handlers::History)),
        )?;
        rt.spawn_pruner(SCHEMA);
        Ok(http::routes().with_state(AppState { db: rt.db.clone(), jwt: rt.config.jwt.clone() }))
    }
}
