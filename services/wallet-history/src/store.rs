//! The history's queries.

use chrono::{DateTime, Utc};
use contracts::{EventId, ReservationId, UserId, Won};
use messaging::{BatchWrite, InboxClaims, Input};
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement};
use serde::Serialize;

/// What moved the balance, or what the wallet refused to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Kind {
    Charge,
    Payment,
    Refund,
    /// A top-up the wallet refused (`reason` says why); the balance did not move.
    ChargeFailed,
    /// A payment the wallet refused (`reason` says why); the balance did not move.
    PaymentFailed,
}

impl Kind {
    const ALL: [Kind; 5] =
        [Kind::Charge, Kind::Payment, Kind::Refund, Kind::ChargeFailed, Kind::PaymentFailed];

    fn as_str(self) -> &'static str {
        match self {
            Kind::Charge => "CHARGE",
            Kind::Payment => "PAYMENT",
            Kind::Refund => "REFUND",
            Kind::ChargeFailed => "CHARGE_FAILED",
            Kind::PaymentFailed => "PAYMENT_FAILED",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

platform::text_column!(Kind);

/// One history entry (as the API shows it, and as its row reads).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema, FromQueryResult)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// The id of the wallet event that made this entry.
    pub id: EventId,
    pub kind: Kind,
    /// Always positive; `kind` says which way it moved (or would have).
    pub amount: Won,
    /// The balance after the change; none for a refusal, which changed nothing.
    pub balance_after: Option<Won>,
    pub reservation_id: Option<ReservationId>,
    /// Why the wallet refused (`BALANCE_LIMIT`, `INSUFFICIENT_BALANCE`, `DEADLINE_PASSED`); none
    /// for a change.
    pub reason: Option<String>,
    /// When the wallet made the change.
    pub at: DateTime<Utc>,
    #[serde(skip)]
    pub user_id: UserId,
}

/// Appends the entries of a batch, each at its position in the batch (from 1), with their
/// inbox rows (`claims`), in one statement; the positions appended (a copy of an entry changes
/// nothing, and counts). An event applied before fails the whole statement on the inbox's key.
pub async fn append_each(
    db: &impl ConnectionTrait,
    entries: &[(i64, Entry)],
    claims: Option<&InboxClaims<'_>>,
) -> Result<Vec<i64>, DbErr> {
    let each = |f: fn(&Entry) -> uuid::Uuid| entries.iter().map(|(_, e)| f(e)).collect::<Vec<_>>();
    let input = Input::at(entries.iter().map(|(i, _)| *i).collect())
        .column("id", "uuid", each(|e| e.id.0))
        .column("user_id", "uuid", each(|e| e.user_id.0))
        .column("kind", "text", entries.iter().map(|(_, e)| e.kind.as_str().to_owned()).collect())
        .column("amount", "bigint", entries.iter().map(|(_, e)| e.amount.0).collect())
        // An array parameter cannot hold a NULL here (sea-query binds it as Vec<T>): what is
        // missing travels as a value no entry has (a balance of -1, the nil UUID, ''), read back
        // as NULL.
        .column(
            "balance_after",
            "bigint",
            entries.iter().map(|(_, e)| e.balance_after.map_or(-1, |b| b.0)).collect(),
        )
        .column("reservation_id", "uuid", each(|e| e.reservation_id.map_or(uuid::Uuid::nil(), |r| r.0)))
        .column("reason", "text", entries.iter().map(|(_, e)| e.reason.clone().unwrap_or_default()).collect())
        .column("at", "timestamptz", entries.iter().map(|(_, e)| e.at).collect());
    BatchWrite::over(input)
        .step(
            "appended",
            "INSERT INTO wallet_history.entries (id, user_id, kind, amount, balance_after, reservation_id, reason, at)
             SELECT id, user_id, kind, amount, NULLIF(balance_after, -1),
                    NULLIF(reservation_id, '00000000-0000-0000-0000-000000000000'), NULLIF(reason, ''), at
             FROM input ORDER BY i
             ON CONFLICT (id) DO NOTHING",
        )
        .claims(claims)
        .run(db)
        .await
}

/// The user's entries, newest first, older than the cursor.
pub async fn page(
    db: &impl ConnectionTrait,
    user: UserId,
    before: Option<uuid::Uuid>,
    limit: u64,
) -> Result<Vec<Entry>, DbErr> {
    Entry::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT id, user_id, kind, amount, balance_after, reservation_id, reason, at FROM wallet_history.entries
         WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
        [
            user.into(),
            platform::paging::before(before).into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    ))
    .all(db)
    .await
}
