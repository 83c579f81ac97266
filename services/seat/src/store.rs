//! The inventory's queries. Seats are locked in seat-number order, so two holds over
//! overlapping seats serialize instead of deadlocking.

use crate::domain::{Seat, SeatStatus};
use chrono::{DateTime, Utc};
use contracts::{ConcertId, ReservationId, ScheduleId, SeatNo, SeatPrice, Won};
use messaging::{BatchWrite, InboxClaims, Input, Outbox, OutboxRow, When};
use platform::{memo::Memo, rows::Count};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use std::{collections::HashMap, sync::Arc};

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Seat numbers as the `int[]` a statement takes.
fn nos(seats: &[SeatNo]) -> Vec<i32> {
    seats.iter().map(|s| s.0).collect()
}

/// Creates a schedule's seats (a replayed announcement changes nothing).
pub async fn create_schedule(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    concert: ConcertId,
    seats: &[SeatPrice],
    sales_open_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO seat.schedules (schedule_id, concert_id, seat_count, sales_open_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING",
        [
            schedule.0.into(),
            concert.0.into(),
            i32::try_from(seats.len()).unwrap_or(i32::MAX).into(),
            sales_open_at.into(),
        ],
    ))
    .await?;
    let seat_nos: Vec<i32> = seats.iter().map(|s| s.seat_no.0).collect();
    let prices: Vec<i64> = seats.iter().map(|s| s.price.0).collect();
    db.execute_raw(stmt(
        "INSERT INTO seat.seats (schedule_id, seat_no, price)
         SELECT $1, n, p FROM unnest($2::int[], $3::bigint[]) AS t(n, p) ON CONFLICT DO NOTHING",
        [schedule.0.into(), seat_nos.into(), prices.into()],
    ))
    .await?;
    Ok(())
}

platform::text_column!(SeatStatus);

fn seat(r: &sea_orm::QueryResult) -> Result<Seat, DbErr> {
    Seat::from_query_result(r, "")
}

/// The schedule a row is of.
#[derive(FromQueryResult)]
struct OfSchedule {
    schedule_id: ScheduleId,
}

/// A schedule as the inventory knows it.
#[derive(Clone, Debug)]
pub struct Inventory {
    pub concert: ConcertId,
    /// When its sale opens (`None`: on sale from the start).
    pub sales_open_at: Option<DateTime<Utc>>,
    /// Whether an organizer cancelled it.
    pub cancelled: bool,
    /// The seats asked for that exist, by number.
    pub seats: Vec<Seat>,
}

/// The schedule and those of `seats` that exist (every seat with `None`), by number, as last
/// committed (without waiting for anyone's locks), in one round trip; `None` if the schedule
/// is unknown.
pub async fn inventory(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    seats: Option<&[SeatNo]>,
) -> Result<Option<Inventory>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT sc.concert_id, sc.sales_open_at, sc.cancelled_at IS NOT NULL AS cancelled, st.seat_no, st.price, st.status, st.reservation_id
             FROM seat.schedules sc
             LEFT JOIN seat.seats st ON st.schedule_id = sc.schedule_id
                                    AND ($2::int[] IS NULL OR st.seat_no = ANY($2))
             WHERE sc.schedule_id = $1 ORDER BY st.seat_no",
            [schedule.0.into(), seats.map(nos).into()],
        ))
        .await?;
    #[derive(FromQueryResult)]
    struct Sale {
        concert_id: ConcertId,
        sales_open_at: Option<DateTime<Utc>>,
        cancelled: bool,
    }
    /// A row's seat, none where the schedule has none of those asked.
    #[derive(FromQueryResult)]
    struct MaybeSeat {
        seat_no: Option<SeatNo>,
    }
    let Some(first) = rows.first() else { return Ok(None) };
    let Sale { concert_id: concert, sales_open_at, cancelled } = Sale::from_query_result(first, "")?;
    let mut found = Vec::with_capacity(rows.len());
    for r in &rows {
        if MaybeSeat::from_query_result(r, "")?.seat_no.is_some() {
            found.push(seat(r)?);
        }
    }
    Ok(Some(Inventory { concert, sales_open_at, cancelled, seats: found }))
}

