//! concert: the catalog. Admins create concerts and schedules; everyone browses them. Every
//! change is announced (ConcertCreated/Updated, ScheduleCreated with its seats and prices).

mod domain;
mod error;
mod http;
mod store;

pub use domain::{ScheduleRequest, SeatSpec};
pub use error::Error;

use axum::Router;
use messaging::{Outbox, Runtime};
use sea_orm::DatabaseConnection;
use servicekit::{Service, StartError};

/// The service name (event `source`).
pub const NAME: &str = "concert";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "concert";

/// What the HTTP handlers need: the database, the outbox and the JWT keys.
pub type AppState = servicekit::ServiceState;

/// The catalog service.
pub struct Catalog;

impl Service for Catalog {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "the catalog: concerts and schedules";
    type Api = http::Api;

    /// Starts the relay.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        rt.spawn_relay(SCHEMA);
        rt.spawn_pruner(SCHEMA);
        Ok(http::routes().with_state(AppState::new(rt, SCHEMA)))
    }
}

/// The demo concert's name.
pub const DEMO_NAME: &str = "Demo Night";

/// Creates the demo concert with two schedules of 50 seats (`ticketing seed`), so a newcomer
/// can book at once; if it exists already, changes nothing. Returns the concert and schedule ids.
pub async fn seed_demo(
    db: &DatabaseConnection,
    outbox: &Outbox,
) -> Result<(contracts::ConcertId, Vec<contracts::ScheduleId>), Error> {
    use chrono::{Duration, Utc};
    use sea_orm::TransactionTrait;
    if let Some(existing) = store::find_concert_by_name(db, DEMO_NAME).await? {
        let schedules = store::list_schedules(db, existing, None, 100).await?;
        return Ok((existing, schedules.into_iter().map(|s| s.id).collect()));
    }
    let txn = db.begin().await?;
    let concert = http::create_concert_in(&txn, outbox, DEMO_NAME, "Ticketing Live").await?;
    let mut schedules = Vec::new();
    for days in [7, 8] {
        let request = ScheduleRequest {
            starts_at: Utc::now() + Duration::days(days),
            seat_count: Some(50),
            price: None,
            seats: Some(
                (1..=50)
                    .map(|n| SeatSpec { seat_no: n, price: if n <= 10 { 150_000 } else { 90_000 } })
                    .collect(),
            ),
            sales_open_at: None,
        };
        let plan = domain::plan_schedule(&request, Utc::now()).map_err(Error::from)?;
        schedules.push(http::create_schedule_in(&txn, outbox, concert, &request, plan).await?.id);
    }
    outbox.commit(txn).await?;
    Ok((concert, schedules))
}
