//! The reservation service's queries.

use crate::domain::{Limit, Limits, Reservation, Share, Status, over_limit};
use chrono::{DateTime, Utc};
use contracts::{
    ConcertId, PaymentMethod, ReservationFailureReason, ReservationId, ScheduleId, SeatNo, UserId, Won,
};
use messaging::{BatchWrite, InboxClaims, Input, Outbox, OutboxRow};
use platform::{
    combine::Batch,
    idempotency::{self, Kept},
    memo::Memo,
};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, FromQueryResult, QueryResult, Statement, Value,
};
use serde::Serialize;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

const COLUMNS: &str = "id, user_id, schedule_id, concert_id, seat_nos, status, amount, held_until, failure_reason, \
                       queue_token, paid, payment_method, created_at";

fn reason_str(r: ReservationFailureReason) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

platform::text_column!(Status);

/// A reservation's row ([`COLUMNS`]), as stored; [`Reservation`] is what the saga decides on.
#[derive(FromQueryResult)]
struct Row {
    id: ReservationId,
    user_id: UserId,
    schedule_id: ScheduleId,
    concert_id: ConcertId,
    seat_nos: Vec<i32>,
    status: Status,
    amount: Option<Won>,
    held_until: Option<DateTime<Utc>>,
    failure_reason: Option<String>,
    queue_token: String,
    paid: bool,
    payment_method: Option<String>,
    created_at: DateTime<Utc>,
}

/// A row's version (`xmin::text AS version`), read beside its columns.
#[derive(FromQueryResult)]
struct Versioned {
    version: String,
}

/// The reservation in a row that holds [`COLUMNS`] (and perhaps more).
fn reservation(r: &QueryResult) -> Result<Reservation, DbErr> {
    let row = Row::from_query_result(r, "")?;
    Ok(Reservation {
        id: row.id,
        user_id: row.user_id,
        schedule_id: row.schedule_id,
        concert_id: row.concert_id,
        seat_nos: row.seat_nos.into_iter().map(SeatNo).collect(),
        status: row.status,
        amount: row.amount,
        held_until: row.held_until,
        failure_reason: row
            .failure_reason
            .and_then(|s| serde_json::from_value(serde_json::Value::String(s)).ok()),
        queue_token: row.queue_token,
        paid: row.paid,
        method: row.payment_method.as_deref().and_then(PaymentMethod::parse),
        created_at: row.created_at,
    })
}

/// Records a schedule's concert and seat numbers (from ScheduleCreated).
pub async fn upsert_schedule(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    concert: ConcertId,
    seats: &[SeatNo],
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO reservation.schedules (schedule_id, concert_id, seat_nos) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [schedule.0.into(), concert.0.into(), seats.iter().map(|s| s.0).collect::<Vec<i32>>().into()],
    ))
    .await?;
    Ok(())
}

/// A schedule's concert and seat numbers as the projection holds them. They never change once
/// announced (the projection only inserts), so each is read from the database once per process.
#[derive(Clone)]
pub struct Schedules(Memo<ScheduleId, KnownSchedule>);

impl Default for Schedules {
    fn default() -> Self {
        Self(Memo::new(SCHEDULES_IN_MEMORY))
    }
}

/// Schedules remembered at once.
const SCHEDULES_IN_MEMORY: usize = 100_000;

/// A schedule's concert and seat numbers.
pub type KnownSchedule = (ConcertId, Arc<[SeatNo]>);

impl Schedules {
    /// The schedule, if its announcement has arrived.
    pub async fn get(
        &self,
        db: &impl ConnectionTrait,
        id: ScheduleId,
    ) -> Result<Option<KnownSchedule>, DbErr> {
        let load = async {
            let found = schedule(db, id).await?;
            Ok(found.map(|(concert, seats)| (concert, Arc::<[SeatNo]>::from(seats))))
        };
        self.0.get(&id, load).await
    }
}

/// A known schedule's concert and seat numbers.
async fn schedule(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
) -> Result<Option<(ConcertId, Vec<SeatNo>)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT concert_id, seat_nos FROM reservation.schedules WHERE schedule_id = $1",
            [schedule.0.into()],
        ))
        .await?;
    #[derive(FromQueryResult)]
    struct Known {
        concert_id: ConcertId,
        seat_nos: Vec<i32>,
    }
    row.map(|r| {
        let known = Known::from_query_result(&r, "")?;
        Ok((known.concert_id, known.seat_nos.into_iter().map(SeatNo).collect()))
    })
    .transpose()
}

/// The version of a reservation the insert stored; none when it did not store it.
#[derive(FromQueryResult)]
struct MaybeStored {
    version: Option<String>,
}

/// What the insert answers of a reservation it did not store: the user's share of the
/// schedule, and the seat taken (`n`), if one was.
#[derive(FromQueryResult)]
struct Refused {
    user_live: bool,
    user_seats: i32,
    user_blocked: bool,
    user_started: i32,
    n: Option<i32>,
}

