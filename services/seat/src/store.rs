//! The inventory's queries. Seats are locked in seat-number order, so two holds over
//! overlapping seats serialize instead of deadlocking.

use crate::domain::{Seat, SeatStatus};
use chrono::{DateTime, Utc};
use contracts::{ConcertId, ReservationId, ScheduleId, SeatNo, SeatPrice, Won};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, Statement, Value};

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn nos(seats: &[SeatNo]) -> Value {
    seats.iter().map(|s| s.0).collect::<Vec<i32>>().into()
}

/// Creates a schedule's seats (a replayed announcement changes nothing).
pub async fn create_schedule(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    concert: ConcertId,
    seats: &[SeatPrice],
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO seat.schedules (schedule_id, concert_id, seat_count) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        [schedule.0.into(), concert.0.into(), i32::try_from(seats.len()).unwrap_or(i32::MAX).into()],
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

/// The schedule's concert, if the schedule is known.
pub async fn concert_of(db: &impl ConnectionTrait, schedule: ScheduleId) -> Result<Option<ConcertId>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT concert_id FROM seat.schedules WHERE schedule_id = $1",
            [schedule.0.into()],
        ))
        .await?;
    row.map(|r| r.try_get("", "concert_id").map(ConcertId)).transpose()
}

fn seat(r: &sea_orm::QueryResult) -> Result<Seat, DbErr> {
    let status: String = r.try_get("", "status")?;
    Ok(Seat {
        seat_no: SeatNo(r.try_get("", "seat_no")?),
        price: Won(r.try_get("", "price")?),
        status: SeatStatus::parse(&status)
            .ok_or_else(|| DbErr::Custom(format!("unknown seat status {status}")))?,
        reservation_id: r.try_get::<Option<uuid::Uuid>>("", "reservation_id")?.map(ReservationId),
    })
}

/// The schedule's concert and those of `seats` that exist, as last committed (without waiting
/// for anyone's locks), in one round trip; `None` if the schedule is unknown.
pub async fn inventory(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    seats: &[SeatNo],
) -> Result<Option<(ConcertId, Vec<Seat>)>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "SELECT sc.concert_id, st.seat_no, st.price, st.status, st.reservation_id
             FROM seat.schedules sc
             LEFT JOIN seat.seats st ON st.schedule_id = sc.schedule_id AND st.seat_no = ANY($2)
             WHERE sc.schedule_id = $1 ORDER BY st.seat_no",
            [schedule.0.into(), nos(seats)],
        ))
        .await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let concert = ConcertId(first.try_get("", "concert_id")?);
    let found = rows
        .iter()
        .filter(|r| r.try_get::<Option<i32>>("", "seat_no").is_ok_and(|n| n.is_some()))
        .map(seat)
        .collect::<Result<_, _>>()?;
    Ok(Some((concert, found)))
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
            [schedule.0.into(), nos(seats)],
        ))
        .await?;
    rows.iter().map(seat).collect()
}

/// Holds all of `seats` (sorted, distinct) for `reservation` if each exists, is AVAILABLE and
/// is not locked by another transaction, in one round trip; otherwise holds none. Returns the
/// schedule's concert and what the seats cost together when it held them. Skipping locked rows
/// keeps a request for a seat someone else is taking from queueing behind that hold: it is
/// decided afterwards from the committed rows instead.
pub async fn hold_all_free(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    seats: &[SeatNo],
    reservation: ReservationId,
    until: DateTime<Utc>,
) -> Result<Option<(ConcertId, Won)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "WITH free AS (
               SELECT seat_no FROM seat.seats
               WHERE schedule_id = $1 AND seat_no = ANY($2) AND status = 'AVAILABLE'
               ORDER BY seat_no FOR UPDATE SKIP LOCKED
             ), held AS (
               UPDATE seat.seats SET status = 'HELD', reservation_id = $3, held_until = $4
               WHERE schedule_id = $1 AND seat_no IN (SELECT seat_no FROM free)
                 AND (SELECT count(*) FROM free) = cardinality($2::int[])
               RETURNING price
             )
             SELECT sc.concert_id, sum(held.price)::bigint AS amount
             FROM held JOIN seat.schedules sc ON sc.schedule_id = $1 GROUP BY sc.concert_id",
            [schedule.0.into(), nos(seats), reservation.0.into(), until.into()],
        ))
        .await?;
    row.map(|r| Ok((ConcertId(r.try_get("", "concert_id")?), Won(r.try_get("", "amount")?)))).transpose()
}

