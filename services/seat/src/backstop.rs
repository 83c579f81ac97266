//! The backstop: seats still HELD long after their reservation must have ended are released.
//!
//! A reservation ends by its own clocks: a hold expires at `heldUntil`, a payment in flight is
//! given up at `heldUntil + TICKETING_PAY_GRACE_SECS`, and the reservation service, which never
//! confirms past that (its sweeper settles due deadlines before it takes a late payment), tells
//! the seats by `ReservationFailed`. If that event is lost to a fault this service cannot see (a
//! dead-lettered message, a reservation row stuck), the seats would stay HELD for good. So a
//! seat HELD past `heldUntil + pay grace + TICKETING_SEAT_BACKSTOP_GRACE_SECS`, by which time no
//! reservation can still be live, is released here, announced by `SeatsReleased` like any
//! release, logged and counted (`seat_backstop_released_total`): a count that grows is a fault
//! to look into. Safe with many replicas: due seats are claimed `FOR UPDATE SKIP LOCKED`.

use crate::{NAME, maps::SeatMaps, store};
use chrono::Utc;
use contracts::{Envelope, SeatsReleased};
use messaging::Outbox;
use platform::{
    config::{Settings, Vars},
    periodic::Pass,
};
use sea_orm::{DatabaseConnection, DbErr, TransactionTrait};
use std::time::Duration;

/// Seats released per pass.
const BATCH: i64 = 500;

/// How long past its reservation's last deadline a seat may stay HELD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackstopSettings {
    pub grace: Duration,
}

impl Settings for BackstopSettings {
    fn read(vars: &mut Vars<'_>) -> Self {
        let grace = vars.secs("TICKETING_SEAT_BACKSTOP_GRACE_SECS", 600);
        if grace.is_zero() {
            vars.fail("TICKETING_SEAT_BACKSTOP_GRACE_SECS", "must be at least 1");
        }
        Self { grace }
    }
}

/// Releases seats HELD past `heldUntil + after`.
#[derive(Clone)]
pub struct Backstop {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub maps: SeatMaps,
    /// How long past `heldUntil` a payment may still complete (the reservation's last deadline).
    pub pay_grace: Duration,
    /// The backstop's own grace, past that deadline.
    pub grace: Duration,
}

impl Backstop {
    /// How often it looks: often enough to act within a tenth of its grace, at most every 30 s.
    pub fn every(&self) -> Duration {
        (self.after() / 10).clamp(Duration::from_secs(1), Duration::from_secs(30))
    }

    /// How long past `heldUntil` a seat may stay HELD: the pay grace and the backstop's own.
    fn after(&self) -> Duration {
        self.pay_grace + self.grace
    }

    /// One pass: counts the seats HELD past their reservation's last deadline
    /// (`seats_held_past_deadline`, a gauge: seats the backstop will release if they stay), then
    /// releases what is due (a batch at most) and returns how many seats.
    pub async fn pass(&self) -> Result<Pass, DbErr> {
        let now = Utc::now();
        let late = store::held_before(&self.db, now - chrono_duration(self.pay_grace)).await?;
        metrics::gauge!("seats_held_past_deadline").set(late as f64);
        let cutoff = now - chrono_duration(self.after());
        let txn = self.db.begin().await?;
        let released = store::release_held_before(&txn, cutoff, BATCH).await?;
        let mut events = Vec::new();
        for r in &released {
            tracing::warn!(
                reservation = %r.reservation, schedule = %r.schedule, seats = r.seats.len(),
                "backstop: seats were still HELD past their reservation's last deadline; released"
            );
            let event = SeatsReleased {
                reservation_id: r.reservation,
                schedule_id: r.schedule,
                seat_nos: r.seats.clone(),
            };
            events.push(Envelope::new(NAME, r.reservation, event));
        }
        self.outbox.push_all(&txn, &events).await?;
        self.outbox.commit(txn).await?;
        let seats: usize = released.iter().map(|r| r.seats.len()).sum();
        metrics::counter!("seat_backstop_released_total").increment(seats as u64);
        for r in &released {
            self.maps.changed(r.schedule);
        }
        Ok(Pass::of(seats, BATCH as usize))
    }
}

/// `d` as a chrono duration (a longer one than chrono holds counts as its longest).
fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}