/// What [`insert_each_unless_taken`] did with one reservation.
pub enum Inserted {
    /// Stored.
    Stored(Stored),
    /// Nothing: this seat (the lowest taken) is in another live reservation.
    Taken(SeatNo),
    /// Nothing: the user's share of the schedule allows no more.
    Limited(Limit),
}

/// A reservation as stored.
pub struct Stored {
    pub row: Reservation,
    /// Its row version, for a compare-and-set that starts from this copy.
    pub version: String,
    /// How many timeline entries it has.
    pub entries: usize,
}

/// `write` keeping the answers of its keyed input rows of the positions its step `done` wrote
/// ([`idempotency::keep_step`]).
fn keeping_answers(write: BatchWrite<'_>) -> BatchWrite<'_> {
    write.step("kept", idempotency::keep_step(crate::SCHEMA, "input c JOIN done ON done.i = c.i"))
}

/// A reservation to insert, with the events that announce it (also its first timeline entries).
pub struct NewReservation {
    pub row: Reservation,
    pub events: Vec<OutboxRow>,
    /// The request's answer, kept under its `Idempotency-Key` if the reservation is inserted.
    pub kept: Option<Kept>,
}

/// Inserts each new reservation with its events, unless the user's share of the schedule or
/// standing allows no more ([`crate::domain::over_limit`] under `limits`) or one of its
/// seats is in a live reservation of the schedule (PENDING, HELD and not past its hold, PAYING,
/// or CONFIRMED): then nothing of it is written, and it is answered which. One statement; the
/// reservations travel as one JSON parameter, so its text (and prepared plan) is the same
/// whatever their number.
///
/// The statement reads what it checks in its own snapshot, so a request written meanwhile by
/// another statement is not seen: the unique index of live reservations per user and schedule
/// (`reservations_one_live`) turns the later insert into nothing, answered
/// [`Limit::OneLive`]. Two of them asking for the same seat, or of the same user and schedule,
/// are not looked at against each other: the caller keeps them apart ([`Inserts`]).
///
/// The answers of those inserted that came with a key are kept in the same statement
/// ([`idempotency::keep_step`]); an answer a twin request kept first makes it fail as a whole.
pub async fn insert_each_unless_taken(
    db: &impl ConnectionTrait,
    new: &[NewReservation],
    limits: Limits,
    outbox: &Outbox,
) -> Result<Vec<Inserted>, DbErr> {
    let rows: Vec<serde_json::Value> = new
        .iter()
        .zip(1_i64..)
        .map(|(NewReservation { row: r, events, kept }, i)| {
            let mut row = serde_json::json!({
                "i": i,
                "id": r.id.0,
                "user_id": r.user_id.0,
                "schedule_id": r.schedule_id.0,
                "concert_id": r.concert_id.0,
                "seat_nos": r.seat_nos.iter().map(|s| s.0).collect::<Vec<i32>>(),
                "status": r.status.as_str(),
                "queue_token": r.queue_token,
                "created_at": r.created_at,
                "kinds": events.iter().map(|e| e.kind).collect::<Vec<&str>>(),
                "max_seats": limits.max_seats_per_user,
                "per_minute": limits.reservations_per_minute,
                "since_id": first_id_since(r.created_at - chrono::Duration::minutes(1)),
            });
            if let Some(kept) = kept {
                kept.fields(&mut row);
            }
            row
        })
        .collect();
    let events: Vec<(i64, &OutboxRow)> =
        new.iter().zip(1_i64..).flat_map(|(n, i)| n.events.iter().map(move |e| (i, e))).collect();
    let keyed = new.iter().any(|n| n.kept.is_some());
    let input = Input::records(
        rows,
        idempotency::with_kept(
            "i bigint, id uuid, user_id uuid, schedule_id uuid, concert_id uuid, seat_nos integer[], \
             status text, queue_token text, created_at timestamptz, kinds text[], max_seats integer, \
             per_minute integer, since_id uuid",
            keyed,
        ),
    );
    let mut write = BatchWrite::over(input)
        .materialized(
            "taken",
            "SELECT c.i, (
               SELECT min(n) FROM reservation.reservations r, unnest(r.seat_nos) AS n
               WHERE r.schedule_id = c.schedule_id AND r.status IN ('PENDING', 'HELD', 'PAYING', 'CONFIRMED')
                 AND NOT (r.status = 'HELD' AND r.held_until < now()) AND r.seat_nos && c.seat_nos
                 AND n = ANY(c.seat_nos)
             ) AS n, mine.live, mine.seats,
             EXISTS (SELECT 1 FROM reservation.user_status u WHERE u.user_id = c.user_id AND u.blocked) AS blocked,
             -- Ids are UUIDv7, ordered by time: the user's reservations of the last minute are a
             -- range of reservations_by_user, counted no further than the limit. Requests of one
             -- user for other schedules written by one statement do not see each other: the
             -- pace is a person's, not a count exact to the request.
             CASE WHEN c.per_minute > 0 THEN (
               SELECT count(*) FROM (
                 SELECT 1 FROM reservation.reservations r
                 WHERE r.user_id = c.user_id AND r.id >= c.since_id LIMIT c.per_minute
               ) recent
             ) ELSE 0 END::integer AS started
             FROM input c CROSS JOIN LATERAL (
               SELECT coalesce(bool_or(r.status <> 'CONFIRMED'), false) AS live,
                      coalesce(sum(cardinality(r.seat_nos)), 0)::integer AS seats
               FROM reservation.reservations r
               WHERE r.user_id = c.user_id AND r.schedule_id = c.schedule_id
                 AND r.status IN ('PENDING', 'HELD', 'PAYING', 'CONFIRMED')
             ) mine",
        )
        .step(
            "inserted",
            format!(
                "INSERT INTO reservation.reservations
                   (id, user_id, schedule_id, concert_id, seat_nos, status, queue_token, created_at, timeline)
                 SELECT c.id, c.user_id, c.schedule_id, c.concert_id, c.seat_nos, c.status, c.queue_token,
                        c.created_at, {entries}
                 FROM input c JOIN taken ON taken.i = c.i
                 WHERE taken.n IS NULL AND NOT taken.live AND taken.seats + cardinality(c.seat_nos) <= c.max_seats
                   AND NOT taken.blocked AND (c.per_minute = 0 OR taken.started < c.per_minute)
                 ORDER BY c.i
                 ON CONFLICT DO NOTHING
                 RETURNING {COLUMNS}, xmin::text AS version",
                entries = timeline_entries("c.kinds")
            ),
        )
        .step("done", "SELECT c.i FROM input c JOIN inserted ON inserted.id = c.id");
    if keyed {
        write = keeping_answers(write);
    }
    let rows = write
        .applied_by("done")
        .events(outbox, events)
        .answering(
            "SELECT c.i, taken.n, taken.live AS user_live, taken.seats AS user_seats,
                    taken.blocked AS user_blocked, taken.started AS user_started, inserted.*
             FROM input c JOIN taken ON taken.i = c.i
             LEFT JOIN inserted ON inserted.id = c.id ORDER BY c.i",
        )
        .rows(db)
        .await?;
    if rows.len() != new.len() {
        return Err(DbErr::Custom(format!(
            "{} reservations to insert answered {} rows",
            new.len(),
            rows.len()
        )));
    }
    rows.iter()
        .zip(new)
        .map(|(row, n)| {
            if let Some(version) = MaybeStored::from_query_result(row, "")?.version {
                let stored = Stored { row: reservation(row)?, version, entries: n.events.len() };
                return Ok(Inserted::Stored(stored));
            }
            let refused = Refused::from_query_result(row, "")?;
            let share = Share {
                live: refused.user_live,
                seats: refused.user_seats as u32,
                blocked: refused.user_blocked,
                started: refused.user_started as u32,
            };
            Ok(match (over_limit(share, n.row.seat_nos.len(), limits), refused.n) {
                (Some(limit), _) => Inserted::Limited(limit),
                (None, Some(seat)) => Inserted::Taken(SeatNo(seat)),
                // Checked clear, yet not inserted: another statement wrote the user's live
                // reservation of the schedule meanwhile.
                (None, None) => Inserted::Limited(Limit::OneLive),
            })
        })
        .collect()
}

