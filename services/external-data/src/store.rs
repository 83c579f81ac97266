//! The delivery log's queries. Every state change is one statement guarded by the state it
//! expects (compare-and-set), so a worker whose lease ran out, or an admin retry racing the
//! worker, can never overwrite a newer outcome.

use crate::domain::{AttemptResult, DeliveryId, DeliveryStatus, Next};
use chrono::{DateTime, Utc};
use contracts::{EventId, ReservationId};
use messaging::{BatchWrite, InboxClaims, Input};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};
use serde::Serialize;
use std::time::Duration;

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

fn millis(d: Duration) -> Value {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX).into()
}

platform::text_column!(DeliveryStatus);

/// A delivery as the admin routes show it (and as its row reads).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema, FromQueryResult)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Also sent as `webhook-id` on every attempt.
    pub id: DeliveryId,
    /// The ReservationCompleted event delivered.
    pub event_id: EventId,
    pub reservation_id: ReservationId,
    pub status: DeliveryStatus,
    /// Attempts made since the delivery was recorded or last retried by an admin.
    pub attempts: i32,
    /// What went wrong on the last failed attempt (HTTP status and the start of the answer, or
    /// the timeout or connection error).
    pub last_error: Option<String>,
    /// The HTTP status of the last answer, if there was one.
    pub last_status: Option<i32>,
    /// When the next attempt is due (or the running attempt's lease ends); PENDING only.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A [`Delivery`]'s columns; the next attempt is shown only while one is to come.
const COLUMNS: &str = "id, event_id, reservation_id, status, attempts, last_error, last_status, \
                       CASE WHEN status = 'PENDING' THEN next_attempt_at END AS next_attempt_at, \
                       delivered_at, created_at";

/// A delivery to record, PENDING and due now.
#[derive(Clone, Debug)]
pub struct Pending {
    pub id: DeliveryId,
    /// The ReservationCompleted it hands on.
    pub event: EventId,
    pub reservation: ReservationId,
    /// The body to send.
    pub payload: serde_json::Value,
}

/// Records the deliveries of a batch, each at its position in the batch (from 1), with their
/// inbox rows (`claims`), in one statement; the positions recorded. An event applied before
/// fails the whole statement on the inbox's key.
pub async fn insert_pending_each(
    db: &impl ConnectionTrait,
    deliveries: &[(i64, Pending)],
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<i64>, DbErr> {
    let each = |f: fn(&Pending) -> uuid::Uuid| deliveries.iter().map(|(_, d)| f(d)).collect::<Vec<_>>();
    let input = Input::at(deliveries.iter().map(|(i, _)| *i).collect())
        .column("id", "uuid", each(|d| d.id.0))
        .column("event_id", "uuid", each(|d| d.event.0))
        .column("reservation_id", "uuid", each(|d| d.reservation.0))
        .column("payload", "jsonb", deliveries.iter().map(|(_, d)| d.payload.clone()).collect());
    BatchWrite::over(input)
        .step(
            "recorded",
            "INSERT INTO external_data.deliveries (id, event_id, reservation_id, payload, status)
             SELECT id, event_id, reservation_id, payload, 'PENDING' FROM input ORDER BY i
             ON CONFLICT (event_id) DO NOTHING",
        )
        .claims(claims)
        .run(db)
        .await
}

/// A due delivery, leased to the worker that claimed it.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub id: DeliveryId,
    /// The body to send (the ReservationCompleted payload).
    pub payload: serde_json::Value,
    /// Attempts made before this one.
    pub attempts: u32,
    /// The `next_attempt_at` the claim set: the token the outcome is recorded against.
    pub lease_until: DateTime<Utc>,
}

