//! The catalog's queries.

use chrono::{DateTime, Utc};
use contracts::{ConcertId, ScheduleId};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use serde::Serialize;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// A concert as the API shows it (and as its row reads).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema, FromQueryResult)]
#[serde(rename_all = "camelCase")]
pub struct Concert {
    pub id: ConcertId,
    pub name: String,
    /// Who puts it on.
    pub host: String,
}

/// A schedule as the API shows it (and as its row reads).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema, FromQueryResult)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    pub id: ScheduleId,
    pub concert_id: ConcertId,
    pub starts_at: DateTime<Utc>,
    /// How many seats it has (numbered from 1).
    pub seat_count: i32,
    /// When its sale opens; absent when it was on sale from the start.
    pub sales_open_at: Option<DateTime<Utc>>,
    /// When an organizer cancelled it; absent while it goes ahead.
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// The columns a [`Schedule`] reads.
const SCHEDULE: &str = "id, concert_id, starts_at, seat_count, sales_open_at, cancelled_at";

pub async fn insert_concert(db: &impl ConnectionTrait, c: &Concert) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO concert.concerts (id, name, host) VALUES ($1, $2, $3)",
        [c.id.0.into(), c.name.clone().into(), c.host.clone().into()],
    ))
    .await?;
    Ok(())
}

/// Renames a concert; `false` when it does not exist.
pub async fn update_concert(db: &impl ConnectionTrait, c: &Concert) -> Result<bool, DbErr> {
    let r = db
        .execute_raw(stmt(
            "UPDATE concert.concerts SET name = $2, host = $3, updated_at = now() WHERE id = $1",
            [c.id.0.into(), c.name.clone().into(), c.host.clone().into()],
        ))
        .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn get_concert(db: &impl ConnectionTrait, id: ConcertId) -> Result<Option<Concert>, DbErr> {
    Concert::find_by_statement(stmt("SELECT id, name, host FROM concert.concerts WHERE id = $1", [id.into()]))
        .one(db)
        .await
}

/// The oldest concert with this exact name.
pub async fn find_concert_by_name(db: &impl ConnectionTrait, name: &str) -> Result<Option<ConcertId>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT id FROM concert.concerts WHERE name = $1 ORDER BY id LIMIT 1",
            [name.into()],
        ))
        .await?;
    #[derive(FromQueryResult)]
    struct Found {
        id: ConcertId,
    }
    row.map(|r| Ok(Found::from_query_result(&r, "")?.id)).transpose()
}

/// Concerts in creation order after the cursor, `limit` of them.
pub async fn list_concerts(
    db: &impl ConnectionTrait,
    after: Option<uuid::Uuid>,
    limit: u64,
) -> Result<Vec<Concert>, DbErr> {
    Concert::find_by_statement(stmt(
        "SELECT id, name, host FROM concert.concerts WHERE id > $1 ORDER BY id LIMIT $2",
        [platform::paging::after(after).into(), i64::try_from(limit).unwrap_or(i64::MAX).into()],
    ))
    .all(db)
    .await
}

pub async fn insert_schedule(db: &impl ConnectionTrait, s: &Schedule) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO concert.schedules (id, concert_id, starts_at, seat_count, sales_open_at)
         VALUES ($1, $2, $3, $4, $5)",
        [
            s.id.0.into(),
            s.concert_id.0.into(),
            s.starts_at.into(),
            s.seat_count.into(),
            s.sales_open_at.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// A concert's schedules in creation order after the cursor.
pub async fn list_schedules(
    db: &impl ConnectionTrait,
    concert: ConcertId,
    after: Option<uuid::Uuid>,
    limit: u64,
) -> Result<Vec<Schedule>, DbErr> {
    Schedule::find_by_statement(stmt(
        &format!(
            "SELECT {SCHEDULE} FROM concert.schedules WHERE concert_id = $1 AND id > $2 ORDER BY id LIMIT $3"
        ),
        [
            concert.into(),
            platform::paging::after(after).into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    ))
    .all(db)
    .await
}

/// One schedule of a concert.
pub async fn get_schedule(
    db: &impl ConnectionTrait,
    concert: ConcertId,
    id: ScheduleId,
) -> Result<Option<Schedule>, DbErr> {
    Schedule::find_by_statement(stmt(
        &format!("SELECT {SCHEDULE} FROM concert.schedules WHERE concert_id = $1 AND id = $2"),
        [concert.into(), id.into()],
    ))
    .one(db)
    .await
}

/// Moves a schedule that is not cancelled; the schedule as it is now (`None`: no such schedule
/// of the concert). A cancelled one comes back unchanged.
pub async fn move_schedule(
    db: &impl ConnectionTrait,
    concert: ConcertId,
    id: ScheduleId,
    starts_at: DateTime<Utc>,
    sales_open_at: Option<DateTime<Utc>>,
) -> Result<Option<Schedule>, DbErr> {
    let moved = Schedule::find_by_statement(stmt(
        &format!(
            "UPDATE concert.schedules SET starts_at = $3, sales_open_at = $4
             WHERE concert_id = $1 AND id = $2 AND cancelled_at IS NULL RETURNING {SCHEDULE}"
        ),
        [concert.into(), id.into(), starts_at.into(), sales_open_at.into()],
    ))
    .one(db)
    .await?;
    match moved {
        Some(s) => Ok(Some(s)),
        None => get_schedule(db, concert, id).await,
    }
}

/// Cancels a schedule; the schedule as it is now, and whether this cancelled it (`None`: no
/// such schedule of the concert).
pub async fn cancel_schedule(
    db: &impl ConnectionTrait,
    concert: ConcertId,
    id: ScheduleId,
    now: DateTime<Utc>,
) -> Result<Option<(Schedule, bool)>, DbErr> {
    let cancelled = Schedule::find_by_statement(stmt(
        &format!(
            "UPDATE concert.schedules SET cancelled_at = $3
             WHERE concert_id = $1 AND id = $2 AND cancelled_at IS NULL RETURNING {SCHEDULE}"
        ),
        [concert.into(), id.into(), now.into()],
    ))
    .one(db)
    .await?;
    match cancelled {
        Some(s) => Ok(Some((s, true))),
        None => Ok(get_schedule(db, concert, id).await?.map(|s| (s, false))),
    }
}
