//! Reactions to the catalog and to the reservation saga.

use crate::{
    NAME,
    domain::{self, HoldDecision},
    store,
};
use chrono::{DateTime, Utc};
use contracts::{
    ConcertId, Envelope, EnvelopeMeta, Event, ReservationCompleted, ReservationFailed, ReservationId,
    ReservationRequested, ScheduleCancelled, ScheduleChanged, ScheduleCreated, SeatNo, SeatRejectReason,
    SeatReservationRejected, SeatReserved, SeatsReleased, SoldOut, Won,
};
use messaging::{
    Answered, HandleError, Handler, InboxClaims, Incoming, Or, Outbox, OutboxRow, Reacting, Reaction, Split,
    react,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction};
use std::{collections::HashSet, sync::Arc, time::Duration};

/// Builds seat inventory from `ScheduleCreated`, and follows a schedule's sale as organizers
/// move (`ScheduleChanged`) or cancel it (`ScheduleCancelled`).
pub struct Catalog;

impl Handler for Catalog {
    fn handles(&self, kind: &str) -> bool {
        [ScheduleCreated::TYPE, ScheduleChanged::TYPE, ScheduleCancelled::TYPE].contains(&kind)
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        match msg.kind() {
            ScheduleChanged::TYPE => {
                let e = msg.decode::<ScheduleChanged>()?.payload;
                store::move_sale(txn, e.schedule_id, e.sales_open_at).await?;
            }
            ScheduleCancelled::TYPE => {
                let e = msg.decode::<ScheduleCancelled>()?.payload;
                store::cancel(txn, e.schedule_id, e.cancelled_at).await?;
            }
            _ => {
                let e = msg.decode::<ScheduleCreated>()?.payload;
                store::create_schedule(txn, e.schedule_id, e.concert_id, &e.seats, e.sales_open_at).await?;
            }
        }
        Ok(())
    }
}

/// Holds, sells and releases seats for the reservation saga: what its reactions share.
pub struct Reservations {
    pub outbox: Outbox,
    /// How long a hold lasts (the reservation service enforces it).
    pub hold: Duration,
    pub prices: store::Prices,
    /// Seat maps to forget when seats of their schedule change.
    pub maps: crate::maps::SeatMaps,
}

/// The handler of the reservation saga's requests, completions and failures.
pub type SagaHandler = Or<Or<Reacting<Hold>, Reacting<Sell>>, Reacting<Release>>;

impl Reservations {
    /// One handler of its three reactions.
    pub fn handler(self) -> SagaHandler {
        let shared = Arc::new(self);
        react(Hold(shared.clone())).or(react(Sell(shared.clone()))).or(react(Release(shared)))
    }

    /// Forgets the seat map of the schedule `msg` names (every event these reactions take
    /// names its schedule) once its effect is committed.
    fn changed(&self, msg: &Incoming) {
        if let Some(schedule) = msg.payload_field("scheduleId") {
            self.maps.changed(schedule);
        }
    }

    /// When a hold made now ends.
    fn held_until(&self) -> Result<DateTime<Utc>, HandleError> {
        Ok(Utc::now()
            + chrono::Duration::from_std(self.hold).map_err(|e| HandleError::Permanent(e.to_string()))?)
    }

    /// An event of the reservation `req` answers, caused by it.
    fn answer<E: Event>(
        &self,
        req: &Envelope<impl Event>,
        reservation: ReservationId,
        event: E,
    ) -> Result<OutboxRow, HandleError> {
        Ok(self.outbox.row(&Envelope::new(NAME, reservation, event).caused_by(&req.meta()))?)
    }
}

/// Deliveries during which an unknown schedule is taken for the catalog event not having
/// arrived yet (it travels on another stream); after that the request is rejected.
const CATALOG_LAG_DELIVERIES: u64 = 4;

/// Holds a request's seats, all or none.
pub struct Hold(Arc<Reservations>);

/// What a request for seats comes to: the hold, announced by `SeatReserved`, or
/// `SeatReservationRejected`.
pub type Holding = Answered<store::Hold>;

