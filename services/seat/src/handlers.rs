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
use messaging::{HandleError, Handler, Incoming, Outbox};
use sea_orm::DatabaseTransaction;
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
}

/// Deliveries during which an unknown schedule is taken for the catalog event not having
/// arrived yet (it travels on another stream); after that the request is rejected.
const CATALOG_LAG_DELIVERIES: u64 = 4;

impl Handler for Reservations {
    fn handles(&self, kind: &str) -> bool {
        [ReservationRequested::TYPE, ReservationCompleted::TYPE, ReservationFailed::TYPE].contains(&kind)
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

impl Reservations {
    async fn hold(
        &self,
        txn: &DatabaseTransaction,
        msg: &Incoming,
        req: Envelope<ReservationRequested>,
    ) -> Result<(), HandleError> {
        let p = &req.payload;
        let mut seats = p.seat_nos.clone();
        seats.sort();
        seats.dedup();
        let reject = |reason| SeatReservationRejected {
            reservation_id: p.reservation_id,
            schedule_id: p.schedule_id,
            seat_nos: p.seat_nos.clone(),
            reason,
        };
        let requested = if seats.len() == p.seat_nos.len() { seats.as_slice() } else { &[] };
        let held_until = Utc::now()
            + chrono::Duration::from_std(self.hold).map_err(|e| HandleError::Permanent(e.to_string()))?;
        // Most requests find their seats free: one statement holds them all.
        if !requested.is_empty()
            && let Some((concert_id, amount)) =
                store::hold_all_free(txn, p.schedule_id, &seats, p.reservation_id, held_until).await?
        {
            return self.reserved(txn, &req, concert_id, seats, amount, held_until).await;
        }
        // In a rush most requests are for seats already taken: those are answered from the
        // committed rows, without queueing behind the locks of the requests still in flight.
        // Only a hold takes the locks, and decides again on what it finds then.
        let Some((concert_id, committed)) = store::inventory(txn, p.schedule_id, &seats).await? else {
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
                self.reserved(txn, &req, concert_id, seats, amount, held_until).await
            }
        }
    }

    /// Announces the seats `req` now holds.
    async fn reserved(
        &self,
        txn: &DatabaseTransaction,
        req: &Envelope<ReservationRequested>,
        concert_id: ConcertId,
        seat_nos: Vec<SeatNo>,
        amount: Won,
        held_until: DateTime<Utc>,
    ) -> Result<(), HandleError> {
        let p = &req.payload;
        let event = SeatReserved {
            reservation_id: p.reservation_id,
            concert_id,
            schedule_id: p.schedule_id,
            seat_nos,
            amount,
            held_until,
        };
        self.outbox.push(txn, &Envelope::new(NAME, p.reservation_id, event).caused_by(&req.meta())).await?;
        Ok(())
    }

    async fn sell(
        &self,
        txn: &DatabaseTransaction,
        done: Envelope<ReservationCompleted>,
    ) -> Result<(), HandleError> {
        let p = &done.payload;
        let sold = store::sell(txn, p.schedule_id, p.reservation_id).await?;
        if sold.is_empty() {
            tracing::warn!(reservation = %p.reservation_id, "completed reservation holds no seats here");
            return Ok(());
        }
        if let Some((concert_id, first_sold_at, sold_out_at)) = store::record_sale(txn, p.schedule_id).await?
        {
            let event = SoldOut {
                schedule_id: p.schedule_id,
                concert_id,
                sold_out_at,
                seconds_to_sell_out: (sold_out_at - first_sold_at).num_seconds(),
            };
            self.outbox.push(txn, &Envelope::new(NAME, p.schedule_id, event).caused_by(&done.meta())).await?;
        }
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