/// Holds the seats for `reservation`; returns how many were available and now held.
pub async fn hold(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    seats: &[SeatNo],
    reservation: ReservationId,
    until: DateTime<Utc>,
) -> Result<u64, DbErr> {
    let r = db
        .execute_raw(stmt(
            "UPDATE seat.seats SET status = 'HELD', reservation_id = $3, held_until = $4
             WHERE schedule_id = $1 AND seat_no = ANY($2) AND status = 'AVAILABLE'",
            [schedule.0.into(), nos(seats), reservation.0.into(), until.into()],
        ))
        .await?;
    Ok(r.rows_affected())
}

/// Sells the seats `reservation` holds; returns their numbers.
pub async fn sell(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    reservation: ReservationId,
) -> Result<Vec<SeatNo>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "UPDATE seat.seats SET status = 'SOLD', sold_at = now(), held_until = NULL
             WHERE schedule_id = $1 AND reservation_id = $2 AND status = 'HELD' RETURNING seat_no",
            [schedule.0.into(), reservation.0.into()],
        ))
        .await?;
    rows.iter().map(|r| r.try_get("", "seat_no").map(SeatNo)).collect()
}

/// Marks the schedule's first sale (once) and, when no seat is left unsold, its sell-out
/// (once): returns `(concert, first sale, sold out at)` the moment it sells out.
pub async fn record_sale(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
) -> Result<Option<(ConcertId, DateTime<Utc>, DateTime<Utc>)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "UPDATE seat.schedules SET first_sold_at = COALESCE(first_sold_at, now()),
                 sold_out_at = CASE
                     WHEN sold_out_at IS NULL AND NOT EXISTS
                         (SELECT 1 FROM seat.seats WHERE schedule_id = $1 AND status <> 'SOLD')
                     THEN now() ELSE sold_out_at END
             WHERE schedule_id = $1
             RETURNING concert_id, first_sold_at, sold_out_at, (sold_out_at IS NOT NULL AND sold_out_at = now()) AS just_sold_out",
            [schedule.0.into()],
        ))
        .await?;
    let Some(r) = row else { return Ok(None) };
    if !r.try_get::<bool>("", "just_sold_out")? {
        return Ok(None);
    }
    Ok(Some((
        ConcertId(r.try_get("", "concert_id")?),
        r.try_get("", "first_sold_at")?,
        r.try_get("", "sold_out_at")?,
    )))
}

/// Releases the seats `reservation` holds; returns their numbers.
pub async fn release(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    reservation: ReservationId,
) -> Result<Vec<SeatNo>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "UPDATE seat.seats SET status = 'AVAILABLE', reservation_id = NULL, held_until = NULL
             WHERE schedule_id = $1 AND reservation_id = $2 AND status = 'HELD' RETURNING seat_no",
            [schedule.0.into(), reservation.0.into()],
        ))
        .await?;
    let mut seats: Vec<SeatNo> =
        rows.iter().map(|r| r.try_get("", "seat_no").map(SeatNo)).collect::<Result<_, _>>()?;
    seats.sort();
    Ok(seats)
}

/// A schedule's seats for the API, optionally only those in one status; `None` if unknown.
pub async fn list(
    db: &impl ConnectionTrait,
    schedule: ScheduleId,
    status: Option<SeatStatus>,
) -> Result<Option<Vec<Seat>>, DbErr> {
    if concert_of(db, schedule).await?.is_none() {
        return Ok(None);
    }
    let rows = db
        .query_all_raw(stmt(
            "SELECT seat_no, price, status, reservation_id FROM seat.seats
             WHERE schedule_id = $1 AND ($2::text IS NULL OR status = $2) ORDER BY seat_no",
            [schedule.0.into(), status.map(|s| s.as_str().to_owned()).into()],
        ))
        .await?;
    rows.iter().map(seat).collect::<Result<Vec<_>, _>>().map(Some)
}