/// What a request's seats were found to be.
pub enum Found {
    /// The schedule is unknown, and stays so past the catalog's lag.
    NoSchedule,
    Schedule {
        concert: ConcertId,
        on_sale: bool,
        seats: Vec<domain::Seat>,
    },
}

/// A request for seats, with its seats sorted once.
pub struct SeatRequest {
    req: Envelope<ReservationRequested>,
    /// The seats asked for, sorted and without repeats.
    seats: Vec<SeatNo>,
    /// Whether no seat was named twice.
    distinct: bool,
}

impl SeatRequest {
    /// The seats the rule decides on: none if a seat was named twice, an invalid request
    /// decided as one naming none.
    fn requested(&self) -> &[SeatNo] {
        if self.distinct { &self.seats } else { &[] }
    }
}

impl Reaction for Hold {
    type Asked = SeatRequest;
    type Found = Found;
    type Plan = Holding;

    fn handles(&self, kind: &str) -> bool {
        kind == ReservationRequested::TYPE
    }

    fn asked(&self, msg: &Incoming) -> Result<Self::Asked, HandleError> {
        let req = msg.decode::<ReservationRequested>()?;
        let mut seats = req.payload.seat_nos.clone();
        seats.sort();
        seats.dedup();
        let distinct = seats.len() == req.payload.seat_nos.len();
        Ok(SeatRequest { req, seats, distinct })
    }

    /// Most requests find their seats free: held by the statement if all are free, the
    /// schedule is on sale, and no earlier request of the batch asks for one of them. A seat
    /// taken or being taken, an unknown schedule or seat leave the request to be decided on the
    /// committed rows.
    async fn assume(
        &self,
        db: &DatabaseConnection,
        asked: &Self::Asked,
        earlier: &[(i64, Holding)],
    ) -> Result<Option<Holding>, HandleError> {
        let SeatRequest { req, seats, distinct } = asked;
        let p = &req.payload;
        let asked_before = |hold: &store::Hold| {
            hold.schedule == p.schedule_id && hold.seats.iter().any(|s| seats.contains(s))
        };
        if !distinct
            || seats.is_empty()
            || earlier.iter().filter_map(|(_, plan)| plan.change()).any(asked_before)
        {
            return Ok(None);
        }
        let Some(priced) = self.0.prices.get(db, p.schedule_id).await? else { return Ok(None) };
        let Some(amount) = priced.amount(seats) else { return Ok(None) };
        Ok(Some(self.hold(req, priced.concert, seats.clone(), amount)?))
    }

    /// In a rush most requests are for seats already taken: those are answered from the
    /// committed rows, without queueing behind the locks of the requests still in flight. Only
    /// a request those rows would let hold takes the locks, and is decided on what it finds then.
    async fn load(
        &self,
        txn: &DatabaseTransaction,
        asked: &Self::Asked,
        msg: &Incoming,
    ) -> Result<Found, HandleError> {
        let p = &asked.req.payload;
        let Some(inventory) = store::inventory(txn, p.schedule_id, Some(&asked.seats)).await? else {
            if msg.deliveries < CATALOG_LAG_DELIVERIES {
                return Err(HandleError::Transient(format!(
                    "schedule {} not in the inventory yet",
                    p.schedule_id
                )));
            }
            return Ok(Found::NoSchedule);
        };
        let on_sale = domain::on_sale(inventory.sales_open_at, inventory.cancelled, Utc::now());
        let seats = match domain::decide_hold(p.reservation_id, asked.requested(), &inventory.seats, on_sale)
        {
            HoldDecision::Hold { .. } => store::lock_seats(txn, p.schedule_id, &asked.seats).await?,
            _ => inventory.seats,
        };
        Ok(Found::Schedule { concert: inventory.concert, on_sale, seats })
    }

