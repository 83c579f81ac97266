//! Reactions to the catalog, the seat service and the wallet.

use crate::{
    domain::{Input, Reservation},
    error::Error,
    saga::{self, Origin, Planned},
    store::{self, Ending},
};
use contracts::{
    CardPaymentCompleted, CardPaymentFailed, CardPaymentRefunded, EnvelopeMeta, Event, PaymentCompleted,
    PaymentFailed, PaymentRefunded, ReservationId, ScheduleCancelled, ScheduleCreated,
    SeatReservationRejected, SeatReserved, UserStatus, UserStatusChanged,
};
use messaging::{HandleError, Handler, InboxClaims, Incoming, Outbox, Reaction};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use std::collections::HashSet;

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
    let kind = match ending {
        Ending::Cancelled => ScheduleCancelled::TYPE,
        Ending::Blocked => UserStatusChanged::TYPE,
    };
    for id in store::ended_by(txn, ending, of).await? {
        let origin = Origin::Event { kind, meta: &meta };
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

/// What an event of the saga asks of its reservation.
pub struct Asked {
    id: ReservationId,
    input: Input,
    kind: &'static str,
    meta: EnvelopeMeta,
}

impl Asked {
    fn origin(&self) -> Origin<'_> {
        Origin::Event { kind: self.kind, meta: &self.meta }
    }
}

impl Reaction for Saga {
    type Asked = Asked;
    /// The reservation, locked; `None` when there is none.
    type Found = Option<Reservation>;
    type Plan = Planned;

    fn handles(&self, kind: &str) -> bool {
        KINDS.contains(&kind)
    }

    fn asked(&self, msg: &Incoming) -> Result<Asked, HandleError> {
        let (id, input) = input_of(msg)?;
        let kind = KINDS.into_iter().find(|k| *k == msg.kind()).unwrap_or_default();
        Ok(Asked { id, input, kind, meta: msg.meta() })
    }

    /// Each reservation the batch names, once (a later event on it goes to the transaction),
    /// decided on the copy this process remembers (what it, or another replica, wrote last) or
    /// else on the rows read together in one statement. A copy another writer had overtaken
    /// (its notice had not arrived yet) fails its compare-and-set, and is forgotten: planned
    /// again, it is read. A refusal is left to the transaction, which decides on the locked row.
    async fn assume_each(
        &self,
        db: &DatabaseConnection,
        asked: &[(i64, &Asked)],
    ) -> Result<Vec<(i64, Planned)>, HandleError> {
        let mut named = HashSet::new();
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for &(position, asked) in asked.iter().filter(|(_, a)| named.insert(a.id)) {
            match self.local.recent.take(asked.id) {
                Some(copy) => known.push((position, asked, copy, true)),
                None => unknown.push((position, asked)),
            }
        }
        let ids: Vec<ReservationId> = unknown.iter().map(|(_, a)| a.id).collect();
        let mut read = store::read_each(db, &ids).await?;
        known.extend(
            unknown.into_iter().filter_map(|(i, asked)| Some((i, asked, read.remove(&asked.id)?, false))),
        );
        let mut plans = Vec::with_capacity(known.len());
        for (position, asked, (current, version), remembered) in known {
            let planned =
                match saga::decide(&self.outbox, asked.input.clone(), asked.origin(), current, Some(version))
                {
                    Ok(planned) => planned,
                    // Left to the transaction, even when the row was read.
                    Err(Error::NotFound | Error::Refused(_)) => continue,
                    Err(e) => return Err(failed(e)),
                };
            plans.extend(self.local.to_save(planned, remembered).map(|planned| (position, planned)));
        }
        Ok(plans)
    }

    fn may_be_stale(&self, plan: &Planned) -> bool {
        plan.remembered
    }

    async fn load(
        &self,
        txn: &DatabaseTransaction,
        asked: &Asked,
        _: &Incoming,
    ) -> Result<Option<Reservation>, HandleError> {
        Ok(store::lock(txn, asked.id).await?)
    }

    fn decide(&self, asked: &Asked, found: Option<Reservation>) -> Result<Option<Planned>, HandleError> {
        // Reservations commit before their first event is published, so this is a bug
        // upstream or a foreign event: keep it in the DLQ.
        let current = found.ok_or_else(|| HandleError::Permanent(format!("no reservation {}", asked.id)))?;
        saga::decide(&self.outbox, asked.input.clone(), asked.origin(), current, None)
            .map(Some)
            .map_err(failed)
    }

    /// Plans decided outside a transaction are remembered as saved and offered to their
    /// waiters; one decided on a locked row is not (its transaction may yet roll back), and
    /// [`Reaction::after_commit`] wakes the waiters.
    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        plans: Vec<(i64, Planned)>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        let keyed: Vec<(i64, &Planned)> = plans.iter().map(|(i, p)| (*i, p)).collect();
        let saved = saga::save(db, &self.outbox, &keyed, claims).await?;
        let locked = plans.iter().any(|(_, p)| p.locked());
        let mut applied: Vec<i64> = if locked {
            saved.into_iter().map(|(i, _)| i).collect()
        } else {
            self.local.saved_each(saved).into_iter().map(|(i, ..)| i).collect()
        };
        applied.sort_unstable();
        Ok(applied)
    }

    fn after_commit(&self, msg: &Incoming) {
        // Every event this handler takes names its reservation.
        if let Some(id) = msg.payload_field("reservationId") {
            self.local.changed(id);
        }
    }
}

/// A failure to decide on a saga's event: a database error is transient; anything else
/// (the reservation's state refuses the event) is permanent, and the DLQ keeps the event.
fn failed(e: Error) -> HandleError {
    match e {
        Error::Db(e) => e.into(),
        refused => HandleError::Permanent(format!("event refused: {refused}")),
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
    use messaging::{Applied, Apply as _, PgInbox, react};

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
        assert_eq!(react(saga.clone()).at_once_each(&db, &claims, &batch).await.unwrap(), [1, 2, 3, 4]);
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
        let inbox = PgInbox::publishing(db.clone(), &saga.outbox.clone(), react(saga.clone()));
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