/// The seats of each of `schedules` that exists, by number, as last committed, in one statement.
pub async fn maps_of(
    db: &impl ConnectionTrait,
    schedules: &[ScheduleId],
) -> Result<HashMap<ScheduleId, Vec<Seat>>, DbErr> {
    let ids: Vec<uuid::Uuid> = schedules.iter().map(|s| s.0).collect();
    let rows = db
        .query_all_raw(stmt(
            "SELECT schedule_id, seat_no, price, status, reservation_id FROM seat.seats
             WHERE schedule_id = ANY($1) ORDER BY schedule_id, seat_no",
            [ids.into()],
        ))
        .await?;
    let mut maps: HashMap<ScheduleId, Vec<Seat>> = HashMap::new();
    for r in &rows {
        let schedule = OfSchedule::from_query_result(r, "")?.schedule_id;
        maps.entry(schedule).or_default().push(seat(r)?);
    }
    Ok(maps)
}

/// The requested seats that exist, locked until the transaction ends.
pub async fn lock_seats(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    seats: &[SeatNo],
) -> Result<Vec<Seat>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT seat_no, price, status, reservation_id FROM seat.seats
             WHERE schedule_id = $1 AND seat_no = ANY($2) ORDER BY seat_no FOR UPDATE",
            [schedule.0.into(), nos(seats).into()],
        ))
        .await?;
    rows.iter().map(seat).collect()
}

/// A schedule's concert and seat prices. Prices never change once a schedule's seats exist
/// (they are only inserted), so each schedule is read from the database once per process.
#[derive(Clone)]
pub struct Prices(Memo<ScheduleId, Arc<Priced>>);

/// A schedule's concert and what each of its seats costs.
#[derive(Debug)]
pub struct Priced {
    pub concert: ConcertId,
    prices: HashMap<SeatNo, Won>,
}

impl Priced {
    /// What `seats` cost together; `None` if one is not a seat of the schedule.
    pub fn amount(&self, seats: &[SeatNo]) -> Option<Won> {
        seats.iter().try_fold(Won(0), |sum, s| self.prices.get(s).map(|p| Won(sum.0 + p.0)))
    }
}

impl Default for Prices {
    fn default() -> Self {
        Self(Memo::new(PRICED_SCHEDULES_IN_MEMORY))
    }
}

/// Schedules whose prices are remembered at once (50 seats each at most).
const PRICED_SCHEDULES_IN_MEMORY: usize = 20_000;

impl Prices {
    /// The schedule's concert and prices; `None` while the schedule is unknown.
    pub async fn get(
        &self,
        db: &impl ConnectionTrait,
        schedule: ScheduleId,
    ) -> Result<Option<Arc<Priced>>, DbErr> {
        let load = async {
            let found = inventory(db, schedule, None).await?;
            Ok(found.map(|i| {
                Arc::new(Priced {
                    concert: i.concert,
                    prices: i.seats.iter().map(|s| (s.seat_no, s.price)).collect(),
                })
            }))
        };
        self.0.get(&schedule, load).await
    }
}

/// Seats to hold for a reservation, and until when.
#[derive(Clone, Debug)]
pub struct Hold {
    pub schedule: ScheduleId,
    /// Sorted and distinct.
    pub seats: Vec<SeatNo>,
    pub reservation: ReservationId,
    pub until: DateTime<Utc>,
}