    fn decide(&self, asked: &Self::Asked, found: Found) -> Result<Option<Holding>, HandleError> {
        let req = &asked.req;
        let p = &req.payload;
        let reject = |reason| {
            let rejected = SeatReservationRejected {
                reservation_id: p.reservation_id,
                schedule_id: p.schedule_id,
                seat_nos: p.seat_nos.clone(),
                reason,
            };
            Ok(Some(Holding::Refused { announced: self.0.answer(req, p.reservation_id, rejected)? }))
        };
        let Found::Schedule { concert, on_sale, seats } = found else {
            return reject(SeatRejectReason::NotFound);
        };
        match domain::decide_hold(p.reservation_id, asked.requested(), &seats, on_sale) {
            HoldDecision::AlreadyHeld { .. } => Ok(None),
            HoldDecision::Reject(reason) => reject(reason),
            HoldDecision::Hold { amount } => {
                Ok(Some(self.hold(req, concert, asked.seats.clone(), amount)?))
            }
        }
    }

    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        plans: Vec<(i64, Holding)>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        let outbox = &self.0.outbox;
        let Split { changes, announced, refused } = Answered::split(&plans);
        let held = store::hold_each_free(db, &changes, outbox, announced, claims).await?;
        messaging::refusals(db, outbox, refused, claims, held).await
    }

    fn after_commit(&self, msg: &Incoming) {
        self.0.changed(msg);
    }
}

impl Hold {
    /// The hold of `seats` (sorted, distinct) for `req`, and its announcement.
    fn hold(
        &self,
        req: &Envelope<ReservationRequested>,
        concert_id: ConcertId,
        seats: Vec<SeatNo>,
        amount: Won,
    ) -> Result<Holding, HandleError> {
        let p = &req.payload;
        let until = self.0.held_until()?;
        let event = SeatReserved {
            reservation_id: p.reservation_id,
            concert_id,
            schedule_id: p.schedule_id,
            seat_nos: seats.clone(),
            amount,
            held_until: until,
        };
        let reserved = self.0.answer(req, p.reservation_id, event)?;
        let hold = store::Hold { schedule: p.schedule_id, seats, reservation: p.reservation_id, until };
        Ok(Holding::Change { change: hold, announced: reserved })
    }
}

/// Sells what a completed reservation holds, and announces `SoldOut` when that sold its
/// schedule's last seat.
pub struct Sell(Arc<Reservations>);

/// A sale to make, and the completion that asked for it.
pub struct Selling {
    held: store::HeldBy,
    cause: EnvelopeMeta,
}

impl Reaction for Sell {
    type Asked = Envelope<ReservationCompleted>;
    /// Whether the reservation holds seats here (locked).
    type Found = bool;
    type Plan = Selling;

    fn handles(&self, kind: &str) -> bool {
        kind == ReservationCompleted::TYPE
    }

    fn asked(&self, msg: &Incoming) -> Result<Self::Asked, HandleError> {
        msg.decode::<ReservationCompleted>()
    }

    /// Each reservation's sale once a batch.
    async fn assume(
        &self,
        _: &DatabaseConnection,
        done: &Self::Asked,
        earlier: &[(i64, Selling)],
    ) -> Result<Option<Selling>, HandleError> {
        let selling = selling(done);
        Ok((!earlier.iter().any(|(_, s)| s.held.reservation == selling.held.reservation)).then_some(selling))
    }

    async fn load(
        &self,
        txn: &DatabaseTransaction,
        done: &Self::Asked,
        _: &Incoming,
    ) -> Result<bool, HandleError> {
        Ok(store::holds_any(txn, selling(done).held).await?)
    }

    fn decide(&self, done: &Self::Asked, holds: bool) -> Result<Option<Selling>, HandleError> {
        if !holds {
            tracing::warn!(reservation = %done.payload.reservation_id, "completed reservation holds no seats here");
            return Ok(None);
        }
        Ok(Some(selling(done)))
    }

    /// Then looks at every completion's schedule, not only those this statement sold: a sale
    /// delivered again (its first delivery committed the sale, then the process stopped before
    /// announcing) is a duplicate from here on, and this is its only chance to announce
    /// `SoldOut`. Announcing is idempotent (`mark_sold_out`). Whether a sale sold its schedule
    /// out is seen once it is committed, so a batch's is seen by the next statement.
    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        plans: Vec<(i64, Selling)>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        let sales: Vec<(i64, store::HeldBy)> = plans.iter().map(|(i, s)| (*i, s.held)).collect();
        let mut sold: Vec<i64> =
            store::sell_each(db, &sales, claims).await?.iter().map(|(i, ..)| *i).collect();
        sold.dedup();
        let mut checked = HashSet::new();
        for (_, selling) in &plans {
            if checked.insert(selling.held.schedule) {
                self.announce_if_sold_out(db, selling).await?;
            }
        }
        Ok(sold)
    }

    fn after_commit(&self, msg: &Incoming) {
        self.0.changed(msg);
    }
}

