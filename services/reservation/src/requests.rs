//! What users ask of their reservations, behind one facade ([`Requests`]): a request is checked,
//! written once, and answered at once or, with `Prefer: wait`, once its reservation settles.
//!
//! Its parts stay inside: the schedules requests are checked against, the reservations this
//! process last wrote (a change starts from one instead of reading the row), the combiners that
//! write the requests arriving together in one statement, and the waiters. The Idempotency-Key
//! is a layer around the one write ([`Requests::write`]): a retry is answered from what the
//! first request kept, and a key makes the write keep its answer in the same statement.

use crate::{
    SCHEMA,
    domain::{Input, Reservation, Status},
    error::Error,
    saga::{self, Local, Origin, Saves},
    store::{self, Inserts, NewReservation, Schedules, TimelineEntry},
    waiters::{RECHECK, Watch},
};
use axum::http::StatusCode;
use chrono::Utc;
use contracts::{Envelope, ReservationId, ReservationRequested, ScheduleId, SeatNo, UserId};
use messaging::Outbox;
use platform::{
    auth::Identity,
    combine::Combiner,
    idempotency::{self, Answer, Kept, Keyed, MaybeKey, StoredResponse},
    queue_guard::{Admitted, QueueTicket},
};
use sea_orm::{DatabaseConnection, TransactionTrait};
use std::time::Duration;

/// Seats one reservation may hold.
pub const MAX_SEATS: usize = 4;

/// The highest seat number a schedule can have: the catalog numbers a schedule's seats 1-50.
pub const MAX_SEAT_NO: i64 = 50;

/// Writers of the requests' inserts and changes, of each: one, so that under load the
/// requests that arrive while it writes wait to be written together.
const WRITERS: usize = 1;
/// Requests written in one statement at most.
const AT_ONCE: usize = 64;
/// Requests waiting for a writer at most, of each: more are answered 503 at once.
const WAITING: usize = 16 * AT_ONCE;

/// How often a followed reservation is read even without a signal: a change another replica
/// made and failed to tell shows within this.
pub const FOLLOW_RECHECK: Duration = Duration::from_secs(2);

/// A reservation being followed ([`Requests::follow`]).
struct Following {
    watch: Watch,
    /// The signals seen.
    seen: u64,
    /// The first reading, to be shown at once.
    first: Option<(Reservation, Vec<TimelineEntry>)>,
    /// The length of the timeline last shown: a longer one is a later state.
    shown: usize,
    /// Whether the last state shown was terminal.
    ended: bool,
}

/// Users' requests of their reservations.
#[derive(Clone)]
pub struct Requests {
    db: DatabaseConnection,
    outbox: Outbox,
    schedules: Schedules,
    local: Local,
    inserts: Combiner<Inserts>,
    saves: Combiner<Saves>,
}

/// What a user asks.
pub enum Ask {
    /// To hold 1-[`MAX_SEATS`] seats of a schedule.
    Hold { schedule: ScheduleId, seats: Vec<i32> },
    /// To pay for a HELD reservation, by wallet or card.
    Pay(ReservationId, contracts::PaymentMethod),
}

impl Ask {
    /// Whether the reservation no longer waits for what this request started.
    fn settled(&self, status: Status) -> bool {
        match self {
            Ask::Hold { .. } => status != Status::Pending,
            Ask::Pay(..) => status != Status::Paying,
        }
    }
}

/// How a request is answered.
pub enum Settled {
    /// At once: `202 {id, status}`, or the first request's answer replayed.
    Answered(Answer),
    /// After waiting (`Prefer: wait`): the reservation as it stands, with its timeline.
    Viewed(Viewed),
}

/// A reservation shown to a request that waited for it.
pub struct Viewed {
    pub reservation: Reservation,
    pub timeline: Vec<TimelineEntry>,
    /// Whether it settled (or the wait ended first).
    pub settled: bool,
    /// Whether the request was a retry answered from the first one's answer.
    pub replayed: bool,
}

/// A change a request makes.
enum Change {
    /// A new reservation, with the event that announces it.
    Insert(Box<NewReservation>),
    /// An input to an existing reservation of the user's.
    Apply { id: ReservationId, input: Input },
}

/// A request's answer as written, with the length of the timeline its write left when known (a
/// view offered with a longer one is of a later state).
struct Written {
    answer: Answer,
    entries: Option<usize>,
}

/// How a request waits (`Prefer: wait`).
struct Wait<'a> {
    limit: Duration,
    ask: &'a Ask,
    /// A watch registered before the request's own write: when the answer is that write's (not
    /// a replay), the reservation was unsettled then, so instead of reading it at once the wait
    /// starts with the first change signalled since (one read fewer per request).
    early: Option<Watch>,
}

