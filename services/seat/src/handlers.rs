//! Reactions to the catalog and to the reservation saga.

use crate::{
    NAME,
    domain::{self, HoldDecision},
    store,
};
use chrono::{DateTime, Utc};
use contracts::{
    ConcertId, Envelope, Event, ReservationCompleted, ReservationFailed, ReservationRequested,
    ScheduleCreated, SeatNo, SeatRejectReason, SeatReservationRejected, SeatReserved, SeatsReleased, SoldOut,
    Won,
};
use messaging::{HandleError, Handler, InboxClaim, Incoming, Outbox};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use std::time::Duration;

/// Builds seat inventory from `ScheduleCreated`.
pub struct Catalog;

impl Handler for Catalog {
    fn handles(&self, kind: &str) -> bool {
        kind == ScheduleCreated::TYPE
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let e = msg.decode::<ScheduleCreated>()?.payload;
        store::create_schedule(txn, e.schedule_id, e.concert_id, &e.seats).await?;
        Ok(())
    }
}

/// Holds, sells and releases seats for the reservation saga.
pub struct Reservations {
    pub outbox: Outbox,
    /// How long a hold lasts (the reservation service enforces it).
    pub hold: Duration,
    pub prices: store::Prices,
    /// Seat maps to forget when seats of their schedule change.
    pub maps: crate::maps::SeatMaps,
}

/// Deliveries during which an unknown schedule is taken for the catalog event not having
/// arrived yet (it travels on another stream); after that the request is rejected.
const CATALOG_LAG_DELIVERIES: u64 = 4;

impl Handler for Reservations {
    fn handles(&self, kind: &str) -> bool {
        [ReservationRequested::TYPE, ReservationCompleted::TYPE, ReservationFailed::TYPE].contains(&kind)
    }

    fn after_commit(&self, msg: &Incoming) {
        // Every event this handler takes names its schedule.
        if let Some(schedule) = msg.payload_field("scheduleId") {
            self.maps.changed(schedule);
        }
    }

    /// Most requests find their seats free: one statement holds them all and announces it. A
    /// sale is one statement; whether it sold the schedule out is checked after its commit (and
    /// again when it is delivered again, so a crash in between loses no announcement).
    async fn at_once(
        &self,
        db: &DatabaseConnection,
        claim: &InboxClaim<'_>,
        msg: &Incoming,
    ) -> Result<bool, HandleError> {
        if msg.kind() == ReservationCompleted::TYPE {
            let done = msg.decode::<ReservationCompleted>()?;
            let sold =
                store::sell(db, done.payload.schedule_id, done.payload.reservation_id, Some(claim)).await?;
            self.announce_if_sold_out(db, &done).await?;
            return Ok(!sold.is_empty());
        }
        if msg.kind() != ReservationRequested::TYPE {
            return Ok(false);
        }
        let req = msg.decode::<ReservationRequested>()?;
        let p = &req.payload;
        let (seats, distinct) = sorted(&p.seat_nos);
        if !distinct || seats.is_empty() {
            return Ok(false);
        }
        let Some(priced) = self.prices.get(db, p.schedule_id).await? else { return Ok(false) };
        let Some(amount) = priced.amount(&seats) else { return Ok(false) };
        let until = self.held_until()?;
        let event = self.outbox.row(&reserved(&req, priced.concert, seats.clone(), amount, until))?;
        let hold =
            store::Hold { schedule: p.schedule_id, seats: &seats, reservation: p.reservation_id, until };
        Ok(store::hold_all_free(db, &hold, &self.outbox, &[event], claim).await?)
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        match msg.kind() {
            ReservationRequested::TYPE => self.hold(txn, msg, msg.decode::<ReservationRequested>()?).await,
            ReservationCompleted::TYPE => self.sell(txn, msg.decode::<ReservationCompleted>()?).await,
            ReservationFailed::TYPE => self.release(txn, msg.decode::<ReservationFailed>()?).await,
            _ => Ok(()),
        }
    }
}

/// The requested seats sorted and without repeats, and whether none repeated.
fn sorted(requested: &[SeatNo]) -> (Vec<SeatNo>, bool) {
    let mut seats = requested.to_vec();
    seats.sort();
    seats.dedup();
    let distinct = seats.len() == requested.len();
    (seats, distinct)
}

/// The announcement that `req`'s seats are held.
fn reserved(
    req: &Envelope<ReservationRequested>,
    concert_id: ConcertId,
    seat_nos: Vec<SeatNo>,
    amount: Won,
    held_until: DateTime<Utc>,
) -> Envelope<SeatReserved> {
    let p = &req.payload;
    let event = SeatReserved {
        reservation_id: p.reservation_id,
        concert_id,
        schedule_id: p.schedule_id,
        seat_nos,
        amount,
        held_until,
    };
    Envelope::new(NAME, p.reservation_id, event).caused_by(&req.meta())
}