/// The sale a completion asks for.
fn selling(done: &Envelope<ReservationCompleted>) -> Selling {
    let p = &done.payload;
    Selling {
        held: store::HeldBy { schedule: p.schedule_id, reservation: p.reservation_id },
        cause: done.meta(),
    }
}

impl Sell {
    /// Announces `SoldOut` (once) if no seat of the schedule `selling` sold in is left unsold.
    async fn announce_if_sold_out(
        &self,
        db: &impl ConnectionTrait,
        selling: &Selling,
    ) -> Result<(), HandleError> {
        let schedule = selling.held.schedule;
        let Some((concert_id, first_sold_at, sold_out_at)) = store::sold_out(db, schedule).await? else {
            return Ok(());
        };
        let event = SoldOut {
            schedule_id: schedule,
            concert_id,
            sold_out_at,
            seconds_to_sell_out: (sold_out_at - first_sold_at).num_seconds(),
        };
        let event = self.0.outbox.row(&Envelope::new(NAME, schedule, event).caused_by(&selling.cause))?;
        store::mark_sold_out(db, schedule, sold_out_at, &self.0.outbox, &[event]).await?;
        Ok(())
    }
}

/// Releases what a failed reservation holds (one that holds nothing here is released by doing
/// nothing), announcing the seats it freed.
pub struct Release(Arc<Reservations>);

impl Reaction for Release {
    type Asked = Envelope<ReservationFailed>;
    type Found = ();
    /// The seats to release, and their announcement (its seats filled in by the statement).
    type Plan = (store::HeldBy, OutboxRow);

    fn handles(&self, kind: &str) -> bool {
        kind == ReservationFailed::TYPE
    }

    fn asked(&self, msg: &Incoming) -> Result<Self::Asked, HandleError> {
        msg.decode::<ReservationFailed>()
    }

    /// Each reservation's release once a batch.
    async fn assume(
        &self,
        _: &DatabaseConnection,
        failed: &Self::Asked,
        earlier: &[(i64, Self::Plan)],
    ) -> Result<Option<Self::Plan>, HandleError> {
        let reservation = failed.payload.reservation_id;
        if earlier.iter().any(|(_, (held, _))| held.reservation == reservation) {
            return Ok(None);
        }
        self.decide(failed, ())
    }

    async fn load(&self, _: &DatabaseTransaction, _: &Self::Asked, _: &Incoming) -> Result<(), HandleError> {
        Ok(())
    }

    fn decide(&self, failed: &Self::Asked, (): ()) -> Result<Option<Self::Plan>, HandleError> {
        let p = &failed.payload;
        let event = SeatsReleased {
            reservation_id: p.reservation_id,
            schedule_id: p.schedule_id,
            seat_nos: Vec::new(),
        };
        let held = store::HeldBy { schedule: p.schedule_id, reservation: p.reservation_id };
        Ok(Some((held, self.0.answer(failed, p.reservation_id, event)?)))
    }

    async fn save<C: ConnectionTrait>(
        &self,
        db: &C,
        plans: Vec<(i64, Self::Plan)>,
        claims: Option<&InboxClaims<'_>>,
    ) -> Result<Vec<i64>, HandleError> {
        let releases: Vec<(i64, store::HeldBy)> = plans.iter().map(|(i, (held, _))| (*i, *held)).collect();
        let events = plans.iter().map(|(i, (_, event))| (*i, event)).collect();
        Ok(store::release_each(db, &releases, &self.0.outbox, events, claims).await?)
    }

