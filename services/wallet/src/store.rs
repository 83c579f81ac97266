//! The wallet's queries. Every balance change is one statement, so no lock is held across
//! round trips and the balance can never go below zero.

use crate::domain::PaymentStatus;
use contracts::{ChargeId, PaymentId, ReservationId, UserId, Won};
use messaging::{BatchWrite, InboxClaims, Input, Outbox, OutboxRow};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};

platform::text_column!(PaymentStatus);

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// Adds `amount`; creates the wallet on first use. Returns the new balance.
pub async fn credit(db: &impl ConnectionTrait, user: UserId, amount: Won) -> Result<Won, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "INSERT INTO wallet.wallets (user_id, balance) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET balance = wallet.wallets.balance + EXCLUDED.balance, updated_at = now()
             RETURNING balance",
            [user.0.into(), amount.0.into()],
        ))
        .await?
        .ok_or_else(|| DbErr::RecordNotInserted)?;
    Ok(Balance::from_query_result(&row, "")?.balance)
}

/// A wallet's `balance`.
#[derive(FromQueryResult)]
struct Balance {
    balance: Won,
}

impl Balance {
    /// The balance `row` answers; 0 without a row (a wallet never charged).
    fn of(row: Option<sea_orm::QueryResult>) -> Result<Won, DbErr> {
        row.map_or(Ok(Won(0)), |r| Ok(Self::from_query_result(&r, "")?.balance))
    }
}

/// The wallet's balance, locked until the transaction ends (0, and nothing locked, for a
/// wallet never charged: no debit can pass its guard).
pub async fn balance_for_update(db: &impl ConnectionTrait, user: UserId) -> Result<Won, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT balance FROM wallet.wallets WHERE user_id = $1 FOR UPDATE",
            [user.0.into()],
        ))
        .await?;
    Balance::of(row)
}

/// The current balance (0 for a wallet never charged).
pub async fn balance(db: &impl ConnectionTrait, user: UserId) -> Result<Won, DbErr> {
    let row = db
        .query_one_raw(stmt("SELECT balance FROM wallet.wallets WHERE user_id = $1", [user.0.into()]))
        .await?;
    Balance::of(row)
}

/// Records a top-up.
pub async fn insert_charge(
    db: &impl ConnectionTrait,
    id: ChargeId,
    user: UserId,
    amount: Won,
    balance_after: Won,
) -> Result<(), DbErr> {
    db.execute_raw(stmt(
        "INSERT INTO wallet.charges (id, user_id, amount, balance_after) VALUES ($1, $2, $3, $4)",
        [id.0.into(), user.0.into(), amount.0.into(), balance_after.0.into()],
    ))
    .await?;
    Ok(())
}

/// The status of a reservation's payment, locked for the rest of the transaction.
pub async fn payment_status(
    db: &impl ConnectionTrait,
    reservation: ReservationId,
) -> Result<Option<PaymentStatus>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "SELECT status FROM wallet.payments WHERE reservation_id = $1 FOR UPDATE",
            [reservation.0.into()],
        ))
        .await?;
    #[derive(FromQueryResult)]
    struct Status {
        status: PaymentStatus,
    }
    row.map(|r| Ok(Status::from_query_result(&r, "")?.status)).transpose()
}

/// A reservation's payment (or its void) as stored.
pub struct Payment {
    pub id: PaymentId,
    pub reservation: ReservationId,
    pub user: UserId,
    pub amount: Won,
    pub status: PaymentStatus,
}

/// `$1..$5` of a statement inserting `p`: id, reservation, user, amount, status.
fn payment_values(p: &Payment) -> Vec<Value> {
    vec![p.id.0.into(), p.reservation.0.into(), p.user.0.into(), p.amount.0.into(), p.status.as_str().into()]
}

/// Records a reservation's payment (or its void), with the `events` that announce it in the
/// same round trip. The unique reservation id makes a second payment for the same reservation
/// impossible.
pub async fn insert_payment(
    db: &impl ConnectionTrait,
    p: &Payment,
    outbox: &Outbox,
    events: &[OutboxRow],
) -> Result<(), DbErr> {
    let mut values = payment_values(p);
    let with = outbox.cte(events, &mut values, None).map(|cte| format!("WITH {cte} ")).unwrap_or_default();
    db.execute_raw(stmt(
        &format!(
            "{with}INSERT INTO wallet.payments (id, reservation_id, user_id, amount, status) VALUES ($1, $2, $3, $4, $5)"
        ),
        values,
    ))
    .await?;
    Ok(())
}

/// Pays, in one statement, each of `payments` (COMPLETED, keyed by position as
/// [`messaging::InboxClaims`] counts) whose reservation has no payment yet and whose wallet
/// covers it: debits the wallet, records the payment and writes its `events` (their `balance`
/// set to the balance after the debit) and its inbox row of `claims`. No two payments may be of
/// the same wallet or reservation. Answers the positions paid; the others change nothing.
pub async fn pay_each(
    db: &impl ConnectionTrait,
    payments: &[(i64, &Payment)],
    outbox: &Outbox,
    events: Vec<(i64, &OutboxRow)>,
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<i64>, DbErr> {
    let each = |f: fn(&Payment) -> uuid::Uuid| payments.iter().map(|(_, p)| f(p)).collect::<Vec<_>>();
    let input = Input::at(payments.iter().map(|(i, _)| *i).collect())
        .column("id", "uuid", each(|p| p.id.0))
        .column("reservation_id", "uuid", each(|p| p.reservation.0))
        .column("user_id", "uuid", each(|p| p.user.0))
        .column("amount", "bigint", payments.iter().map(|(_, p)| p.amount.0).collect())
        .column("status", "text", payments.iter().map(|(_, p)| p.status.as_str().to_owned()).collect());
    BatchWrite::over(input)
        .step(
            "debited",
            "UPDATE wallet.wallets w SET balance = w.balance - p.amount, updated_at = now()
             FROM input p
             WHERE w.user_id = p.user_id AND w.balance >= p.amount
               AND NOT EXISTS (SELECT 1 FROM wallet.payments x WHERE x.reservation_id = p.reservation_id)
             RETURNING p.i, p.id, p.reservation_id, p.user_id, p.amount, p.status, w.balance",
        )
        .step(
            "paid",
            "INSERT INTO wallet.payments (id, reservation_id, user_id, amount, status)
             SELECT id, reservation_id, user_id, amount, status FROM debited",
        )
        .applied_by("debited")
        .claims(claims)
        .events(outbox, events)
        .filling("balance", "balance")
        .run(db)
        .await
}

/// A completed payment, now marked refunded: `(payment, user, amount)`.
pub async fn mark_refunded(
    db: &impl ConnectionTrait,
    reservation: ReservationId,
) -> Result<Option<(PaymentId, UserId, Won)>, DbErr> {
    let row = db
        .query_one_raw(stmt(
            "UPDATE wallet.payments SET status = 'REFUNDED', refunded_at = now()
             WHERE reservation_id = $1 AND status = 'COMPLETED' RETURNING id, user_id, amount",
            [reservation.0.into()],
        ))
        .await?;
    #[derive(FromQueryResult)]
    struct Refunded {
        id: PaymentId,
        user_id: UserId,
        amount: Won,
    }
    row.map(|r| {
        let Refunded { id, user_id, amount } = Refunded::from_query_result(&r, "")?;
        Ok((id, user_id, amount))
    })
    .transpose()
}