/// The least UUIDv7 of an instant: every id made at `at` or later sorts at or after it.
fn first_id_since(at: DateTime<Utc>) -> uuid::Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    uuid::Uuid::from_bytes(bytes)
}

/// Records an account's status as `UserStatusChanged` said it at `changed_at`, unless a newer
/// change was recorded already; whether it was recorded.
pub async fn set_user_status(
    db: &impl ConnectionTrait,
    user: UserId,
    blocked: bool,
    changed_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let done = db
        .execute_raw(stmt(
            "INSERT INTO reservation.user_status (user_id, blocked, changed_at) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET blocked = EXCLUDED.blocked, changed_at = EXCLUDED.changed_at
             WHERE reservation.user_status.changed_at < EXCLUDED.changed_at",
            [user.0.into(), blocked.into(), changed_at.into()],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Marks a schedule cancelled (the sweeper looks at it for a day: [`MISSED_LOOKED_AT`]).
pub async fn cancel_schedule(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    at: DateTime<Utc>,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE reservation.schedules SET cancelled_at = coalesce(cancelled_at, $2) WHERE schedule_id = $1",
        [schedule.0.into(), at.into()],
    ))
    .await?;
    Ok(())
}

/// How long after a schedule's cancellation, or a user's block, the sweeper still looks for
/// reservations it missed (one started as it was being applied): far longer than any
/// reservation stays open.
pub const MISSED_LOOKED_AT: chrono::Duration = chrono::Duration::days(1);

/// A change that ends reservations other than through their own saga: the reservations it
/// ends, what it means for each, and which of them it may have missed (one inserted as its
/// handler ran, which that handler's read could not see), for the sweeper.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// A schedule's cancellation: its reservations not yet ended (CONFIRMED ones are refunded).
    Cancelled,
    /// A user's block: their PENDING and HELD reservations (a payment in flight is the wallet's).
    Blocked,
}

