//! Reactions to the catalog, the seat service and the wallet.

use crate::{
    domain::Input,
    error::Error,
    saga::{self, Origin},
    store::{self, Ending},
};
use contracts::{
    CardPaymentCompleted, CardPaymentFailed, CardPaymentRefunded, EnvelopeMeta, Event, PaymentCompleted,
    PaymentFailed, PaymentRefunded, ReservationId, ScheduleCancelled, ScheduleCreated,
    SeatReservationRejected, SeatReserved, UserStatus, UserStatusChanged,
};
use messaging::{HandleError, Handler, InboxClaims, Incoming, Outbox};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

/// Keeps the projection of schedules that requests are validated against; a schedule
/// cancelled now ends every reservation of it (live ones FAILED `SCHEDULE_CANCELLED`, confirmed
/// ones refunded). One started as the cancellation ran is ended by the sweeper.
pub struct Catalog {
    pub outbox: Outbox,
}

impl Handler for Catalog {
    fn handles(&self, kind: &str) -> bool {
        [ScheduleCreated::TYPE, ScheduleCancelled::TYPE].contains(&kind)
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        if msg.kind() == ScheduleCancelled::TYPE {
            let e = msg.decode::<ScheduleCancelled>()?.payload;
            store::cancel_schedule(txn, e.schedule_id, e.cancelled_at).await?;
            return end_all(txn, &self.outbox, msg, Ending::Cancelled, e.schedule_id.0).await;
        }
        let e = msg.decode::<ScheduleCreated>()?.payload;
        let seats: Vec<_> = e.seats.iter().map(|s| s.seat_no).collect();
        store::upsert_schedule(txn, e.schedule_id, e.concert_id, &seats).await?;
        Ok(())
    }
}

/// Ends, in `txn`, every reservation that `ending` (which `msg` brought) ends of the schedule or
/// user `of`.
async fn end_all(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    msg: &Incoming,
    ending: Ending,
    of: uuid::Uuid,
) -> Result<(), HandleError> {
    let meta = msg.meta();
    for id in store::ended_by(txn, ending, of).await? {
        let origin = Origin::Event { kind: msg.kind(), meta: &meta };
        match saga::apply(txn, outbox, id, ending.input(), origin).await {
            Ok(_) => {}
            Err(Error::Db(e)) => return Err(e.into()),
            Err(other) => return Err(HandleError::Permanent(format!("{} of {id}: {other}", msg.kind()))),
        }
    }
    Ok(())
}

/// Keeps the accounts' status the user service announces; a user blocked now loses every
/// reservation not yet being paid for (FAILED `USER_BLOCKED`, its seats released).
pub struct Accounts {
    pub outbox: Outbox,
}

