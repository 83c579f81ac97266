//! reservation: the saga. A reservation is PENDING until the seat service answers, HELD until
//! paid (or expired, or cancelled), PAYING until the wallet answers, then CONFIRMED; every
//! failure ends FAILED/EXPIRED/CANCELLED with a ReservationFailed that releases its seats, and
//! money that arrives too late is refunded. The service owns the deadline, so a payment that
//! started in time is never cut off by the seat service.

mod domain;
mod error;
mod handlers;
mod http;
mod saga;
mod store;
mod sweeper;
mod waiters;

pub use domain::{Status, decide};

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{ConsumerSpec, Outbox, PgInbox, Runtime};
use platform::{auth::JwtKeys, combine::Combiner, queue_guard::QueueGate};
use sea_orm::DatabaseConnection;
use servicekit::{Service, StartError};
use std::time::Duration;

/// The service name (consumer names, event `source`).
pub const NAME: &str = "reservation";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "reservation";

/// Writers of the requests' inserts and changes, of each: one, so that under load the
/// requests that arrive while it writes wait to be written together.
const WRITERS: usize = 1;
/// Requests written in one statement at most.
const AT_ONCE: usize = 64;

/// What the HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub jwt: JwtKeys,
    /// The waiting-room guard of the booking routes.
    pub gate: QueueGate,
    /// The schedules requests are checked against, as read so far.
    pub schedules: store::Schedules,
    /// Reservations as this process last wrote them, and requests waiting (`Prefer: wait`)
    /// for their reservation to settle.
    pub local: saga::Local,
    /// `POST /reservations`' inserts, written together when they arrive together.
    pub inserts: Combiner<store::Inserts>,
    /// Requests' changes (a payment), written together when they arrive together.
    pub saves: Combiner<saga::Saves>,
}

/// The reservation service.
pub struct Reservations;

impl Service for Reservations {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "the saga: reservations, deadlines, compensations";
    type Api = http::Api;

    fn settings(config: &platform::Config) -> Result<(), platform::ConfigError> {
        config.settings::<platform::queue_guard::GateSettings>().map(drop)
    }

    /// Starts the relay, the consumers and the deadline sweeper.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let gate = QueueGate::configured(rt.redis.clone(), &rt.config)?;
        let outbox = Outbox::new(SCHEMA, rt.config.prefix.clone());
        let local = saga::Local::across_replicas(rt);
        let saga = handlers::Saga { outbox: outbox.clone(), local: local.clone() };
        let publishing =
            |saga: &handlers::Saga| PgInbox::publishing(rt.db.clone(), &saga.outbox, saga.clone());
        let catalog = rt.consumer(
            ConsumerSpec::declared(NAME, Stream::Catalog)?,
            PgInbox::new(rt.db.clone(), SCHEMA, handlers::Catalog),
        )?;
        let seat = rt.consumer(ConsumerSpec::declared(NAME, Stream::Seat)?, publishing(&saga))?;
        let wallet = rt.consumer(ConsumerSpec::declared(NAME, Stream::Wallet)?, publishing(&saga))?;
        rt.spawn_relay(SCHEMA);
        // Sweep often enough that a short hold (tests use seconds) is noticed promptly.
        let every = (rt.config.saga.hold / 10).clamp(Duration::from_millis(100), Duration::from_secs(1));
        let sweeper = sweeper::Sweeper {
            db: rt.db.clone(),
            outbox: outbox.clone(),
            clocks: rt.config.saga.clone(),
            local: local.clone(),
        };
        let task_rt = rt.clone();
        // After an outage, deadlines that passed while the service was down are settled before the
        // consumers take the answers that queued up meanwhile: a payment whose answer arrives after
        // payBy + grace is refunded, never confirmed, however the restart happens to be timed.
        rt.spawn("sweeper[reservation]", async move {
            if let Err(e) = sweeper.sweep().await {
                tracing::warn!(error = %e, "first deadline sweep failed; consumers start anyway");
            }
            for consumer in [seat, wallet] {
                consumer.spawn(&task_rt);
            }
            catalog.spawn(&task_rt);
            sweeper.run(every, task_rt.shutdown.clone()).await;
        });
        let inserts = store::Inserts { db: rt.db.clone(), outbox: outbox.clone() };
        let saves = saga::Saves { db: rt.db.clone(), outbox: outbox.clone(), local: local.clone() };
        Ok(http::routes().with_state(AppState {
            db: rt.db.clone(),
            outbox,
            jwt: JwtKeys::new(&rt.config.jwt_secret),
            gate,
            schedules: store::Schedules::default(),
            local,
            saves: Combiner::start("reservation saves", saves, WRITERS, AT_ONCE),
            inserts: Combiner::start("reservation inserts", inserts, WRITERS, AT_ONCE),
        }))
    }
}
