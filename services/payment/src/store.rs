//! The payment service's queries: its payments, and the webhook ids it has taken.

use crate::domain::{Payment, Status};
use chrono::{DateTime, Duration, Utc};
use contracts::{PaymentFailureReason, PaymentId, ReservationId, UserId, Won};
use messaging::{Outbox, OutboxRow};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, QueryResult, Statement, Value};

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

const COLUMNS: &str = "id, reservation_id, user_id, amount, pay_by, status, gateway_id, checkout_url, \
                       refund_wanted, attempts, failure_reason, created_at, updated_at";

platform::text_column!(Status);

#[derive(FromQueryResult)]
struct Row {
    id: PaymentId,
    reservation_id: ReservationId,
    user_id: UserId,
    amount: Won,
    pay_by: DateTime<Utc>,
    status: Status,
    gateway_id: Option<String>,
    checkout_url: Option<String>,
    refund_wanted: bool,
    attempts: i32,
    failure_reason: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// A payment as stored, with its times.
#[derive(Clone, Debug)]
pub struct Stored {
    pub payment: Payment,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn reason_str(r: PaymentFailureReason) -> String {
    serde_json::to_value(r).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

fn stored(r: &QueryResult) -> Result<Stored, DbErr> {
    let row = Row::from_query_result(r, "")?;
    Ok(Stored {
        payment: Payment {
            id: row.id,
            reservation_id: row.reservation_id,
            user_id: row.user_id,
            amount: row.amount,
            pay_by: row.pay_by,
            status: row.status,
            gateway_id: row.gateway_id,
            checkout_url: row.checkout_url,
            refund_wanted: row.refund_wanted,
            attempts: u32::try_from(row.attempts).unwrap_or(0),
            failure_reason: row.failure_reason.and_then(|s| serde_json::from_value(s.into()).ok()),
        },
        created_at: row.created_at,
        updated_at: row.updated_at,
    })
}

/// Records a new payment (due at once for the worker) with its events.
pub async fn insert(db: &impl ConnectionTrait, p: &Payment) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO payment.payments (id, reservation_id, user_id, amount, pay_by, status)
         VALUES ($1, $2, $3, $4, $5, $6)",
        [
            p.id.0.into(),
            p.reservation_id.0.into(),
            p.user_id.0.into(),
            p.amount.0.into(),
            p.pay_by.into(),
            p.status.as_str().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The reservation's payments that may still take or hold money, locked until the transaction
/// ends.
pub async fn live_of_reservation(db: &impl ConnectionTrait, r: ReservationId) -> Result<Vec<Payment>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM payment.payments
                 WHERE reservation_id = $1 AND status IN ('NEW', 'READY', 'CAPTURED', 'FAILED', 'VOIDED')
                 ORDER BY created_at FOR UPDATE"
            ),
            [r.0.into()],
        ))
        .await?;
    rows.iter().map(|r| stored(r).map(|s| s.payment)).collect()
}

/// One payment, locked until the transaction ends.
pub async fn for_update(db: &impl ConnectionTrait, id: PaymentId) -> Result<Option<Payment>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            &format!("SELECT {COLUMNS} FROM payment.payments WHERE id = $1 FOR UPDATE"),
            [id.0.into()],
        ))
        .await?;
    row.map(|r| stored(&r).map(|s| s.payment)).transpose()
}

/// The payments of a reservation, newest first.
pub async fn of_reservation(db: &impl ConnectionTrait, r: ReservationId) -> Result<Vec<Stored>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "SELECT {COLUMNS} FROM payment.payments WHERE reservation_id = $1 ORDER BY created_at DESC"
            ),
            [r.0.into()],
        ))
        .await?;
    rows.iter().map(stored).collect()
}

/// Saves `next` over the payment, with the events announcing it, and says when the worker
/// should next call the gateway for it (`due`: none while it waits for nothing).
pub async fn save(
    db: &impl ConnectionTrait,
    next: &Payment,
    due: Option<Duration>,
    outbox: &Outbox,
    events: &[OutboxRow],
) -> Result<(), DbErr> {
    let due_at = due.map(|d| Utc::now() + d);
    db.execute_raw(stmt(
        "UPDATE payment.payments
         SET status = $2, gateway_id = $3, checkout_url = $4, refund_wanted = $5, attempts = $6,
             failure_reason = $7, next_attempt_at = $8, updated_at = now()
         WHERE id = $1",
        [
            next.id.0.into(),
            next.status.as_str().into(),
            next.gateway_id.clone().into(),
            next.checkout_url.clone().into(),
            next.refund_wanted.into(),
            i32::try_from(next.attempts).unwrap_or(i32::MAX).into(),
            next.failure_reason.map(reason_str).into(),
            due_at.into(),
        ],
    ))
    .await?;
    outbox.push_rows(db, events).await
}

/// Claims up to `limit` payments whose gateway call is due, each for `lease` (a worker that
/// dies mid-call leaves it due again when the lease ends; the gateway's idempotency keys make
/// the second call harmless).
pub async fn claim_due(
    db: &impl ConnectionTrait,
    limit: u64,
    lease: Duration,
) -> Result<Vec<Payment>, DbErr> {
    let rows = db
        .query_all_raw(stmt(
            &format!(
                "UPDATE payment.payments SET next_attempt_at = now() + make_interval(secs => $2)
                 WHERE id IN (
                     SELECT id FROM payment.payments
                     WHERE next_attempt_at <= now()
                     ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                 RETURNING {COLUMNS}"
            ),
            [
                i64::try_from(limit).unwrap_or(i64::MAX).into(),
                (lease.num_milliseconds() as f64 / 1000.0).into(),
            ],
        ))
        .await?;
    rows.iter().map(|r| stored(r).map(|s| s.payment)).collect()
}

/// Remembers a webhook's id; false if it was taken before (a replay or a copy).
pub async fn first_webhook(db: &impl ConnectionTrait, id: &str) -> Result<bool, DbErr> {
    let done = db
        .execute_raw(stmt(
            "INSERT INTO payment.webhooks (id) VALUES ($1) ON CONFLICT (id) DO NOTHING",
            [id.to_owned().into()],
        ))
        .await?;
    Ok(done.rows_affected() == 1)
}