impl Reservations {
    /// When a hold made now ends.
    fn held_until(&self) -> Result<DateTime<Utc>, HandleError> {
        Ok(Utc::now()
            + chrono::Duration::from_std(self.hold).map_err(|e| HandleError::Permanent(e.to_string()))?)
    }

    /// Holds the seats unless they are taken (for requests [`Handler::at_once`] did not hold).
    async fn hold(
        &self,
        txn: &DatabaseTransaction,
        msg: &Incoming,
        req: Envelope<ReservationRequested>,
    ) -> Result<(), HandleError> {
        let p = &req.payload;
        let (seats, distinct) = sorted(&p.seat_nos);
        // A request naming a seat twice is invalid, decided as one naming none.
        let requested: &[SeatNo] = if distinct { &seats } else { &[] };
        let reject = |reason| SeatReservationRejected {
            reservation_id: p.reservation_id,
            schedule_id: p.schedule_id,
            seat_nos: p.seat_nos.clone(),
            reason,
        };
        let held_until = self.held_until()?;
        // In a rush most requests are for seats already taken: those are answered from the
        // committed rows, without queueing behind the locks of the requests still in flight.
        // Only a hold takes the locks, and decides again on what it finds then.
        let Some((concert_id, committed)) = store::inventory(txn, p.schedule_id, Some(&seats)).await? else {
            if msg.deliveries < CATALOG_LAG_DELIVERIES {
                return Err(HandleError::Transient(format!(
                    "schedule {} not in the inventory yet",
                    p.schedule_id
                )));
            }
            let event = reject(SeatRejectReason::NotFound);
            self.outbox
                .push(txn, &Envelope::new(NAME, p.reservation_id, event).caused_by(&req.meta()))
                .await?;
            return Ok(());
        };
        let decision = match domain::decide_hold(p.reservation_id, requested, &committed) {
            HoldDecision::Hold { .. } => {
                let locked = store::lock_seats(txn, p.schedule_id, &seats).await?;
                domain::decide_hold(p.reservation_id, requested, &locked)
            }
            answered => answered,
        };
        match decision {
            HoldDecision::AlreadyHeld { .. } => Ok(()),
            HoldDecision::Reject(reason) => {
                self.outbox
                    .push(txn, &Envelope::new(NAME, p.reservation_id, reject(reason)).caused_by(&req.meta()))
                    .await?;
                Ok(())
            }
            HoldDecision::Hold { amount } => {
                let held = store::hold(txn, p.schedule_id, &seats, p.reservation_id, held_until).await?;
                if held != seats.len() as u64 {
                    // Cannot happen while the rows are locked; retry rather than hold part.
                    return Err(HandleError::Transient(format!("held {held} of {} seats", seats.len())));
                }
                self.outbox.push(txn, &reserved(&req, concert_id, seats, amount, held_until)).await?;
                Ok(())
            }
        }
    }

    /// Sells the seats (for a sale [`Handler::at_once`] did not make).
    async fn sell(
        &self,
        txn: &DatabaseTransaction,
        done: Envelope<ReservationCompleted>,
    ) -> Result<(), HandleError> {
        let p = &done.payload;
        let sold = store::sell(txn, p.schedule_id, p.reservation_id, None).await?;
        if sold.is_empty() {
            tracing::warn!(reservation = %p.reservation_id, "completed reservation holds no seats here");
            return Ok(());
        }
        self.announce_if_sold_out(txn, &done).await
    }

    /// Announces `SoldOut` (once) if no seat of the schedule of `done` is left unsold.
    async fn announce_if_sold_out(
        &self,
        db: &impl ConnectionTrait,
        done: &Envelope<ReservationCompleted>,
    ) -> Result<(), HandleError> {
        let schedule = done.payload.schedule_id;
        let Some((concert_id, first_sold_at, sold_out_at)) = store::sold_out(db, schedule).await? else {
            return Ok(());
        };
        let event = SoldOut {
            schedule_id: schedule,
            concert_id,
            sold_out_at,
            seconds_to_sell_out: (sold_out_at - first_sold_at).num_seconds(),
        };
        let event = self.outbox.row(&Envelope::new(NAME, schedule, event).caused_by(&done.meta()))?;
        store::mark_sold_out(db, schedule, sold_out_at, &self.outbox, &[event]).await?;
        Ok(())
    }

    async fn release(
        &self,
        txn: &DatabaseTransaction,
        failed: Envelope<ReservationFailed>,
    ) -> Result<(), HandleError> {
        let p = &failed.payload;
        let released = store::release(txn, p.schedule_id, p.reservation_id).await?;
        if released.is_empty() {
            return Ok(());
        }
        let event = SeatsReleased {
            reservation_id: p.reservation_id,
            schedule_id: p.schedule_id,
            seat_nos: released,
        };
        self.outbox
            .push(txn, &Envelope::new(NAME, p.reservation_id, event).caused_by(&failed.meta()))
            .await?;
        Ok(())
    }
}