/// Makes each of `holds` whose seats are all AVAILABLE and not locked by another transaction,
/// with its `events` (keyed by position) and its inbox row of `claims`, in one statement (a
/// batch's, or the one hold of the transaction that locked its seats and decided it); answers
/// the positions of those made. The others change nothing. No two holds may ask for the same
/// seat. Skipping locked rows keeps a request for a seat someone else is
/// taking from queueing behind that hold: it is decided afterwards from the committed rows. A
/// schedule off sale (not open yet, or cancelled) has no free seat here: its requests are
/// decided afterwards too (`domain::on_sale`).
pub async fn hold_each_free(
    db: &impl ConnectionTrait,
    holds: &[(i64, &Hold)],
    outbox: &Outbox,
    events: Vec<(i64, &OutboxRow)>,
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<i64>, DbErr> {
    // One row per seat asked for.
    let seats = || holds.iter().flat_map(|(i, h)| h.seats.iter().map(move |s| ((*i, *h), s)));
    let input = Input::at(seats().map(|((i, _), _)| i).collect())
        .column("schedule_id", "uuid", seats().map(|((_, h), _)| h.schedule.0).collect())
        .column("seat_no", "int", seats().map(|(_, s)| s.0).collect())
        .column("reservation_id", "uuid", seats().map(|((_, h), _)| h.reservation.0).collect())
        .column("held_until", "timestamptz", seats().map(|((_, h), _)| h.until).collect());
    BatchWrite::over(input)
        .materialized(
            "free",
            "SELECT st.schedule_id, st.seat_no FROM seat.seats st
             WHERE (st.schedule_id, st.seat_no) IN (SELECT schedule_id, seat_no FROM input)
               AND st.status = 'AVAILABLE'
               AND EXISTS (SELECT FROM seat.schedules sc WHERE sc.schedule_id = st.schedule_id
                             AND sc.cancelled_at IS NULL AND coalesce(sc.sales_open_at <= now(), true))
             ORDER BY st.schedule_id, st.seat_no FOR UPDATE OF st SKIP LOCKED",
        )
        .step(
            "whole",
            "SELECT w.i FROM input w
             LEFT JOIN free f ON f.schedule_id = w.schedule_id AND f.seat_no = w.seat_no
             GROUP BY w.i HAVING count(f.seat_no) = count(*)",
        )
        .step(
            "held",
            "UPDATE seat.seats s SET status = 'HELD', reservation_id = w.reservation_id,
                                     held_until = w.held_until
             FROM input w JOIN whole USING (i)
             WHERE s.schedule_id = w.schedule_id AND s.seat_no = w.seat_no
             RETURNING w.i",
        )
        .step("done", "SELECT DISTINCT i FROM held")
        .applied_by("done")
        .claims(claims)
        .events(outbox, events)
        .run(db)
        .await
}

/// The seats a reservation holds in a schedule: what its sale sells, or its release frees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldBy {
    pub schedule: ScheduleId,
    pub reservation: ReservationId,
}

/// Whether `held` names any seat HELD, locking those seats until the transaction ends.
pub async fn holds_any(db: &impl ConnectionTrait, held: HeldBy) -> Result<bool, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT seat_no FROM seat.seats
             WHERE schedule_id = $1 AND reservation_id = $2 AND status = 'HELD' FOR UPDATE",
            [held.schedule.0.into(), held.reservation.0.into()],
        ))
        .await?;
    Ok(!rows.is_empty())
}