impl Requests {
    /// The facade of the service's requests; `local` is what the consumers and the sweeper
    /// also tell of their changes.
    pub fn start(db: DatabaseConnection, outbox: Outbox, local: Local, limits: crate::Limits) -> Self {
        let inserts = Inserts { db: db.clone(), outbox: outbox.clone(), limits };
        let saves = Saves { db: db.clone(), outbox: outbox.clone(), local: local.clone() };
        Self {
            schedules: Schedules::default(),
            inserts: Combiner::start("reservation inserts", inserts, WRITERS, AT_ONCE, WAITING),
            saves: Combiner::start("reservation saves", saves, WRITERS, AT_ONCE, WAITING),
            db,
            outbox,
            local,
        }
    }

    /// Does what `ask` asks for the holder of `ticket`, once per `key` (`request` is what the
    /// key's first use is compared with); with `wait`, answers once the reservation settles.
    pub async fn ask(
        &self,
        ticket: QueueTicket,
        key: &MaybeKey,
        request: &[&[u8]],
        wait: Option<Duration>,
        ask: Ask,
    ) -> Result<Settled, Error> {
        // A retry of a request that went through is answered as before, even if the queue token
        // has been spent since.
        if let Some(answer) = idempotency::stored(&self.db, SCHEMA, &ticket.identity, key, request).await? {
            let wait = wait.map(|limit| Wait { limit, ask: &ask, early: None });
            return self.settle(&ticket.identity, Written { answer, entries: None }, wait).await;
        }
        let booked = match &ask {
            Ask::Hold { schedule, .. } => Some(*schedule),
            Ask::Pay(..) => None,
        };
        let admitted = ticket.admit(booked).await?;
        let who = admitted.identity;
        let change = self.change(&ask, admitted).await?;
        let early = wait.map(|_| self.local.waiters.watch(change.id()));
        let written = self.write(&who, key, request, change).await?;
        self.settle(&who, written, wait.map(|limit| Wait { limit, ask: &ask, early })).await
    }

    /// The change `ask` makes for the admitted user.
    async fn change(&self, ask: &Ask, admitted: Admitted) -> Result<Change, Error> {
        let user = admitted.identity.user_id;
        match ask {
            Ask::Pay(id, method) => {
                Ok(Change::Apply { id: *id, input: Input::Pay { now: Utc::now(), method: *method } })
            }
            Ask::Hold { schedule, seats } => {
                let (concert_id, schedule_seats) =
                    self.schedules.get(&self.db, *schedule).await?.ok_or(Error::ScheduleNotFound)?;
                let row = Reservation {
                    id: ReservationId::for_schedule(*schedule),
                    user_id: user,
                    schedule_id: *schedule,
                    concert_id,
                    seat_nos: validate_seats(seats, &schedule_seats)?,
                    status: Status::Pending,
                    amount: None,
                    held_until: None,
                    failure_reason: None,
                    queue_token: admitted.token.unwrap_or_default(),
                    paid: false,
                    method: None,
                    created_at: Utc::now(),
                };
                Ok(Change::Insert(Box::new(announced(&self.outbox, row)?)))
            }
        }
    }

    /// Writes a request's change, once, in one statement with the requests that arrive
    /// meanwhile; with a key, the statement also keeps the answer under it. A keyed request
    /// that did not go through (refused, or its statement failing on the key) answers as the
    /// request with its key that went through first, if there is one: a twin sent at the same
    /// time, whose write made this one's refused or failed.
    async fn write(
        &self,
        who: &Identity,
        key: &MaybeKey,
        request: &[&[u8]],
        change: Change,
    ) -> Result<Written, Error> {
        let keyed = Keyed::of(who, key, request);
        let written = match change {
            Change::Insert(new) => self.insert(*new, keyed.as_ref()).await,
            Change::Apply { id, input } => self.apply(who, key, request, id, input, keyed.as_ref()).await,
        };
        match written {
            Err(e) if keyed.is_some() => {
                match idempotency::stored(&self.db, SCHEMA, who, key, request).await? {
                    Some(answer) => Ok(Written { answer, entries: None }),
                    None => Err(e),
                }
            }
            written => written,
        }
    }

    /// A new reservation, written with the others that arrive meanwhile.
    async fn insert(&self, mut new: NewReservation, keyed: Option<&Keyed>) -> Result<Written, Error> {
        let answer = accepted(&new.row)?;
        new.kept = keyed.map(|k| k.keeping(answer.clone()));
        let stored = inserted(self.inserts.run(new).await?)?;
        self.local.saved(stored.row, stored.version, None);
        Ok(Written { answer: servicekit::answered(&self.outbox, answer), entries: Some(stored.entries) })
    }