impl Ending {
    /// What the change means for each reservation it ends.
    pub fn input(self) -> crate::domain::Input {
        match self {
            Ending::Cancelled => crate::domain::Input::ScheduleCancelled,
            Ending::Blocked => crate::domain::Input::UserBlocked,
        }
    }

    /// The statuses of the reservations it ends.
    fn statuses(self) -> &'static str {
        match self {
            Ending::Cancelled => "'PENDING', 'HELD', 'PAYING', 'CONFIRMED'",
            Ending::Blocked => "'PENDING', 'HELD'",
        }
    }

    /// The column that names what changed: the schedule, or the user.
    fn whose(self) -> &'static str {
        match self {
            Ending::Cancelled => "schedule_id",
            Ending::Blocked => "user_id",
        }
    }
}

/// The reservations `ending` ends of the schedule or user `of`.
pub async fn ended_by(
    db: &impl ConnectionTrait,
    ending: Ending,
    of: uuid::Uuid,
) -> Result<Vec<ReservationId>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT id FROM reservation.reservations WHERE {} = $1 AND status IN ({})",
                ending.whose(),
                ending.statuses()
            ),
            [of.into()],
        ))
        .await?;
    #[derive(FromQueryResult)]
    struct Ended {
        id: ReservationId,
    }
    rows.iter().map(|r| Ok(Ended::from_query_result(r, "")?.id)).collect()
}

/// The reservations `ending` ends of schedules cancelled, or users blocked, since `since`,
/// locked (skipping those locked): those its handler may have missed.
pub async fn lock_missed(
    db: &impl ConnectionTrait,
    ending: Ending,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Reservation>, DbErr> {
    let changed = match ending {
        Ending::Cancelled => {
            "SELECT schedule_id FROM reservation.schedules WHERE cancelled_at IS NOT NULL AND cancelled_at >= $1"
        }
        Ending::Blocked => "SELECT user_id FROM reservation.user_status WHERE blocked AND changed_at >= $1",
    };
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM reservation.reservations
                 WHERE {} IN ({changed}) AND status IN ({})
                 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                ending.whose(),
                ending.statuses()
            ),
            [since.into(), limit.into()],
        ))
        .await?;
    rows.iter().map(reservation).collect()
}

/// `POST /reservations`' inserts, written together when they arrive together
/// ([`platform::combine`]). Requests that share a seat of a schedule, or a user and a schedule,
/// are never written together, so the statement's look at the live reservations (which cannot
/// see its own inserts) is enough: the later one waits for the next statement, and then finds
/// the seat taken or the user's share used.
pub struct Inserts {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    /// The per-user limits.
    pub limits: Limits,
}

impl Batch for Inserts {
    type Item = NewReservation;
    type Output = Inserted;
    type Error = crate::error::Error;

    fn fits(&self, batch: &[NewReservation], item: &NewReservation) -> bool {
        let item = &item.row;
        !batch.iter().any(|n| {
            n.row.schedule_id == item.schedule_id
                && (n.row.user_id == item.user_id || n.row.seat_nos.iter().any(|s| item.seat_nos.contains(s)))
        })
    }

    async fn run(&self, batch: &[NewReservation]) -> Result<Vec<Inserted>, crate::error::Error> {
        Ok(insert_each_unless_taken(&self.db, batch, self.limits, &self.outbox).await?)
    }
}

/// Reservations as this process last wrote them outside a transaction, with their row
/// versions: a compare-and-set starts from one instead of reading the row. Only a hint, each
/// copy used once ([`Recent::take`]): the compare-and-set refuses a copy another writer has
/// overtaken, and the caller then reads the row.
#[derive(Clone, Default)]
pub struct Recent(Arc<Mutex<HashMap<ReservationId, (Reservation, String)>>>);

/// Reservations remembered at once; when full, the memory starts again empty.
const RECENT_IN_MEMORY: usize = 100_000;

impl Recent {
    /// Remembers `r` as stored with `version`, unless it can no longer change.
    pub fn remember(&self, r: Reservation, version: String) {
        let Ok(mut m) = self.0.lock() else { return };
        if r.status.is_terminal() {
            m.remove(&r.id);
            return;
        }
        if m.len() >= RECENT_IN_MEMORY {
            m.clear();
        }
        m.insert(r.id, (r, version));
    }