    fn after_commit(&self, msg: &Incoming) {
        self.0.changed(msg);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use contracts::{ReservationId, ScheduleId, SeatPrice, UserId};
    use messaging::{Applied, Apply as _, PgInbox};
    use sea_orm::{DbBackend, Statement};

    const INBOX: &str = "seat__RESERVATION";

    /// The handler as the service builds it, writing to `outbox`.
    fn handler(outbox: &Outbox) -> SagaHandler {
        Reservations {
            outbox: outbox.clone(),
            hold: Duration::from_secs(300),
            prices: store::Prices::default(),
            maps: crate::maps::SeatMaps::new(Duration::from_millis(100)),
        }
        .handler()
    }

    /// A schedule with seats 1..=`n`, each at 100 won.
    async fn schedule_of(db: &DatabaseConnection, n: i32) -> ScheduleId {
        let schedule = ScheduleId::new();
        let prices: Vec<SeatPrice> =
            (1..=n).map(|n| SeatPrice { seat_no: SeatNo(n), price: Won(100) }).collect();
        store::create_schedule(db, schedule, ConcertId::new(), &prices, None).await.unwrap();
        schedule
    }

    fn request(schedule: ScheduleId, seats: &[i32]) -> Incoming {
        let r = ReservationId::new();
        let e = ReservationRequested {
            reservation_id: r,
            user_id: UserId::new(),
            schedule_id: schedule,
            seat_nos: seats.iter().copied().map(SeatNo).collect(),
            queue_token: String::new(),
        };
        Incoming::first_delivery(&Envelope::new("reservation", r, e)).unwrap()
    }

    /// `(seat, status, reservation)` of every seat of `schedule`, by number.
    async fn seats(db: &DatabaseConnection, schedule: ScheduleId) -> Vec<(i32, String, Option<uuid::Uuid>)> {
        let rows = db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT seat_no, status, reservation_id FROM seat.seats WHERE schedule_id = $1 ORDER BY seat_no",
                [schedule.0.into()],
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| {
                (
                    r.try_get("", "seat_no").unwrap(),
                    r.try_get("", "status").unwrap(),
                    r.try_get("", "reservation_id").unwrap(),
                )
            })
            .collect()
    }

    /// The reservation each outbox row names, with the row's event type, in outbox order.
    async fn announced(env: &testkit::TestEnv) -> Vec<(String, uuid::Uuid)> {
        let envelopes = env.outbox_envelopes(crate::SCHEMA).await.unwrap();
        envelopes
            .iter()
            .map(|e| {
                let reservation = e["payload"]["reservationId"].as_str().unwrap().parse().unwrap();
                (e["type"].as_str().unwrap().to_owned(), reservation)
            })
            .collect()
    }

    fn reservation(msg: &Incoming) -> uuid::Uuid {
        msg.payload_field("reservationId").unwrap()
    }

