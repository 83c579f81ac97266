//! reservation: the saga. A reservation is PENDING until the seat service answers, HELD until
//! paid (or expired, or cancelled), PAYING until the wallet answers, then CONFIRMED; every
//! failure ends FAILED/EXPIRED/CANCELLED with a ReservationFailed that releases its seats, and
//! money that arrives too late is refunded. The service owns the deadline, so a payment that
//! started in time is never cut off by the seat service.

mod domain;
mod error;
mod handlers;
mod http;
mod requests;
mod saga;
mod store;
mod sweeper;
mod waiters;

pub use domain::{Limits, Status, decide};

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{Outbox, PgInbox, Runtime, react};
use platform::{
    auth::JwtKeys, config::SagaClocks, queue_guard::QueueGate, rate_limit::RateLimit, redis_acl::RedisKeys,
};
use servicekit::{Service, StartError};
use std::time::Duration;

/// The service name (consumer names, event `source`).
pub const NAME: &str = "reservation";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "reservation";

/// What the HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub jwt: JwtKeys,
    /// The waiting-room guard of the booking routes.
    pub gate: QueueGate,
    /// Users' requests of their reservations.
    pub requests: requests::Requests,
    /// The partitions this replica keeps: a schedule of another, or a reservation of one, is
    /// misdirected here.
    pub kept: platform::partition::Kept,
}

impl platform::config::Settings for Limits {
    fn read(vars: &mut platform::config::Vars<'_>) -> Self {
        Self {
            max_seats_per_user: vars.positive("TICKETING_MAX_SEATS_PER_USER", 4),
            reservations_per_minute: vars.parsed(
                "TICKETING_MAX_RESERVATIONS_PER_MINUTE",
                20,
                "a whole number of reservations (0: no limit)",
            ),
        }
    }
}

/// The reservation service.
pub struct Reservations;

impl Service for Reservations {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "the saga: reservations, deadlines, compensations";
    /// The waiting room's tokens, which the booking routes' guard reads.
    const REDIS: RedisKeys =
        RedisKeys { read_write: &[], read_only: &["queue:token:*", "queue:rooms", "queue:room:*"] };
    type Api = http::Api;

    fn settings(config: &platform::Config) -> Result<(), platform::ConfigError> {
        config.settings::<platform::queue_guard::GateSettings>()?;
        config.settings::<platform::rate_limit::RateSettings>()?;
        config.settings::<SagaClocks>()?;
        config.settings::<Limits>().map(drop)
    }

    /// Starts the relay, the consumers and the deadline sweeper.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let gate = QueueGate::configured(rt.redis.clone(), &rt.config)?;
        let limits: Limits = rt.config.settings()?;
        let outbox = Outbox::new(SCHEMA, rt.config.prefix.clone());
        let local = saga::Local::across_replicas(rt);
        let saga = handlers::Saga { outbox: outbox.clone(), local: local.clone() };
        let publishing =
            |saga: &handlers::Saga| PgInbox::publishing(rt.db.clone(), &saga.outbox, react(saga.clone()));
        let catalog = rt.consumer(
            rt.declared(NAME, Stream::Catalog)?,
            PgInbox::publishing(rt.db.clone(), &outbox, handlers::Catalog { outbox: outbox.clone() }),
        )?;
        let seat = rt.consumer(rt.declared(NAME, Stream::Seat)?, publishing(&saga))?;
        let wallet = rt.consumer(rt.declared(NAME, Stream::Wallet)?, publishing(&saga))?;
        let card = rt.consumer(rt.declared(NAME, Stream::Payment)?, publishing(&saga))?;
        let accounts = rt.consumer(
            rt.declared(NAME, Stream::User)?,
            PgInbox::publishing(rt.db.clone(), &outbox, handlers::Accounts { outbox: outbox.clone() }),
        )?;
        rt.spawn_relay(SCHEMA);
        rt.spawn_pruner(SCHEMA);
        // Sweep often enough that a short hold (tests use seconds) is noticed promptly.
        let clocks: SagaClocks = rt.config.settings()?;
        let every = (clocks.hold / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let sweeper =
            sweeper::Sweeper { db: rt.db.clone(), outbox: outbox.clone(), clocks, local: local.clone() };
        let task_rt = rt.clone();
        // After an outage, deadlines that passed while the service was down are settled before the
        // consumers take the answers that queued up meanwhile: a payment whose answer arrives after
        // payBy + grace is refunded, never confirmed, however the restart happens to be timed.
        rt.spawn("sweeper[reservation]", async move {
            if let Err(e) = sweeper.sweep().await {
                tracing::warn!(error = %e, "first deadline sweep failed; consumers start anyway");
            }
            for consumer in [seat, wallet, card] {
                consumer.spawn(&task_rt);
            }
            catalog.spawn(&task_rt);
            accounts.spawn(&task_rt);
            sweeper.run(every, task_rt.shutdown.clone()).await;
        });
        let jwt = rt.config.jwt.clone();
        // Holding and paying (the POSTs) are rate limited per user and per client address.
        let limit = RateLimit::new("booking", &rt.config.settings()?, jwt.clone());
        Ok(limit.on(http::routes()).with_state(AppState {
            jwt,
            gate,
            requests: requests::Requests::start(rt.db.clone(), outbox, local, limits),
            kept: rt.config.kept(),
        }))
    }
}