/// Sells the seats each reservation of `sales` holds and marks each schedule's first sale
/// (once), in one statement, with the inbox row of `claims` at each position that sold seats;
/// answers the seats sold, by position. The schedule's row is written only by its first sale,
/// so sales of one schedule do not queue behind each other. No two sales may name one
/// reservation. The seats are found through the array of their schedules: joined to the sales
/// alone, the generic plan (taken for ten sales) scanned the whole table, 12.6 ms a statement.
pub async fn sell_each(
    db: &impl ConnectionTrait,
    sales: &[(i64, HeldBy)],
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<(i64, ScheduleId, SeatNo)>, DbErr> {
    let input = Input::at(sales.iter().map(|(i, _)| *i).collect())
        .column("schedule_id", "uuid", sales.iter().map(|(_, s)| s.schedule.0).collect())
        .column("reservation_id", "uuid", sales.iter().map(|(_, s)| s.reservation.0).collect());
    let rows = BatchWrite::over(input)
        .step(
            "sold",
            "UPDATE seat.seats s SET status = 'SOLD', sold_at = now(), held_until = NULL
             FROM input w
             WHERE s.schedule_id = ANY(ARRAY(SELECT schedule_id FROM input))
               AND s.schedule_id = w.schedule_id AND s.reservation_id = w.reservation_id AND s.status = 'HELD'
             RETURNING w.i, s.schedule_id, s.seat_no",
        )
        .step("done", "SELECT DISTINCT i FROM sold")
        .step(
            "first",
            "UPDATE seat.schedules SET first_sold_at = now()
             WHERE schedule_id IN (SELECT schedule_id FROM sold) AND first_sold_at IS NULL",
        )
        .applied_by("done")
        .answering("SELECT i, schedule_id, seat_no FROM sold ORDER BY i, seat_no")
        .claims(claims)
        .rows(db)
        .await?;
    #[derive(FromQueryResult)]
    struct Sold {
        i: i64,
        schedule_id: ScheduleId,
        seat_no: SeatNo,
    }
    rows.iter()
        .map(|r| {
            let Sold { i, schedule_id, seat_no } = Sold::from_query_result(r, "")?;
            Ok((i, schedule_id, seat_no))
        })
        .collect()
}

/// A schedule none of whose seats is unsold, not yet announced: `(concert, first sale, last
/// sale)`. Read without a lock: every sale checks after its own commit, so the last of two
/// concurrent final sales sees both.
pub async fn sold_out(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
) -> Result<Option<(ConcertId, DateTime<Utc>, DateTime<Utc>)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT sc.concert_id, sc.first_sold_at,
                    (SELECT max(sold_at) FROM seat.seats WHERE schedule_id = $1) AS last_sold_at
             FROM seat.schedules sc
             WHERE sc.schedule_id = $1 AND sc.sold_out_at IS NULL AND sc.first_sold_at IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM seat.seats WHERE schedule_id = $1 AND status <> 'SOLD')",
            [schedule.0.into()],
        ))
        .await?;
    #[derive(FromQueryResult)]
    struct SoldOut {
        concert_id: ConcertId,
        first_sold_at: DateTime<Utc>,
        last_sold_at: DateTime<Utc>,
    }
    row.map(|r| {
        let SoldOut { concert_id, first_sold_at, last_sold_at } = SoldOut::from_query_result(&r, "")?;
        Ok((concert_id, first_sold_at, last_sold_at))
    })
    .transpose()
}

/// Marks the schedule sold out at `at` with the `events` announcing it, unless it is marked
/// already (then nothing is written); whether it marked it.
pub async fn mark_sold_out(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    at: DateTime<Utc>,
    outbox: &Outbox,
    events: &[OutboxRow],
) -> Result<bool, DbErr> {
    let mut values: Vec<Value> = vec![schedule.0.into(), at.into()];
    let pushed = outbox.then_cte(events, &mut values, Some(When::row_in("marked")));
    let row = db
        .query_one_raw(stmt(
            &format!(
                "WITH marked AS (
                   UPDATE seat.schedules SET sold_out_at = $2 WHERE schedule_id = $1 AND sold_out_at IS NULL
                   RETURNING 1
                 ){pushed}
                 SELECT count(*) AS n FROM marked"
            ),
            values,
        ))
        .await?;
    Ok(Count::of(row)? == 1)
}

/// Seats of one reservation released together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Released {
    pub schedule: ScheduleId,
    pub reservation: ReservationId,
    pub seats: Vec<SeatNo>,
}

/// How many seats are HELD with a `held_until` before `cutoff`.
pub async fn held_before(db: &impl ConnectionTrait, cutoff: DateTime<Utc>) -> Result<i64, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT count(*) AS n FROM seat.seats WHERE status = 'HELD' AND held_until < $1",
            [cutoff.into()],
        ))
        .await?;
    Count::of(row)
}

