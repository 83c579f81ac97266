//! seat: the inventory. Builds seats from ScheduleCreated; holds all requested seats or none
//! for a ReservationRequested; sells them on ReservationCompleted and releases them on
//! ReservationFailed (only the failed reservation's own seats); announces SoldOut once.

mod domain;
mod handlers;
mod http;
mod maps;
mod store;

use axum::Router;
use contracts::Stream;
use messaging::{ConsumerSpec, Outbox, PgInbox, Runtime};
use sea_orm::DatabaseConnection;
use servicekit::StartError;
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
}

/// How long a seat map read from the database is answered again (unless a seat of it changes
/// in this process first): what a reader may miss of another replica's changes.
const SEAT_MAP_FRESH: Duration = Duration::from_millis(100);

/// The seat service's OpenAPI document (served at `GET /openapi/seat.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

/// The seat routes, and their document.
pub fn router(state: AppState) -> Router {
    servicekit::routes(NAME, http::routes().with_state(state), openapi())
}

/// Starts the relay and both consumers; returns the routes.
pub fn start(rt: &Runtime) -> Result<Router, StartError> {
    let outbox = Outbox::new(SCHEMA, rt.config.prefix.clone());
    let maps = maps::SeatMaps::new(SEAT_MAP_FRESH);
    rt.spawn_relay(SCHEMA);
    rt.spawn_consumer(
        ConsumerSpec::declared(NAME, Stream::Catalog)?,
        PgInbox::new(rt.db.clone(), SCHEMA, handlers::Catalog),
    );
    rt.spawn_consumer(
        ConsumerSpec::declared(NAME, Stream::Reservation)?,
        PgInbox::publishing(
            rt.db.clone(),
            &outbox,
            handlers::Reservations {
                outbox: outbox.clone(),
                hold: hold_time(rt),
                prices: store::Prices::default(),
                maps: maps.clone(),
            },
        ),
    );
    Ok(router(AppState { db: rt.db.clone(), maps }))
}

fn hold_time(rt: &Runtime) -> Duration {
    rt.config.saga.hold
}

#[cfg(test)]
mod consumer_filters {
    use super::*;
    use messaging::{Handler as _, check_filters};

    #[test]
    fn each_consumer_is_given_exactly_the_events_its_handler_takes() {
        let outbox = Outbox::new(SCHEMA, contracts::Namespace::new("t").unwrap());
        let reservations = handlers::Reservations {
            outbox,
            hold: Duration::from_secs(300),
            prices: store::Prices::default(),
            maps: maps::SeatMaps::new(SEAT_MAP_FRESH),
        };
        check_filters(&ConsumerSpec::declared(NAME, Stream::Catalog).unwrap(), |k| {
            handlers::Catalog.handles(k)
        })
        .unwrap();
        check_filters(&ConsumerSpec::declared(NAME, Stream::Reservation).unwrap(), |k| {
            reservations.handles(k)
        })
        .unwrap();
    }
}
