//! Reactions to the catalog, the seat service and the wallet.

use crate::{
    domain::Input,
    saga::{self, ApplyError, Origin},
    store,
};
use contracts::{
    Event, PaymentCompleted, PaymentFailed, PaymentRefunded, ReservationId, ScheduleCreated,
    SeatReservationRejected, SeatReserved,
};
use messaging::{HandleError, Handler, InboxClaim, Incoming, Outbox};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

/// Keeps the projection of schedules that requests are validated against.
pub struct Catalog;

impl Handler for Catalog {
    fn handles(&self, kind: &str) -> bool {
        kind == ScheduleCreated::TYPE
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let e = msg.decode::<ScheduleCreated>()?.payload;
        let seats: Vec<_> = e.seats.iter().map(|s| s.seat_no).collect();
        store::upsert_schedule(txn, e.schedule_id, e.concert_id, &seats).await?;
        Ok(())
    }
}

/// Moves reservations along on the seat service's and the wallet's answers.
#[derive(Clone)]
pub struct Saga {
    pub outbox: Outbox,
    /// This process's last writes, and the requests waiting (`Prefer: wait`) for reservations
    /// this handler moves.
    pub local: saga::Local,
}

const KINDS: [&str; 5] = [
    SeatReserved::TYPE,
    SeatReservationRejected::TYPE,
    PaymentCompleted::TYPE,
    PaymentFailed::TYPE,
    PaymentRefunded::TYPE,
];

impl Handler for Saga {
    fn handles(&self, kind: &str) -> bool {
        KINDS.contains(&kind)
    }

    fn after_commit(&self, msg: &Incoming) {
        // Every event this handler takes names its reservation.
        if let Some(id) = msg.payload_field("reservationId") {
            self.local.waiters.notify(id);
        }
    }

    async fn at_once(
        &self,
        db: &DatabaseConnection,
        claim: &InboxClaim<'_>,
        msg: &Incoming,
    ) -> Result<bool, HandleError> {
        let (id, input) = input_of(msg)?;
        let meta = msg.meta();
        let origin = Origin::Event { kind: msg.kind(), meta: &meta };
        match saga::apply_at_once(db, &self.outbox, &self.local, id, input, origin, Some(claim)).await {
            Ok(applied) => Ok(applied.is_some()),
            // The transaction tells a repeated event from a refused or foreign one.
            Err(ApplyError::NotFound | ApplyError::Refused(_)) => Ok(false),
            Err(ApplyError::Db(e)) => Err(e.into()),
        }
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let (id, input) = input_of(msg)?;
        let meta = msg.meta();
        match saga::apply(txn, &self.outbox, id, input, Origin::Event { kind: msg.kind(), meta: &meta }).await
        {
            Ok(_) => Ok(()),
            // Reservations commit before their first event is published, so this is a bug
            // upstream or a foreign event: keep it in the DLQ.
            Err(ApplyError::NotFound) => Err(HandleError::Permanent(format!("no reservation {id}"))),
            Err(ApplyError::Refused(r)) => Err(HandleError::Permanent(format!("event refused: {r:?}"))),
            Err(ApplyError::Db(e)) => Err(e.into()),
        }
    }
}

/// The reservation an event of [`KINDS`] is about, and what it means for it.
fn input_of(msg: &Incoming) -> Result<(ReservationId, Input), HandleError> {
    Ok(match msg.kind() {
        SeatReserved::TYPE => {
            let e = msg.decode::<SeatReserved>()?.payload;
            (e.reservation_id, Input::SeatReserved { amount: e.amount, held_until: e.held_until })
        }
        SeatReservationRejected::TYPE => {
            (msg.decode::<SeatReservationRejected>()?.payload.reservation_id, Input::SeatRejected)
        }
        PaymentCompleted::TYPE => {
            (msg.decode::<PaymentCompleted>()?.payload.reservation_id, Input::PaymentCompleted)
        }
        PaymentFailed::TYPE => (msg.decode::<PaymentFailed>()?.payload.reservation_id, Input::PaymentFailed),
        PaymentRefunded::TYPE => {
            (msg.decode::<PaymentRefunded>()?.payload.reservation_id, Input::PaymentRefunded)
        }
        other => return Err(HandleError::Permanent(format!("not an event of the saga: {other}"))),
    })
}