/// Releases up to `limit` seats HELD until before `cutoff` (seats another transaction has locked
/// are left for the next pass); returns them by reservation.
pub async fn release_held_before(
    db: &impl ConnectionTrait,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Released>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "WITH due AS (
                 SELECT schedule_id, seat_no, reservation_id FROM seat.seats
                 WHERE status = 'HELD' AND held_until < $1
                 ORDER BY schedule_id, seat_no LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE seat.seats s SET status = 'AVAILABLE', reservation_id = NULL, held_until = NULL
             FROM due WHERE s.schedule_id = due.schedule_id AND s.seat_no = due.seat_no
             RETURNING s.schedule_id, due.reservation_id, s.seat_no",
            [cutoff.into(), limit.into()],
        ))
        .await?;
    let mut out: Vec<Released> = Vec::new();
    #[derive(FromQueryResult)]
    struct Freed {
        schedule_id: ScheduleId,
        reservation_id: ReservationId,
        seat_no: SeatNo,
    }
    for r in rows {
        let Freed { schedule_id: schedule, reservation_id: reservation, seat_no: seat } =
            Freed::from_query_result(&r, "")?;
        match out.iter_mut().find(|x| x.reservation == reservation && x.schedule == schedule) {
            Some(x) => x.seats.push(seat),
            None => out.push(Released { schedule, reservation, seats: vec![seat] }),
        }
    }
    for x in &mut out {
        x.seats.sort();
    }
    Ok(out)
}

/// Releases the seats each reservation of `releases` holds, in one statement, with the inbox
/// row of every position (a reservation that holds nothing here has
/// nothing to release) and the `events` (keyed by position) of those that released seats, their
/// `seatNos` filled with the seats released; answers every position. No two releases may name
/// one reservation. As in [`sell_each`], the seats are found through the array of their
/// schedules.
pub async fn release_each(
    db: &impl ConnectionTrait,
    releases: &[(i64, HeldBy)],
    outbox: &Outbox,
    events: Vec<(i64, &OutboxRow)>,
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<i64>, DbErr> {
    let input = Input::at(releases.iter().map(|(i, _)| *i).collect())
        .column("schedule_id", "uuid", releases.iter().map(|(_, r)| r.schedule.0).collect())
        .column("reservation_id", "uuid", releases.iter().map(|(_, r)| r.reservation.0).collect());
    BatchWrite::over(input)
        .step(
            "released",
            "UPDATE seat.seats s SET status = 'AVAILABLE', reservation_id = NULL, held_until = NULL
             FROM input w
             WHERE s.schedule_id = ANY(ARRAY(SELECT schedule_id FROM input))
               AND s.schedule_id = w.schedule_id AND s.reservation_id = w.reservation_id AND s.status = 'HELD'
             RETURNING w.i, s.seat_no",
        )
        .step("freed", "SELECT i, array_agg(seat_no ORDER BY seat_no) AS seat_nos FROM released GROUP BY i")
        .claims(claims)
        .events(outbox, events)
        .announcing_from("freed")
        .filling("seatNos", "seat_nos")
        .run(db)
        .await
}

/// Moves a schedule's sale opening (`None`: on sale now).
pub async fn move_sale(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    sales_open_at: Option<DateTime<Utc>>,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE seat.schedules SET sales_open_at = $2 WHERE schedule_id = $1",
        [schedule.0.into(), sales_open_at.into()],
    ))
    .await?;
    Ok(())
}

/// Marks a schedule cancelled: none of its seats is held any more.
pub async fn cancel(db: &impl ConnectionTrait, schedule: ScheduleId, at: DateTime<Utc>) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "UPDATE seat.schedules SET cancelled_at = coalesce(cancelled_at, $2) WHERE schedule_id = $1",
        [schedule.0.into(), at.into()],
    ))
    .await?;
    Ok(())
}