    /// An input to a reservation of the user's, written with the others that arrive meanwhile;
    /// in a transaction when the row moved under it twice.
    async fn apply(
        &self,
        who: &Identity,
        key: &MaybeKey,
        request: &[&[u8]],
        id: ReservationId,
        input: Input,
        keyed: Option<&Keyed>,
    ) -> Result<Written, Error> {
        let user = who.user_id;
        let keep = |r: &Reservation| -> Result<Option<Kept>, Error> {
            Ok(match keyed {
                Some(k) => Some(k.keeping(accepted(r)?)),
                None => None,
            })
        };
        if let Some((row, entries)) =
            saga::apply_requested(&self.saves, id, input.clone(), user, keep).await?
        {
            let answer = servicekit::answered(&self.outbox, accepted(&row)?);
            return Ok(Written { answer, entries });
        }
        let outbox = self.outbox.clone();
        let answer = servicekit::idempotent(&self.outbox, &self.db, who, key, request, |txn| {
            Box::pin(async move {
                let r = saga::apply(txn, &outbox, id, input, Origin::Request { user }).await?;
                Ok(accepted(&r)?)
            })
        })
        .await?;
        Ok(Written { answer, entries: None })
    }

    /// Answers at once, or with a `wait`, once the reservation settles (or the wait ends).
    async fn settle(
        &self,
        who: &Identity,
        written: Written,
        wait: Option<Wait<'_>>,
    ) -> Result<Settled, Error> {
        let Written { answer, entries: own } = written;
        let (Some(Wait { limit, ask, early }), Some(id)) = (
            wait,
            answer
                .stored
                .body
                .get("id")
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse::<ReservationId>().ok()),
        ) else {
            return Ok(Settled::Answered(answer));
        };
        let deadline = tokio::time::Instant::now() + limit;
        let (watch, mut look) = match early {
            Some(watch) if !answer.replayed && watch.id() == id => (watch, false),
            _ => (self.local.waiters.watch(id), true),
        };
        let mut seen = watch.since();
        loop {
            // A consumer of this process offered the settled reservation, as a later commit
            // left it: answered without a read.
            if look
                && let Some(view) = own.and_then(|entries| watch.offered_after(entries))
                && ask.settled(view.reservation.status)
                && view.reservation.user_id == who.user_id
            {
                return Ok(Settled::Viewed(Viewed {
                    reservation: view.reservation.clone(),
                    timeline: view.timeline.clone(),
                    settled: true,
                    replayed: false,
                }));
            }
            if look {
                // Counted before the read, so a change committed in between still wakes us.
                seen = watch.count();
                let (reservation, timeline) = self.find(who.user_id, id).await?;
                let settled = ask.settled(reservation.status);
                if settled || tokio::time::Instant::now() >= deadline {
                    return Ok(Settled::Viewed(Viewed {
                        reservation,
                        timeline,
                        settled,
                        replayed: answer.replayed,
                    }));
                }
            }
            look = true;
            let wake = deadline.min(tokio::time::Instant::now() + RECHECK);
            let _ = tokio::time::timeout_at(wake, watch.after(seen)).await;
        }
    }

    /// One of the user's reservations with its timeline, at once and again after each change
    /// as it commits, until it ends (a terminal status) or the stream is dropped. A change
    /// signalled here or by another replica is read at once; a lost signal costs at most
    /// [`FOLLOW_RECHECK`].
    pub async fn follow(
        &self,
        user: UserId,
        id: ReservationId,
    ) -> Result<impl futures::Stream<Item = (Reservation, Vec<TimelineEntry>)> + Send + 'static, Error> {
        // Watched before the first read, so a change committed in between is seen.
        let watch = self.local.waiters.watch(id);
        let seen = watch.count();
        let first = self.find(user, id).await?;
        let following = Following { watch, seen, first: Some(first), shown: 0, ended: false };
        let requests = self.clone();
        Ok(futures::stream::unfold(following, move |mut f| {
            let requests = requests.clone();
            async move {
                let next = match f.first.take() {
                    Some(first) => first,
                    None if f.ended => return None,
                    None => loop {
                        let _ = tokio::time::timeout(FOLLOW_RECHECK, f.watch.after(f.seen)).await;
                        f.seen = f.watch.count();
                        let read = match f.watch.offered_after(f.shown) {
                            Some(view) => (view.reservation.clone(), view.timeline.clone()),
                            // A failed read is tried again at the next signal or recheck.
                            None => match requests.find(user, id).await {
                                Ok(read) => read,
                                Err(_) => continue,
                            },
                        };
                        if read.1.len() > f.shown {
                            break read;
                        }
                    },
                };
                f.shown = next.1.len();
                f.ended = next.0.status.is_terminal();
                Some((next, f))
            }
        }))
    }

    /// One of the user's reservations, with its timeline.
    pub async fn find(
        &self,
        user: UserId,
        id: ReservationId,
    ) -> Result<(Reservation, Vec<TimelineEntry>), Error> {
        store::get_with_timeline(&self.db, id, user).await?.ok_or(Error::NotFound)
    }

    /// The user's reservations before the cursor, newest first.
    pub async fn list(
        &self,
        user: UserId,
        before: Option<uuid::Uuid>,
        limit: u64,
    ) -> Result<Vec<Reservation>, Error> {
        Ok(store::list(&self.db, user, before, limit).await?)
    }

    /// Cancels one of the user's HELD reservations; answers it with its timeline.
    pub async fn cancel(
        &self,
        user: UserId,
        id: ReservationId,
    ) -> Result<(Reservation, Vec<TimelineEntry>), Error> {
        let txn = self.db.begin().await?;
        let r = saga::apply(&txn, &self.outbox, id, Input::Cancel, Origin::Request { user }).await?;
        let timeline = store::timeline(&txn, id).await?;
        self.outbox.commit(txn).await?;
        Ok((r, timeline))
    }
}