    /// Remembers `r` as [`Self::remember`] does, unless the copy already remembered is of a
    /// later write: a notice from another replica can arrive after this process wrote the
    /// reservation again. Versions are transaction ids (`xmin`), compared as Postgres compares
    /// them, modulo 2^32.
    pub fn remember_unless_older(&self, r: Reservation, version: String) {
        let later = |a: &str, b: &str| match (a.parse::<u32>(), b.parse::<u32>()) {
            (Ok(a), Ok(b)) => (a.wrapping_sub(b) as i32) > 0,
            _ => false,
        };
        let Ok(m) = self.0.lock() else { return };
        if m.get(&r.id).is_some_and(|(_, kept)| later(kept, &version)) {
            return;
        }
        drop(m);
        self.remember(r, version);
    }

    /// The copy of `id` last remembered, forgotten as it is handed out.
    pub fn take(&self, id: ReservationId) -> Option<(Reservation, String)> {
        self.0.lock().ok()?.remove(&id)
    }
}

/// A reservation and its row version (`xmin`, which every write of the row changes), read
/// without a lock: for a compare-and-set outside a transaction ([`save`] with `version`).
pub async fn read(
    db: &impl ConnectionTrait,
    id: ReservationId,
) -> Result<Option<(Reservation, String)>, DbErr> {
    let Some(row) = db
        .query_one_raw(stmt(
            &format!("SELECT {COLUMNS}, xmin::text AS version FROM reservation.reservations WHERE id = $1"),
            [id.0.into()],
        ))
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((reservation(&row)?, Versioned::from_query_result(&row, "")?.version)))
}

/// Several reservations and their row versions, read without a lock in one statement: for
/// compare-and-sets outside a transaction.
pub async fn read_each(
    db: &impl ConnectionTrait,
    ids: &[ReservationId],
) -> Result<HashMap<ReservationId, (Reservation, String)>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.0).collect();
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS}, xmin::text AS version FROM reservation.reservations WHERE id = ANY($1)"
            ),
            [ids.into()],
        ))
        .await?;
    rows.iter()
        .map(|row| {
            let r = reservation(row)?;
            Ok((r.id, (r, Versioned::from_query_result(row, "")?.version)))
        })
        .collect()
}

/// A reservation, locked until the transaction ends.
pub async fn lock(db: &impl ConnectionTrait, id: ReservationId) -> Result<Option<Reservation>, DbErr> {
    db.query_one_raw(stmt(
        &format!("SELECT {COLUMNS} FROM reservation.reservations WHERE id = $1 FOR UPDATE"),
        [id.0.into()],
    ))
    .await?
    .as_ref()
    .map(reservation)
    .transpose()
}

/// The user's reservations, newest first, before the cursor.
pub async fn list(
    db: &impl ConnectionTrait,
    user: UserId,
    before: Option<uuid::Uuid>,
    limit: u64,
) -> Result<Vec<Reservation>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM reservation.reservations
                 WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3"
            ),
            [
                user.0.into(),
                platform::paging::before(before).into(),
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
            ],
        ))
        .await?;
    rows.iter().map(reservation).collect()
}

/// A change of one reservation for [`save`].
pub struct Change<'a> {
    /// The status the row must still have.
    pub expected: Status,
    /// The row version it must still have ([`read`]); `None` when the row is locked.
    pub version: Option<&'a str>,
    pub next: &'a Reservation,
    /// Timeline entries to append, in order.
    pub kinds: &'a [&'a str],
    /// Events announcing the change.
    pub events: &'a [OutboxRow],
    /// Whether to answer the whole timeline after the change as well ([`Saved::timeline`]).
    pub view: bool,
    /// The answer of the request that asked for it, kept under its `Idempotency-Key` if the
    /// change is written.
    pub kept: Option<&'a Kept>,
}

/// A reservation as a compare-and-set left it.
pub struct Saved {
    pub row: Reservation,
    /// The row version the change made.
    pub version: String,
    /// The whole timeline after the change, when asked for ([`Change::view`]).
    pub timeline: Option<Vec<TimelineEntry>>,
}