    #[tokio::test]
    async fn a_batch_holds_at_once_only_what_is_free_and_asked_once_and_the_rest_is_decided_one_by_one() {
        let env = testkit::TestEnv::new().await.unwrap();
        let db = env.db.clone();
        let schedule = schedule_of(&db, 6).await;
        let outbox = Outbox::new(crate::SCHEMA, env.ns.clone());
        let handler = handler(&outbox);
        let taken = request(schedule, &[6]);
        let batch = [
            request(schedule, &[1, 2]),
            request(schedule, &[2, 3]), // asks for seat 2 after the first: decided afterwards
            request(schedule, &[4]),
            request(schedule, &[5, 6]), // seat 6 is held already
            request(schedule, &[99]),   // no such seat
            request(schedule, &[3, 3]), // a seat twice
        ];
        let ids = |msgs: &[Incoming]| msgs.iter().map(|m| m.envelope.id.0).collect::<Vec<_>>();
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, ids(std::slice::from_ref(&taken)));
        assert_eq!(handler.at_once_each(&db, &claims, std::slice::from_ref(&taken)).await.unwrap(), [1]);
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, ids(&batch));
        assert_eq!(handler.at_once_each(&db, &claims, &batch).await.unwrap(), [1, 3]);
        let r = |i: usize| Some(reservation(&batch[i]));
        assert_eq!(
            seats(&db, schedule).await,
            [
                (1, "HELD".into(), r(0)),
                (2, "HELD".into(), r(0)),
                (3, "AVAILABLE".into(), None),
                (4, "HELD".into(), r(2)),
                (5, "AVAILABLE".into(), None),
                (6, "HELD".into(), Some(reservation(&taken))),
            ]
        );

        // Delivered again: nothing is free for the events held before, and the rest is decided
        // in one transaction, those asking for a taken seat rejected.
        let inbox = PgInbox::publishing(db.clone(), &outbox, handler);
        let outcomes = |applied: Vec<Result<Applied, HandleError>>| -> Vec<Applied> {
            applied.into_iter().map(Result::unwrap).collect()
        };
        use Applied::{Done, Duplicate};
        assert_eq!(
            outcomes(inbox.apply_batch(INBOX, &batch).await),
            [Duplicate, Done, Duplicate, Done, Done, Done]
        );
        let reserved = |m: &Incoming| (SeatReserved::TYPE.to_owned(), reservation(m));
        let rejected = |m: &Incoming| (SeatReservationRejected::TYPE.to_owned(), reservation(m));
        let mut expected = vec![reserved(&taken), reserved(&batch[0]), reserved(&batch[2])];
        expected.extend([1, 3, 4, 5].map(|i| rejected(&batch[i])));
        assert_eq!(announced(&env).await, expected);

        // An event held before whose seats are free again would be held again by the batch's
        // statement: its inbox row makes the statement fail, and the batch is decided in a
        // transaction instead, the event a duplicate.
        let held = store::HeldBy { schedule, reservation: ReservationId(reservation(&batch[2])) };
        store::release_each(&db, &[(1, held)], &outbox, Vec::new(), None).await.unwrap();
        let again = [batch[2].clone(), request(schedule, &[3])];
        assert_eq!(outcomes(inbox.apply_batch(INBOX, &again).await), [Duplicate, Done]);
        expected.push(reserved(&again[1]));
        assert_eq!(
            seats(&db, schedule).await[2..4],
            [(3, "HELD".into(), Some(reservation(&again[1]))), (4, "AVAILABLE".into(), None)]
        );

        // New requests for the seats left: held together, at once.
        let last = [request(schedule, &[4]), request(schedule, &[5])];
        assert_eq!(outcomes(inbox.apply_batch(INBOX, &last).await), [Done, Done]);
        expected.extend(last.iter().map(reserved));
        assert!(seats(&db, schedule).await.iter().all(|(_, status, _)| status == "HELD"));
        assert_eq!(announced(&env).await, expected);
    }

    #[tokio::test]
    async fn nothing_is_held_before_the_sale_opens() {
        let env = testkit::TestEnv::new().await.unwrap();
        let db = env.db.clone();
        let (early, open) = (ScheduleId::new(), ScheduleId::new());
        let prices = [SeatPrice { seat_no: SeatNo(1), price: Won(100) }];
        let opens = chrono::Utc::now() + chrono::Duration::hours(1);
        store::create_schedule(&db, early, ConcertId::new(), &prices, Some(opens)).await.unwrap();
        let opened = chrono::Utc::now() - chrono::Duration::seconds(1);
        store::create_schedule(&db, open, ConcertId::new(), &prices, Some(opened)).await.unwrap();
        let outbox = Outbox::new(crate::SCHEMA, env.ns.clone());
        let inbox = PgInbox::publishing(db.clone(), &outbox, handler(&outbox));
        let batch = [request(early, &[1]), request(open, &[1])];
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, batch.iter().map(|m| m.envelope.id.0).collect());
        assert_eq!(handler(&outbox).at_once_each(&db, &claims, &batch).await.unwrap(), [2]);
        let rest = std::slice::from_ref(&batch[0]);
        assert_eq!(inbox.apply_batch(INBOX, rest).await.pop().unwrap().unwrap(), Applied::Done);
        assert_eq!(seats(&db, early).await, [(1, "AVAILABLE".into(), None)]);
        let rejected: Vec<serde_json::Value> = env
            .outbox_envelopes(crate::SCHEMA)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e["type"] == SeatReservationRejected::TYPE)
            .map(|e| e["payload"]["reason"].clone())
            .collect();
        assert_eq!(rejected, [serde_json::json!("NOT_ON_SALE")]);
    }

    fn completed(schedule: ScheduleId, held: &Incoming) -> Incoming {
        let r = ReservationId(reservation(held));
        let e = ReservationCompleted {
            reservation_id: r,
            user_id: UserId::new(),
            concert_id: ConcertId::new(),
            schedule_id: schedule,
            seat_nos: Vec::new(),
            amount: Won(100),
            queue_token: String::new(),
        };
        Incoming::first_delivery(&Envelope::new("reservation", r, e)).unwrap()
    }

    #[tokio::test]
    async fn a_batch_sells_at_once_what_its_completed_reservations_hold_and_announces_each_sell_out_once() {
        let env = testkit::TestEnv::new().await.unwrap();
        let db = env.db.clone();
        let (two, three) = (schedule_of(&db, 2).await, schedule_of(&db, 3).await);
        let outbox = Outbox::new(crate::SCHEMA, env.ns.clone());
        let handler = handler(&outbox);
        let inbox = PgInbox::publishing(db.clone(), &outbox, handler);
        let held = [request(two, &[1]), request(two, &[2]), request(three, &[1, 2]), request(three, &[3])];
        let outcomes = |applied: Vec<Result<Applied, HandleError>>| -> Vec<Applied> {
            applied.into_iter().map(Result::unwrap).collect()
        };
        use Applied::{Done, Duplicate};
        assert_eq!(outcomes(inbox.apply_batch(INBOX, &held).await), [Done, Done, Done, Done]);

        // Both of schedule `two`'s reservations and one of `three`'s complete in one batch, one
        // of them delivered twice, with a completion of a reservation that holds nothing here.
        let stranger = request(two, &[1]);
        let first = completed(two, &held[0]);
        let batch = [
            first.clone(),
            completed(three, &held[2]),
            completed(two, &held[1]),
            first, // the same event again: left to the transaction, which finds it applied
            completed(two, &stranger),
        ];
        assert_eq!(outcomes(inbox.apply_batch(INBOX, &batch).await), [Done, Done, Done, Duplicate, Done]);
        let status = |rows: Vec<(i32, String, Option<uuid::Uuid>)>| -> Vec<String> {
            rows.into_iter().map(|(_, status, _)| status).collect()
        };
        assert_eq!(status(seats(&db, two).await), ["SOLD", "SOLD"]);
        assert_eq!(status(seats(&db, three).await), ["SOLD", "SOLD", "HELD"]);
        let sold_out: Vec<uuid::Uuid> = env
            .outbox_envelopes(crate::SCHEMA)
            .await
            .unwrap()
            .iter()
            .filter(|e| e["type"] == SoldOut::TYPE)
            .map(|e| e["payload"]["scheduleId"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(sold_out, [two.0], "schedule `two` sold out, announced once");

        // The last seat sold later, alone: `three` sells out too.
        let last = [completed(three, &held[3])];
        assert_eq!(outcomes(inbox.apply_batch(INBOX, &last).await), [Done]);
        assert_eq!(status(seats(&db, three).await), ["SOLD", "SOLD", "SOLD"]);
        let sold_out = env.outbox_envelopes(crate::SCHEMA).await.unwrap();
        assert_eq!(sold_out.iter().filter(|e| e["type"] == SoldOut::TYPE).count(), 2);
    }

    fn failed(schedule: ScheduleId, held: &Incoming) -> Incoming {
        let r = ReservationId(reservation(held));
        let e = ReservationFailed {
            reservation_id: r,
            user_id: UserId::new(),
            schedule_id: schedule,
            seat_nos: Vec::new(),
            reason: contracts::ReservationFailureReason::Expired,
            queue_token: String::new(),
        };
        Incoming::first_delivery(&Envelope::new("reservation", r, e)).unwrap()
    }

    #[tokio::test]
    async fn a_batch_releases_at_once_what_its_failed_reservations_hold_and_announces_only_what_it_freed() {
        let env = testkit::TestEnv::new().await.unwrap();
        let db = env.db.clone();
        let (one, other) = (schedule_of(&db, 3).await, schedule_of(&db, 1).await);
        let outbox = Outbox::new(crate::SCHEMA, env.ns.clone());
        let inbox = PgInbox::publishing(db.clone(), &outbox, handler(&outbox));
        let held = [request(one, &[2, 1]), request(one, &[3]), request(other, &[1])];
        for h in &held {
            inbox.apply_batch(INBOX, std::slice::from_ref(h)).await.pop().unwrap().unwrap();
        }
        let before = announced(&env).await.len();

        // Two reservations end in one batch, one of them delivered twice, with the end of a
        // reservation that holds nothing here (its hold was refused).
        let stranger = request(one, &[1]);
        let first = failed(one, &held[0]);
        let batch = [first.clone(), failed(other, &held[2]), first, failed(one, &stranger)];
        let claims = InboxClaims::new(crate::SCHEMA, INBOX, batch.iter().map(|m| m.envelope.id.0).collect());
        let handler = handler(&outbox);
        assert_eq!(
            handler.at_once_each(&db, &claims, &batch).await.unwrap(),
            [1, 2, 4],
            "each reservation's end at once; the repeat is left to the transaction"
        );
        let status = |rows: Vec<(i32, String, Option<uuid::Uuid>)>| -> Vec<String> {
            rows.into_iter().map(|(_, status, _)| status).collect()
        };
        assert_eq!(status(seats(&db, one).await), ["AVAILABLE", "AVAILABLE", "HELD"]);
        assert_eq!(status(seats(&db, other).await), ["AVAILABLE"]);
        let released: Vec<(uuid::Uuid, serde_json::Value)> = env
            .outbox_envelopes(crate::SCHEMA)
            .await
            .unwrap()
            .into_iter()
            .skip(before)
            .map(|e| {
                assert_eq!(e["type"], SeatsReleased::TYPE);
                (
                    e["payload"]["reservationId"].as_str().unwrap().parse().unwrap(),
                    e["payload"]["seatNos"].clone(),
                )
            })
            .collect();
        assert_eq!(
            released,
            [
                (reservation(&held[0]), serde_json::json!([1, 2])),
                (reservation(&held[2]), serde_json::json!([1]))
            ],
            "a release that freed nothing says nothing"
        );

        // The whole batch again: every message is a duplicate and nothing changes.
        let inbox = PgInbox::publishing(db.clone(), &outbox, handler);
        let again: Vec<Applied> =
            inbox.apply_batch(INBOX, &batch).await.into_iter().map(Result::unwrap).collect();
        assert!(again.iter().all(|a| *a == Applied::Duplicate), "{again:?}");
        assert_eq!(announced(&env).await.len(), before + 2);
    }

    #[tokio::test]
    async fn a_sale_delivered_again_after_a_stop_before_its_sold_out_announces_it() {
        let env = testkit::TestEnv::new().await.unwrap();
        let db = env.db.clone();
        let schedule = schedule_of(&db, 1).await;
        let outbox = Outbox::new(crate::SCHEMA, env.ns.clone());
        let handler = handler(&outbox);
        let inbox = PgInbox::publishing(db.clone(), &outbox, handler);
        let held = request(schedule, &[1]);
        inbox.apply_batch(INBOX, std::slice::from_ref(&held)).await.pop().unwrap().unwrap();
        // The sale's statement committed (seat and inbox row), then the process stopped.
        let done = completed(schedule, &held);
        let claims = messaging::InboxClaims::new(crate::SCHEMA, INBOX, vec![done.envelope.id.0]);
        let sale = (1, store::HeldBy { schedule, reservation: ReservationId(reservation(&held)) });
        assert_eq!(store::sell_each(&db, &[sale], Some(&claims)).await.unwrap().len(), 1);
        let sold_out = || async {
            let envelopes = env.outbox_envelopes(crate::SCHEMA).await.unwrap();
            envelopes.iter().filter(|e| e["type"] == SoldOut::TYPE).count()
        };
        assert_eq!(sold_out().await, 0);

        let again = inbox.apply_batch(INBOX, &[done]).await.pop().unwrap().unwrap();
        assert_eq!(again, Applied::Duplicate);
        assert_eq!(sold_out().await, 1, "announced on the redelivery");
    }
}