impl Handler for Accounts {
    fn handles(&self, kind: &str) -> bool {
        kind == UserStatusChanged::TYPE
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let e = msg.decode::<UserStatusChanged>()?.payload;
        let blocked = e.status == UserStatus::Blocked;
        // An older change arriving late changes nothing.
        if !store::set_user_status(txn, e.user_id, blocked, e.changed_at).await? || !blocked {
            return Ok(());
        }
        end_all(txn, &self.outbox, msg, Ending::Blocked, e.user_id.0).await
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

const KINDS: [&str; 8] = [
    SeatReserved::TYPE,
    SeatReservationRejected::TYPE,
    PaymentCompleted::TYPE,
    PaymentFailed::TYPE,
    PaymentRefunded::TYPE,
    CardPaymentCompleted::TYPE,
    CardPaymentFailed::TYPE,
    CardPaymentRefunded::TYPE,
];

impl Handler for Saga {
    fn handles(&self, kind: &str) -> bool {
        KINDS.contains(&kind)
    }

    fn after_commit(&self, msg: &Incoming) {
        // Every event this handler takes names its reservation.
        if let Some(id) = msg.payload_field("reservationId") {
            self.local.changed(id);
        }
    }

    /// The events of a batch on reservations this process wrote last (as it does every hold
    /// and payment it takes), each on its own reservation, applied in one statement; the rest
    /// as [`Handler::handle`] says.
    async fn at_once_each(
        &self,
        db: &DatabaseConnection,
        claims: &InboxClaims<'_>,
        msgs: &[Incoming],
    ) -> Result<Vec<i64>, HandleError> {
        let metas: Vec<EnvelopeMeta> = msgs.iter().map(Incoming::meta).collect();
        let mut steps = Vec::with_capacity(msgs.len());
        for ((position, msg), meta) in (1i64..).zip(msgs).zip(&metas) {
            let Ok((id, input)) = input_of(msg) else { continue };
            steps.push(saga::Step { position, id, input, origin: Origin::Event { kind: msg.kind(), meta } });
        }
        match saga::apply_each_at_once(db, &self.outbox, &self.local, steps, claims).await {
            Ok(applied) => Ok(applied),
            Err(Error::Db(e)) => Err(e.into()),
            // Not found or refused: applied one by one, each event meets its own fate.
            Err(_) => Ok(Vec::new()),
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
            Err(Error::NotFound) => Err(HandleError::Permanent(format!("no reservation {id}"))),
            Err(Error::Db(e)) => Err(e.into()),
            Err(refused) => Err(HandleError::Permanent(format!("event refused: {refused}"))),
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
            let e = msg.decode::<SeatReservationRejected>()?.payload;
            (e.reservation_id, Input::SeatRejected { reason: e.reason })
        }
        PaymentCompleted::TYPE => {
            (msg.decode::<PaymentCompleted>()?.payload.reservation_id, Input::PaymentCompleted)
        }
        PaymentFailed::TYPE => {
            let e = msg.decode::<PaymentFailed>()?.payload;
            (e.reservation_id, Input::PaymentFailed { reason: e.reason })
        }
        PaymentRefunded::TYPE => {
            (msg.decode::<PaymentRefunded>()?.payload.reservation_id, Input::PaymentRefunded)
        }
        // A card payment settles the saga as a wallet payment does.
        CardPaymentCompleted::TYPE => {
            (msg.decode::<CardPaymentCompleted>()?.payload.reservation_id, Input::PaymentCompleted)
        }
        CardPaymentFailed::TYPE => {
            let e = msg.decode::<CardPaymentFailed>()?.payload;
            (e.reservation_id, Input::PaymentFailed { reason: e.reason })
        }
        CardPaymentRefunded::TYPE => {
            (msg.decode::<CardPaymentRefunded>()?.payload.reservation_id, Input::PaymentRefunded)
        }
        other => return Err(HandleError::Permanent(format!("not an event of the saga: {other}"))),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use crate::domain::{Reservation, Status};
    use chrono::Utc;
    use contracts::{Envelope, SeatRejectReason, Won};
    use messaging::{Applied, Apply as _, PgInbox};
    use sea_orm::ConnectionTrait as _;

    const INBOX: &str = "reservation__SEAT";

    fn reserved(r: &Reservation) -> Incoming {
        let e = SeatReserved {
            reservation_id: r.id,
            concert_id: r.concert_id,
            schedule_id: r.schedule_id,
            seat_nos: r.seat_nos.clone(),
            amount: Won(100),
            held_until: Utc::now() + chrono::Duration::minutes(5),
        };
        Incoming::first_delivery(&Envelope::new("seat", r.id, e)).unwrap()
    }

    fn rejected(r: &Reservation) -> Incoming {
        let e = SeatReservationRejected {
            reservation_id: r.id,
            schedule_id: r.schedule_id,
            seat_nos: r.seat_nos.clone(),
            reason: SeatRejectReason::Taken,
        };
        Incoming::first_delivery(&Envelope::new("seat", r.id, e)).unwrap()
    }

    /// A PENDING reservation of seat `seat`, stored; remembered by `saga` when `remember`.
    async fn pending(db: &DatabaseConnection, saga: &Saga, seat: i32, remember: bool) -> Reservation {
        let r = Reservation::pending_of_seat(seat);
        let new = store::NewReservation { row: r, events: vec![], kept: None };
        let store::Inserted::Stored(store::Stored { row: stored, version, .. }) =
            store::insert_each_unless_taken(
                db,
                &[new],
                crate::Limits { max_seats_per_user: 4, reservations_per_minute: 0 },
                &saga.outbox,
            )
            .await
            .unwrap()
            .remove(0)
        else {
            panic!("the seat is free")
        };
        if remember {
            saga.local.recent.remember(stored.clone(), version);
        }
        stored
    }

    async fn status(db: &DatabaseConnection, r: &Reservation) -> Status {
        store::read(db, r.id).await.unwrap().unwrap().0.status
    }

    #[tokio::test]
    async fn a_batch_moves_at_once_what_it_remembers_or_reads_again_and_leaves_the_rest_to_a_transaction() {
        let env = testkit::TestEnv::new().await.unwrap();
        let db = env.db.clone();
        let saga = Saga { outbox: Outbox::new(crate::SCHEMA, env.ns.clone()), local: saga::Local::default() };
        let (a, b, c, d) = (
            pending(&db, &saga, 1, true).await,
            pending(&db, &saga, 2, true).await,
            pending(&db, &saga, 3, false).await,
            pending(&db, &saga, 4, true).await,
        );
        // Another writer moves `d` after this process remembered it: its copy is stale.
        db.execute_unprepared(&format!(
            "UPDATE reservation.reservations SET updated_at = now() WHERE id = '{}'",
            d.id
        ))
        .await
        .unwrap();
        // And an answer about a reservation nobody made.
        let mut nobody = a.clone();
        nobody.id = ReservationId::new();
        let watch = saga.local.waiters.watch(b.id);
        let first = reserved(&a);
        let batch = [first.clone(), rejected(&b), reserved(&c), reserved(&d), first, reserved(&nobody)];
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, batch.iter().map(|m| m.envelope.id.0).collect());
        // `a` and `b` from memory, `c` read with the batch, `d` read again after its stale copy
        // failed; the event on `a` delivered twice and the one on nobody's are left.
        assert_eq!(saga.at_once_each(&db, &claims, &batch).await.unwrap(), [1, 2, 3, 4]);
        assert_eq!(status(&db, &a).await, Status::Held);
        assert_eq!(status(&db, &b).await, Status::Failed);
        assert_eq!(status(&db, &c).await, Status::Held);
        assert_eq!(status(&db, &d).await, Status::Held);
        let view = watch.offered_after(1).expect("the waiter on b is offered its settled view");
        assert_eq!(view.reservation.status, Status::Failed);
        let kinds: Vec<&str> = view.timeline.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, ["SeatReservationRejected", "ReservationFailed"]);

        // Delivered again: the applied ones are duplicates, and the transaction finds no
        // reservation for the last (a permanent failure: the DLQ keeps it).
        let inbox = PgInbox::publishing(db.clone(), &saga.outbox.clone(), saga.clone());
        let outcomes = inbox.apply_batch(INBOX, &batch).await;
        use Applied::Duplicate;
        let (last, applied) = outcomes.split_last().unwrap();
        assert_eq!(applied.iter().map(|o| *o.as_ref().unwrap()).collect::<Vec<_>>(), [Duplicate; 5]);
        assert!(
            matches!(last, Err(HandleError::Permanent(reason)) if reason.contains("no reservation")),
            "{last:?}"
        );
    }
}