/// Compare-and-set of several reservations at once, each keyed by a position (from 1, as
/// [`messaging::InboxClaims`] counts): writes each change only if its row is still as
/// expected, and then appends its timeline entries and its events (and, with `claims`, the
/// inbox row of the event at its position), in one round trip. Answers, by position, the rows
/// as saved, their new versions and (when asked) their timelines; nothing of a change whose row
/// has moved on is written. The changes travel as one JSON parameter, so the statement's text
/// (and its prepared plan) is the same whatever their number; the rows are found through the
/// array of their ids, because the plan joining them to the changes (taken for a hundred)
/// hashed a sequential scan of the whole table. The answers kept under keys are kept in the
/// same statement, as [`insert_each_unless_taken`] keeps them.
pub async fn save(
    db: &impl ConnectionTrait,
    changes: &[(i64, Change<'_>)],
    outbox: &Outbox,
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<(i64, Saved)>, DbErr> {
    let rows: Vec<serde_json::Value> = changes
        .iter()
        .map(|(i, c)| {
            let mut row = serde_json::json!({
                "i": i,
                "target": c.next.id.0,
                "expected": c.expected.as_str(),
                "next_status": c.next.status.as_str(),
                "next_amount": c.next.amount.map(|w| w.0),
                "next_held_until": c.next.held_until,
                "next_reason": c.next.failure_reason.map(reason_str),
                "next_paid": c.next.paid,
                "next_method": c.next.method.map(PaymentMethod::as_str),
                "version": c.version,
                "kinds": c.kinds,
                "view": c.view,
            });
            if let Some(kept) = c.kept {
                kept.fields(&mut row);
            }
            row
        })
        .collect();
    let events: Vec<(i64, &OutboxRow)> =
        changes.iter().flat_map(|(i, c)| c.events.iter().map(move |e| (*i, e))).collect();
    let keyed = changes.iter().any(|(_, c)| c.kept.is_some());
    let input = Input::records(
        rows,
        idempotency::with_kept(
            "i bigint, target uuid, expected text, next_status text, next_amount bigint, \
             next_held_until timestamptz, next_reason text, next_paid bool, next_method text, version text, \
             kinds text[], view bool",
            keyed,
        ),
    );
    let mut write = BatchWrite::over(input)
        .step(
            "saved",
            format!(
                "UPDATE reservation.reservations r
                 SET status = c.next_status, amount = c.next_amount, held_until = c.next_held_until,
                     failure_reason = c.next_reason, paid = c.next_paid,
                     payment_method = c.next_method, updated_at = now(),
                     timeline = r.timeline || {entries}
                 FROM input c
                 WHERE r.id = ANY(ARRAY(SELECT target FROM input)) AND r.id = c.target AND r.status = c.expected
                   AND (c.version IS NULL OR r.xmin = c.version::xid)
                 RETURNING c.i, {COLUMNS}, r.xmin::text AS version,
                           CASE WHEN c.view THEN r.timeline END AS timeline",
                entries = timeline_entries("c.kinds")
            ),
        )
        .step("done", "SELECT i FROM saved")
        .applied_by("done")
        .events(outbox, events)
        .answering("SELECT * FROM saved ORDER BY i");
    if keyed {
        write = keeping_answers(write);
    }
    if let Some(claims) = claims {
        write = write.claims(claims);
    }
    let rows = write.rows(db).await?;
    let saved = rows
        .iter()
        .map(|row| {
            #[derive(FromQueryResult)]
            struct Changed {
                i: i64,
                version: String,
                timeline: Option<serde_json::Value>,
            }
            let Changed { i, version, timeline } = Changed::from_query_result(row, "")?;
            let timeline = timeline.map(timeline_of).transpose()?;
            Ok((i, Saved { row: reservation(row)?, version, timeline }))
        })
        .collect::<Result<Vec<_>, DbErr>>()?;
    // A saga ends when its row moves into a terminal status; a change of a row already there
    // (money arriving late, and given back) ends nothing.
    for (i, s) in &saved {
        let expected = || changes.iter().find(|(j, _)| j == i).map(|(_, c)| c.expected);
        if s.row.status.is_terminal() && expected() != Some(s.row.status) {
            ended(&s.row);
        }
    }
    Ok(saved)
}

/// Counts a saga that ended (`saga_outcomes_total` by status and reason) and how long it took
/// from its request (`saga_duration_seconds`): once, when a save moves its row into a terminal
/// status, from which no status follows.
fn ended(r: &Reservation) {
    let status = r.status.as_str();
    let reason = r.failure_reason.map_or_else(|| "none".to_owned(), reason_str);
    metrics::counter!("saga_outcomes_total", "status" => status, "reason" => reason).increment(1);
    let took = (Utc::now() - r.created_at).to_std().unwrap_or_default();
    metrics::histogram!("saga_duration_seconds", "status" => status).record(took.as_secs_f64());
}

/// One line of a reservation's timeline.
#[derive(Clone, Debug, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// The event seen or emitted, e.g. `SeatReserved`.
    #[serde(rename = "type")]
    pub kind: String,
    pub at: DateTime<Utc>,
}

/// The timeline entries (a JSON array of `{type, at}`, `at` the transaction's time) of the event
/// types in the text[] expression `kinds`, in order: what a write appends to a row's `timeline`.
fn timeline_entries(kinds: &str) -> String {
    format!(
        "coalesce((SELECT jsonb_agg(jsonb_build_object('type', k, 'at', now()) ORDER BY o) \
                   FROM unnest({kinds}) WITH ORDINALITY AS t(k, o)), '[]'::jsonb)"
    )
}

/// The caller's reservation with its timeline, in one round trip.
pub async fn get_with_timeline(
    db: &impl ConnectionTrait,
    id: ReservationId,
    user: UserId,
) -> Result<Option<(Reservation, Vec<TimelineEntry>)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &format!(
                "SELECT {COLUMNS}, timeline FROM reservation.reservations WHERE id = $1 AND user_id = $2"
            ),
            [id.0.into(), user.0.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    let timeline = timeline_of(Timeline::from_query_result(&row, "")?.timeline)?;
    Ok(Some((reservation(&row)?, timeline)))
}

/// A row's `timeline` column.
#[derive(FromQueryResult)]
struct Timeline {
    timeline: serde_json::Value,
}

/// Reads a row's `timeline`.
fn timeline_of(json: serde_json::Value) -> Result<Vec<TimelineEntry>, DbErr> {
    serde_json::from_value(json).map_err(|e| DbErr::Custom(format!("timeline: {e}")))
}

/// A reservation's timeline, oldest first.
pub async fn timeline(db: &impl ConnectionTrait, id: ReservationId) -> Result<Vec<TimelineEntry>, DbErr> {
    let row = db
        .query_one_raw(stmt("SELECT timeline FROM reservation.reservations WHERE id = $1", [id.0.into()]))
        .await?;
    row.map_or(Ok(Vec::new()), |r| timeline_of(Timeline::from_query_result(&r, "")?.timeline))
}

/// Open reservations whose clock has run out, locked (skipping rows another sweeper holds).
///
/// Each status's due rows are one range of `reservations_due`, `(status, coalesce(held_until,
/// created_at))`, read on its own and locked by id: a condition OR-ing the three (or repeated on
/// the locked rows) was planned, generically, as a read of every open reservation. A row a
/// payment moved on between the read and the lock comes back as it is now; the sweeper decides
/// on that, and a row not due is left as it is.
pub async fn lock_due(
    db: &impl ConnectionTrait,
    now: DateTime<Utc>,
    pay_grace: chrono::Duration,
    request_timeout: chrono::Duration,
    limit: i64,
) -> Result<Vec<Reservation>, DbErr> {
    // `$1`: a hold's end; `$2`: a request's creation; `$3`: a payment's hold end plus grace.
    const DUE: [(&str, &str); 3] = [("PENDING", "$2"), ("HELD", "$1"), ("PAYING", "$3")];
    const DEADLINE: &str = "coalesce(held_until, created_at)";
    let ranges = DUE.map(|(status, by)| {
        format!(
            "(SELECT id FROM reservation.reservations WHERE status = '{status}' AND {DEADLINE} <= {by} \
             ORDER BY {DEADLINE} LIMIT $4)"
        )
    });
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM reservation.reservations
                 WHERE id IN ({})
                 ORDER BY created_at LIMIT $4 FOR UPDATE SKIP LOCKED",
                ranges.join(" UNION ALL ")
            ),
            [now.into(), (now - request_timeout).into(), (now - pay_grace).into(), limit.into()],
        ))
        .await?;
    rows.iter().map(reservation).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::TransactionTrait;

    #[tokio::test]
    async fn a_sweep_locks_what_is_due_and_nothing_else() {
        let env = testkit::TestEnv::new().await.unwrap();
        let now = Utc::now();
        let (timeout, grace) = (chrono::Duration::seconds(30), chrono::Duration::seconds(10));
        let ago = |s: i64| now - chrono::Duration::seconds(s);
        // (status, created_at, held_until, due)
        let rows = [
            ("PENDING", ago(31), None, true),
            ("PENDING", ago(29), None, false),
            ("HELD", ago(400), Some(ago(1)), true),
            ("HELD", ago(400), Some(now + chrono::Duration::seconds(60)), false),
            ("PAYING", ago(400), Some(ago(11)), true),
            ("PAYING", ago(400), Some(ago(9)), false),
            ("CONFIRMED", ago(400), Some(ago(300)), false),
            ("EXPIRED", ago(400), Some(ago(300)), false),
        ];
        let mut due = Vec::new();
        for (status, created_at, held_until, is_due) in rows {
            let id = uuid::Uuid::now_v7();
            env.db
                .execute_raw(stmt(
                    "INSERT INTO reservation.reservations (id, user_id, schedule_id, concert_id, seat_nos, status, \
                     held_until, created_at) VALUES ($1, $2, $3, $4, '{1}', $5, $6, $7)",
                    [
                        id.into(),
                        uuid::Uuid::now_v7().into(),
                        uuid::Uuid::now_v7().into(),
                        uuid::Uuid::now_v7().into(),
                        status.into(),
                        held_until.into(),
                        created_at.into(),
                    ],
                ))
                .await
                .unwrap();
            if is_due {
                due.push(id);
            }
        }
        let txn = env.db.begin().await.unwrap();
        let mut locked: Vec<uuid::Uuid> =
            lock_due(&txn, now, grace, timeout, 200).await.unwrap().iter().map(|r| r.id.0).collect();
        locked.sort();
        due.sort();
        assert_eq!(locked, due);
        assert_eq!(lock_due(&txn, now, grace, timeout, 1).await.unwrap().len(), 1, "the limit holds");
    }

    /// The answers of keyed reservations are kept with their inserts; a refused one keeps
    /// nothing; a key whose answer is kept already fails the whole statement.
    #[tokio::test]
    async fn an_insert_keeps_its_answer_under_its_key_and_a_twins_key_fails_the_whole_statement() {
        use platform::{
            auth::{Identity, Role},
            idempotency::{IdempotencyKey, Keyed, MaybeKey, StoredResponse},
        };
        let env = testkit::TestEnv::new().await.unwrap();
        let outbox = Outbox::new(crate::SCHEMA, env.config.prefix.clone());
        let schedule = ScheduleId::new();
        let reservation = |user: UserId, schedule: ScheduleId, seat: i32| Reservation {
            user_id: user,
            schedule_id: schedule,
            ..Reservation::pending_of_seat(seat)
        };
        let request: &[&[u8]] = &[b"POST", b"/reservations", b"{}"];
        let key = |k: &str| MaybeKey(Some(IdempotencyKey::parse(k).unwrap()));
        let who = |user: UserId| Identity { user_id: user, role: Role::User };
        let new = |row: Reservation, k: Option<&str>| {
            let answer =
                StoredResponse::json(axum::http::StatusCode::ACCEPTED, &serde_json::json!({"id": row.id}))
                    .unwrap()
                    .with_location(format!("/reservations/{}", row.id));
            let kept =
                k.and_then(|k| Keyed::of(&who(row.user_id), &key(k), request)).map(|k| k.keeping(answer));
            NewReservation { row, events: Vec::new(), kept }
        };
        let limits = Limits { max_seats_per_user: 4, reservations_per_minute: 0 };
        let insert = |batch: Vec<NewReservation>| {
            let (db, outbox) = (env.db.clone(), outbox.clone());
            async move { insert_each_unless_taken(&db, &batch, limits, &outbox).await }
        };
        let kept = || async {
            let row =
                env.db.query_one_raw(stmt("SELECT count(*) AS n FROM reservation.idempotency", [])).await;
            row.unwrap().unwrap().try_get::<i64>("", "n").unwrap()
        };

        let (keyed, other) = (UserId::new(), UserId::new());
        let first = reservation(keyed, schedule, 1);
        let first_id = first.id;
        let done =
            insert(vec![new(first, Some("k-1")), new(reservation(other, schedule, 2), None)]).await.unwrap();
        assert!(done.iter().all(|d| matches!(d, Inserted::Stored(_))));
        let replay =
            idempotency::stored(&env.db, crate::SCHEMA, &who(keyed), &key("k-1"), request).await.unwrap();
        let replay = replay.expect("the keyed insert's answer is kept");
        assert!(replay.replayed);
        assert_eq!((replay.stored.status, &replay.stored.body["id"]), (202, &serde_json::json!(first_id)));
        assert_eq!(replay.stored.location, Some(format!("/reservations/{first_id}")));
        assert_eq!(kept().await, 1, "the unkeyed insert keeps nothing");

        let refused = reservation(UserId::new(), schedule, 1);
        let done = insert(vec![new(refused, Some("k-2"))]).await.unwrap();
        assert!(matches!(done[..], [Inserted::Taken(SeatNo(1))]));
        assert_eq!(kept().await, 1, "a refused insert keeps nothing");

        let twin = reservation(keyed, ScheduleId::new(), 3);
        let bystander = reservation(UserId::new(), schedule, 4);
        let failed = insert(vec![new(bystander, None), new(twin, Some("k-1"))]).await.err().unwrap();
        assert!(idempotency::is_twin(&failed), "{failed}");
        let rows = env.db.query_one_raw(stmt("SELECT count(*) AS n FROM reservation.reservations", [])).await;
        assert_eq!(
            rows.unwrap().unwrap().try_get::<i64>("", "n").unwrap(),
            2,
            "nothing of the statement stays"
        );
    }

    #[test]
    fn the_first_id_of_an_instant_sorts_before_every_id_made_since_and_after_those_made_before() {
        let at = Utc::now();
        let first = first_id_since(at);
        let ts = |t: DateTime<Utc>| {
            let ms = u64::try_from(t.timestamp_millis()).unwrap();
            uuid::Timestamp::from_unix(
                uuid::NoContext,
                ms / 1000,
                u32::try_from(ms % 1000).unwrap() * 1_000_000,
            )
        };
        for _ in 0..100 {
            assert!(uuid::Uuid::new_v7(ts(at)) >= first);
            assert!(uuid::Uuid::new_v7(ts(at - chrono::Duration::milliseconds(1))) < first);
        }
        assert!(uuid::Uuid::now_v7() >= first);
        assert_eq!(first.get_version_num(), 7);
    }
}