/// Claims up to `limit` due PENDING deliveries by pushing their `next_attempt_at` `lease` into
/// the future, in one autocommitted statement: no transaction stays open across the HTTP call,
/// and `SKIP LOCKED` lets other replicas claim other rows at the same time.
pub async fn claim_due(
    db: &impl ConnectionTrait,
    limit: u64,
    lease: Duration,
) -> Result<Vec<Claimed>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            "WITH due AS (
                 SELECT id FROM external_data.deliveries
                 WHERE status = 'PENDING' AND next_attempt_at <= now()
                 ORDER BY next_attempt_at LIMIT $1
                 FOR UPDATE SKIP LOCKED
             )
             UPDATE external_data.deliveries d
             SET next_attempt_at = now() + $2::bigint * interval '1 millisecond', updated_at = now()
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.payload, d.attempts, d.next_attempt_at",
            [i64::try_from(limit).unwrap_or(i64::MAX).into(), millis(lease)],
        ))
        .await?;
    #[derive(FromQueryResult)]
    struct Due {
        id: uuid::Uuid,
        payload: serde_json::Value,
        attempts: i32,
        next_attempt_at: DateTime<Utc>,
    }
    rows.iter()
        .map(|r| {
            let due = Due::from_query_result(r, "")?;
            Ok(Claimed {
                id: DeliveryId(due.id),
                payload: due.payload,
                attempts: u32::try_from(due.attempts).unwrap_or(0),
                lease_until: due.next_attempt_at,
            })
        })
        .collect()
}

/// Records an attempt's outcome, if the claim still holds (same attempt count and lease); `false`
/// when another worker took the row over after the lease ran out, or an admin changed it.
pub async fn record(
    db: &impl ConnectionTrait,
    claim: &Claimed,
    result: &AttemptResult,
    next: Next,
) -> Result<bool, DbErr> {
    let guard = "WHERE id = $1 AND status = 'PENDING' AND attempts = $2 AND next_attempt_at = $3";
    let key = [
        claim.id.0.into(),
        i32::try_from(claim.attempts).unwrap_or(i32::MAX).into(),
        claim.lease_until.into(),
        result.status().map(i32::from).into(),
        result.error().into(),
    ];
    let statement = match next {
        Next::Delivered => stmt(
            &format!(
                "UPDATE external_data.deliveries SET status = 'DELIVERED', attempts = attempts + 1,
                 last_status = $4, last_error = $5, delivered_at = now(), updated_at = now() {guard}"
            ),
            key,
        ),
        Next::RetryIn(wait) => stmt(
            &format!(
                "UPDATE external_data.deliveries SET attempts = attempts + 1, last_status = $4,
                 last_error = $5, next_attempt_at = now() + $6::bigint * interval '1 millisecond',
                 updated_at = now() {guard}"
            ),
            key.into_iter().chain([millis(wait)]),
        ),
        Next::Failed => stmt(
            &format!(
                "UPDATE external_data.deliveries SET status = 'FAILED', attempts = attempts + 1,
                 last_status = $4, last_error = $5, updated_at = now() {guard}"
            ),
            key,
        ),
    };
    Ok(db.execute_raw(statement).await?.rows_affected() == 1)
}

/// Deliveries newest first, after the cursor (an id of the previous page), `limit` of them.
pub async fn list(
    db: &impl ConnectionTrait,
    status: Option<DeliveryStatus>,
    after: Option<uuid::Uuid>,
    limit: u64,
) -> Result<Vec<Delivery>, DbErr> {
    Delivery::find_by_statement(stmt(
        &format!(
            "SELECT {COLUMNS} FROM external_data.deliveries
             WHERE ($1::text IS NULL OR status = $1) AND id < $2
             ORDER BY id DESC LIMIT $3"
        ),
        [
            status.map(|s| s.as_str().to_owned()).into(),
            platform::paging::before(after).into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    ))
    .all(db)
    .await
}

/// One delivery.
pub async fn get(db: &impl ConnectionTrait, id: DeliveryId) -> Result<Option<Delivery>, DbErr> {
    Delivery::find_by_statement(stmt(
        &format!("SELECT {COLUMNS} FROM external_data.deliveries WHERE id = $1"),
        [id.0.into()],
    ))
    .one(db)
    .await
}

/// Makes a FAILED delivery PENDING again, due now, with a fresh attempt budget; `None` when it
/// is not FAILED (or does not exist). The last error stays until the next attempt replaces it.
pub async fn retry(db: &impl ConnectionTrait, id: DeliveryId) -> Result<Option<Delivery>, DbErr> {
    Delivery::find_by_statement(stmt(
        &format!(
            "UPDATE external_data.deliveries SET status = 'PENDING', attempts = 0, next_attempt_at = now(),
             updated_at = now() WHERE id = $1 AND status = 'FAILED' RETURNING {COLUMNS}"
        ),
        [id.0.into()],
    ))
    .one(db)
    .await
}
