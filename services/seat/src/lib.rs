//! seat: the inventory. Builds seats from ScheduleCreated; holds all requested seats or none
//! for a ReservationRequested; sells them on ReservationCompleted and releases them on
//! ReservationFailed (only the failed reservation's own seats); announces SoldOut once; releases
//! what a lost event left HELD past every deadline (the backstop).

mod backstop;
mod domain;
mod error;
mod handlers;
mod http;
mod live;
mod maps;
mod store;

use axum::Router;
use contracts::Stream;
use messaging::{Outbox, PgInbox, Runtime};
use platform::{Config, ConfigError, config::SagaClocks};
use sea_orm::DatabaseConnection;
use servicekit::{Service, StartError};
use std::time::Duration;

/// The service name (consumer names, event `source`).
pub const NAME: &str = "seat";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "seat";

/// What the HTTP handlers need.
#[derive(Clone)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// Seat maps read recently, forgotten when this process changes a seat.
    pub maps: maps::SeatMaps,
    /// The schedules whose maps some stream watches.
    pub watched: live::Watched,
    /// The partitions this replica keeps: a schedule of another is misdirected here.
    pub kept: platform::partition::Kept,
}

/// How long a seat map read from the database is answered again (unless a seat of it changes
/// in this process first): what a reader may miss of another replica's changes.
const SEAT_MAP_FRESH: Duration = Duration::from_millis(100);

/// The seat service.
pub struct Seats;

impl Service for Seats {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "seat inventory: holds, sales, releases, sell-outs";
    type Api = http::Api;

    fn settings(config: &Config) -> Result<(), ConfigError> {
        config.settings::<SagaClocks>()?;
        config.settings::<backstop::BackstopSettings>().map(|_| ())
    }

    /// Starts the relay, both consumers and the backstop.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let outbox = Outbox::new(SCHEMA, rt.config.prefix.clone());
        let maps = maps::SeatMaps::new(SEAT_MAP_FRESH);
        rt.spawn_relay(SCHEMA);
        rt.spawn_pruner(SCHEMA);
        let settings: backstop::BackstopSettings = rt.config.settings()?;
        let clocks: SagaClocks = rt.config.settings()?;
        let backstop = backstop::Backstop {
            db: rt.db.clone(),
            outbox: outbox.clone(),
            maps: maps.clone(),
            pay_grace: clocks.pay_grace,
            grace: settings.grace,
        };
        let (every, shutdown) = (backstop.every(), rt.shutdown.clone());
        rt.spawn("backstop[seat]", async move {
            platform::periodic::run("backstop[seat]", every, shutdown, || backstop.pass()).await;
        });
        rt.spawn_consumer(
            rt.declared(NAME, Stream::Catalog)?,
            PgInbox::new(rt.db.clone(), SCHEMA, handlers::Catalog),
        )?;
        rt.spawn_consumer(
            rt.declared(NAME, Stream::Reservation)?,
            PgInbox::publishing(
                rt.db.clone(),
                &outbox,
                handlers::Reservations {
                    outbox: outbox.clone(),
                    hold: clocks.hold,
                    prices: store::Prices::default(),
                    maps: maps.clone(),
                }
                .handler(),
            ),
        )?;
        let watched = live::Watched::default();
        let (live, db, shutdown) = (watched.clone(), rt.db.clone(), rt.shutdown.clone());
        rt.spawn("live[seat]", live.run(db, shutdown));
        Ok(http::routes().with_state(AppState { db: rt.db.clone(), maps, watched, kept: rt.config.kept() }))
    }
}