impl Change {
    fn id(&self) -> ReservationId {
        match self {
            Change::Insert(new) => new.row.id,
            Change::Apply { id, .. } => *id,
        }
    }
}

/// Sorted, unique, 1-[`MAX_SEATS`] seats that the schedule has.
fn validate_seats(requested: &[i32], schedule_seats: &[SeatNo]) -> Result<Vec<SeatNo>, Error> {
    if requested.is_empty() || requested.len() > MAX_SEATS {
        return Err(Error::Invalid(format!("seatNos must list 1-{MAX_SEATS} seats")));
    }
    if let Some(n) = requested.iter().find(|n| !(1..=MAX_SEAT_NO).contains(&i64::from(**n))) {
        return Err(Error::Invalid(format!("seat {n} is outside 1-{MAX_SEAT_NO}")));
    }
    let mut seats: Vec<SeatNo> = requested.iter().copied().map(SeatNo).collect();
    seats.sort();
    if seats.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Invalid("seatNos must not repeat a seat".into()));
    }
    if let Some(unknown) = seats.iter().find(|s| !schedule_seats.contains(s)) {
        return Err(Error::SeatNotInSchedule(*unknown));
    }
    Ok(seats)
}

/// A new reservation with the `ReservationRequested` that announces it.
fn announced(outbox: &Outbox, r: Reservation) -> Result<NewReservation, Error> {
    let requested = ReservationRequested {
        reservation_id: r.id,
        user_id: r.user_id,
        schedule_id: r.schedule_id,
        seat_nos: r.seat_nos.clone(),
        queue_token: r.queue_token.clone(),
    };
    let event = outbox.row(&Envelope::new(crate::NAME, r.id, requested))?;
    Ok(NewReservation { row: r, events: vec![event], kept: None })
}

/// The reservation an insert stored; `LIMIT_REACHED` when the user's share allowed no more,
/// `SEAT_UNAVAILABLE` when a seat was taken.
fn inserted(done: store::Inserted) -> Result<store::Stored, Error> {
    match done {
        store::Inserted::Limited(limit) => Err(Error::LimitReached(limit)),
        store::Inserted::Taken(seat) => Err(Error::SeatUnavailable(seat)),
        store::Inserted::Stored(stored) => Ok(stored),
    }
}

/// What `POST /reservations` and `POST /reservations/{id}/payment` answer at once.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = ReservationAccepted)]
pub struct Accepted {
    id: ReservationId,
    #[schema(value_type = Status)]
    status: &'static str,
}

/// `202 {id, status}` with the reservation's `Location`.
fn accepted(r: &Reservation) -> Result<StoredResponse, Error> {
    Ok(StoredResponse::json(StatusCode::ACCEPTED, &Accepted { id: r.id, status: r.status.as_str() })?
        .with_location(format!("/reservations/{}", r.id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seat_the_schedule_does_not_have_is_a_request_as_documented_but_refused() {
        let small: Vec<SeatNo> = (1..=10).map(SeatNo).collect();
        assert!(matches!(validate_seats(&[20], &small), Err(Error::SeatNotInSchedule(SeatNo(20)))));
    }

    #[test]
    fn seat_lists_are_checked_against_the_schedule() {
        let schedule: Vec<SeatNo> = (1..=50).map(SeatNo).collect();
        assert_eq!(validate_seats(&[3, 1], &schedule).unwrap(), vec![SeatNo(1), SeatNo(3)]);
        for bad in [vec![], vec![1, 2, 3, 4, 5], vec![2, 2], vec![51], vec![0], vec![-1]] {
            assert!(matches!(validate_seats(&bad, &schedule), Err(Error::Invalid(_))), "{bad:?}");
        }
    }
}
