//! The invariants and the SQL that finds their violations: each check is one statement, read
//! in the audit's one snapshot.
//!
//! Every statement answers the rows `(id, detail, violations)`: up to ten examples, ordered, and
//! in each the number of violations in all (`count(*) OVER ()`, counted before the `LIMIT`). They
//! all take the same parameters, in seconds: `$1` the grace, `$2` the request timeout, `$3` the
//! pay grace and `$4` the hold. A state that a saga passes through on its way (a reservation
//! CONFIRMED whose seats are not sold yet) is a violation only once it has lasted longer than
//! the grace; a state no saga ever passes through is a violation at once ("strict").

use sea_orm::FromQueryResult;
use std::fmt;

/// One row of a check's statement: an example, and how many violations there are in all.
#[derive(Debug, FromQueryResult)]
pub(crate) struct Finding {
    pub id: String,
    pub detail: String,
    pub violations: i64,
}

/// One invariant of the live system (DESIGN §10), checked by one row of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Invariant {
    /// With a settle time: the system went quiet within it.
    Settled,
    /// No seat is in more than one CONFIRMED reservation.
    SeatSoldOnce,
    /// Every SOLD seat is sold to a CONFIRMED reservation that claims it.
    SoldSeatOwned,
    /// Every CONFIRMED reservation's seats are SOLD to it.
    ConfirmedSeatsSold,
    /// No seat is HELD for a reservation that ended, does not exist or does not claim it.
    NoOrphanHold,
    /// Every wallet's balance is its charges − payments + refunds.
    WalletBalance,
    /// Money is kept only for CONFIRMED reservations, and each is paid its amount.
    MoneyForConfirmed,
    /// Every wallet's history ends at its balance.
    HistoryEndsAtBalance,
    /// No reservation is still open past its deadline plus the grace.
    DeadlinesKept,
    /// No outbox row is older than the grace.
    OutboxesDrained,
    /// The dead-letter stream is empty.
    NoDeadLetters,
}

impl Invariant {
    /// Every invariant, in the report's order.
    pub const ALL: [Invariant; 11] = [
        Invariant::Settled,
        Invariant::SeatSoldOnce,
        Invariant::SoldSeatOwned,
        Invariant::ConfirmedSeatsSold,
        Invariant::NoOrphanHold,
        Invariant::WalletBalance,
        Invariant::MoneyForConfirmed,
        Invariant::HistoryEndsAtBalance,
        Invariant::DeadlinesKept,
        Invariant::OutboxesDrained,
        Invariant::NoDeadLetters,
    ];

    /// The stable name of its row in the report (what scripts and tests match on).
    pub fn name(self) -> &'static str {
        match self {
            Invariant::Settled => "settled",
            Invariant::SeatSoldOnce => "seat-sold-once",
            Invariant::SoldSeatOwned => "sold-seat-owned",
            Invariant::ConfirmedSeatsSold => "confirmed-seats-sold",
            Invariant::NoOrphanHold => "no-orphan-hold",
            Invariant::WalletBalance => "wallet-balance",
            Invariant::MoneyForConfirmed => "money-for-confirmed",
            Invariant::HistoryEndsAtBalance => "history-ends-at-balance",
            Invariant::DeadlinesKept => "deadlines-kept",
            Invariant::OutboxesDrained => "outboxes-drained",
            Invariant::NoDeadLetters => "no-dead-letters",
        }
    }

    /// What one of its violations is, in words.
    pub fn violation(self) -> &'static str {
        match self {
            Invariant::Settled => "still busy when the settle time ran out",
            Invariant::SeatSoldOnce => "a seat in more than one CONFIRMED reservation",
            Invariant::SoldSeatOwned => {
                "a SOLD seat not sold to a CONFIRMED reservation (or one refunded when its schedule was \
                 cancelled) that claims it"
            }
            Invariant::ConfirmedSeatsSold => "a CONFIRMED reservation whose seats are not all SOLD to it",
            Invariant::NoOrphanHold => {
                "a seat HELD for a reservation that ended, does not exist or does not claim it"
            }
            Invariant::WalletBalance => "a wallet whose balance is not charges - payments + refunds",
            Invariant::MoneyForConfirmed => {
                "money kept for a reservation that is not CONFIRMED, or a CONFIRMED one not paid its amount"
            }
            Invariant::HistoryEndsAtBalance => "a wallet whose history does not end at its balance",
            Invariant::DeadlinesKept => "a reservation still open past its deadline plus grace",
            Invariant::OutboxesDrained => "an outbox row older than the grace",
            Invariant::NoDeadLetters => "a dead letter waiting for an operator",
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The checks that are one fixed statement each, in the report's order. The outboxes' check is
/// built from the schemas that have one ([`outboxes_drained`]); the dead letters are read from
/// JetStream.
pub(crate) const SQL_CHECKS: [(Invariant, &str); 8] = [
    (Invariant::SeatSoldOnce, SEAT_SOLD_ONCE),
    (Invariant::SoldSeatOwned, SOLD_SEAT_OWNED),
    (Invariant::ConfirmedSeatsSold, CONFIRMED_SEATS_SOLD),
    (Invariant::NoOrphanHold, NO_ORPHAN_HOLD),
    (Invariant::WalletBalance, WALLET_BALANCE),
    (Invariant::MoneyForConfirmed, MONEY_FOR_CONFIRMED),
    (Invariant::HistoryEndsAtBalance, HISTORY_ENDS_AT_BALANCE),
    (Invariant::DeadlinesKept, DEADLINES_KEPT),
];

/// Strict: a reservation becomes CONFIRMED only after its seats were held for it alone, so two
/// CONFIRMED reservations of one seat are a double sale however young.
const SEAT_SOLD_ONCE: &str = "
SELECT r.schedule_id || '#' || n AS id,
       count(DISTINCT r.id) || ' CONFIRMED reservations: ' || string_agg(DISTINCT r.id::text, ', ') AS detail,
       count(*) OVER () AS violations
FROM reservation.reservations r
CROSS JOIN LATERAL unnest(r.seat_nos) AS n
WHERE r.status = 'CONFIRMED'
GROUP BY r.schedule_id, n
HAVING count(DISTINCT r.id) > 1
ORDER BY id
LIMIT 10";

/// Strict: the seat service sells a seat only on ReservationCompleted, which the reservation
/// service announces after its CONFIRMED commit. That no second CONFIRMED reservation claims
/// the seat ("exactly one") is [`SEAT_SOLD_ONCE`]'s to say, so a double sale is one row.
const SOLD_SEAT_OWNED: &str = "
SELECT s.schedule_id || '#' || s.seat_no AS id,
       'SOLD to ' || coalesce(s.reservation_id::text, 'no reservation') || CASE
           WHEN r.id IS NULL THEN ', which does not exist'
           WHEN r.status <> 'CONFIRMED' THEN ', which is ' || r.status
           ELSE ', which does not claim it' END AS detail,
       count(*) OVER () AS violations
FROM seat.seats s
LEFT JOIN reservation.reservations r ON r.id = s.reservation_id
WHERE s.status = 'SOLD'
  AND (r.id IS NULL
       OR (r.status <> 'CONFIRMED'
           AND NOT (r.status = 'CANCELLED' AND r.failure_reason = 'SCHEDULE_CANCELLED'))
       OR r.schedule_id <> s.schedule_id OR NOT s.seat_no = ANY (r.seat_nos))
ORDER BY id
LIMIT 10";

/// In flight while the reservation was CONFIRMED less than the grace ago: its
/// ReservationCompleted may still be on its way to the seat service.
const CONFIRMED_SEATS_SOLD: &str = "
SELECT r.id::text AS id,
       'seats not SOLD to it: ' || string_agg(n || ' ' || CASE
           WHEN s.seat_no IS NULL THEN 'does not exist'
           WHEN s.status = 'AVAILABLE' THEN 'is AVAILABLE'
           WHEN s.reservation_id = r.id THEN 'is ' || s.status || ' for it'
           ELSE 'is ' || s.status || ' for ' || s.reservation_id END, ', ' ORDER BY n) AS detail,
       count(*) OVER () AS violations
FROM reservation.reservations r
CROSS JOIN LATERAL unnest(r.seat_nos) AS n
LEFT JOIN seat.seats s ON s.schedule_id = r.schedule_id AND s.seat_no = n
WHERE r.status = 'CONFIRMED'
  AND r.updated_at < now() - make_interval(secs => $1)
  AND (s.status IS DISTINCT FROM 'SOLD' OR s.reservation_id IS DISTINCT FROM r.id)
GROUP BY r.id
ORDER BY id
LIMIT 10";

/// In flight while the reservation ended less than the grace ago (its ReservationFailed is on
/// its way), or while the hold itself is younger than the grace: a hold that lands after its
/// reservation ended (a slow seat service, a request that timed out) is released once the
/// reservation sees the late SeatReserved. A seat keeps no time it was held, only when the hold
/// ends, which is the hold time (`$4`) after. Strict for a reservation that does not exist or
/// does not claim the seat: it is written before the request that makes the hold.
const NO_ORPHAN_HOLD: &str = "
SELECT s.schedule_id || '#' || s.seat_no AS id,
       'HELD for ' || s.reservation_id || CASE
           WHEN r.id IS NULL THEN ', which does not exist'
           WHEN r.schedule_id <> s.schedule_id OR NOT s.seat_no = ANY (r.seat_nos) THEN ', which does not claim it'
           ELSE ', which is ' || r.status || ' since ' || to_char(r.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || 'Z'
           END AS detail,
       count(*) OVER () AS violations
FROM seat.seats s
LEFT JOIN reservation.reservations r ON r.id = s.reservation_id
WHERE s.status = 'HELD'
  AND (r.id IS NULL
       OR r.schedule_id <> s.schedule_id OR NOT s.seat_no = ANY (r.seat_nos)
       OR (r.status IN ('FAILED', 'EXPIRED', 'CANCELLED')
           AND r.updated_at < now() - make_interval(secs => $1)
           AND (s.held_until IS NULL
                OR s.held_until - make_interval(secs => $4) < now() - make_interval(secs => $1))))
ORDER BY id
LIMIT 10";

/// Strict: the wallet changes a balance in the same transaction (or statement) as the charge,
/// payment or refund that explains it. A refund marks its payment REFUNDED, so a REFUNDED
/// payment was taken and given back; a VOIDED one (a refund that came first) never took money.
/// A user with no wallet row holds 0.
const WALLET_BALANCE: &str = "
WITH charged AS (
    SELECT user_id, sum(amount) AS charges FROM wallet.charges GROUP BY user_id
), paid AS (
    SELECT user_id,
           coalesce(sum(amount) FILTER (WHERE status IN ('COMPLETED', 'REFUNDED')), 0) AS payments,
           coalesce(sum(amount) FILTER (WHERE status = 'REFUNDED'), 0) AS refunds
    FROM wallet.payments GROUP BY user_id
), books AS (
    SELECT user_id, coalesce(w.balance, 0) AS balance, coalesce(c.charges, 0) AS charges,
           coalesce(p.payments, 0) AS payments, coalesce(p.refunds, 0) AS refunds
    FROM wallet.wallets w
    FULL JOIN charged c USING (user_id)
    FULL JOIN paid p USING (user_id)
)
SELECT user_id::text AS id,
       'balance ' || balance || ', but charges ' || charges || ' - payments ' || payments
           || ' + refunds ' || refunds || ' = ' || (charges - payments + refunds) AS detail,
       count(*) OVER () AS violations
FROM books
WHERE balance <> charges - payments + refunds
ORDER BY id
LIMIT 10";

/// Money is kept by a COMPLETED wallet payment or a CAPTURED card payment. Kept for a
/// reservation that is not CONFIRMED, it is in flight while the payment changed less than the
/// grace ago (its completion is on its way), while the reservation is still PAYING (the
/// deadlines' check watches that), or while the reservation changed less than the grace ago (it
/// just ended, and its refund request is on its way). Strict for a CONFIRMED reservation: it is
/// confirmed only by a payment's completion, announced after that payment's commit, and no refund
/// is ever asked for a CONFIRMED one; it keeps exactly one payment, of its amount (two would be a
/// double charge).
const MONEY_FOR_CONFIRMED: &str = "
WITH kept AS (
    SELECT reservation_id, id, amount, created_at AS since, 'wallet payment' AS what
    FROM wallet.payments WHERE status = 'COMPLETED'
    UNION ALL
    SELECT reservation_id, id, amount, updated_at, 'card payment'
    FROM payment.payments WHERE status = 'CAPTURED'
)
SELECT id, detail, count(*) OVER () AS violations
FROM (
    SELECT p.reservation_id::text AS id,
           p.what || ' ' || p.id || ' of ' || p.amount || ' kept, but the reservation '
               || coalesce('is ' || r.status, 'does not exist') AS detail
    FROM kept p
    LEFT JOIN reservation.reservations r ON r.id = p.reservation_id
    WHERE r.status IS DISTINCT FROM 'CONFIRMED'
      AND r.status IS DISTINCT FROM 'PAYING'
      AND p.since < now() - make_interval(secs => $1)
      AND (r.id IS NULL OR r.updated_at < now() - make_interval(secs => $1))
    UNION ALL
    SELECT r.id::text,
           'CONFIRMED for ' || coalesce(r.amount::text, 'no amount') || ', but '
               || CASE count(p.id) WHEN 0 THEN 'no payment is kept'
                  ELSE count(p.id) || ' payment(s) keep ' || sum(p.amount) END
    FROM reservation.reservations r
    LEFT JOIN kept p ON p.reservation_id = r.id
    WHERE r.status = 'CONFIRMED'
    GROUP BY r.id, r.amount
    HAVING count(p.id) <> 1 OR sum(p.amount) IS DISTINCT FROM r.amount
) v
ORDER BY id
LIMIT 10";

/// In flight while the wallet changed less than the grace ago (its event is on its way to the
/// history). The history's last change is its newest event id (UUIDv7), the order it pages in;
/// refusals (no balance) moved nothing.
const HISTORY_ENDS_AT_BALANCE: &str = "
SELECT w.user_id::text AS id,
       'balance ' || w.balance || ', history ends at ' || coalesce(h.balance_after::text, 'nothing') AS detail,
       count(*) OVER () AS violations
FROM wallet.wallets w
LEFT JOIN LATERAL (
    SELECT e.balance_after FROM wallet_history.entries e
    WHERE e.user_id = w.user_id AND e.balance_after IS NOT NULL ORDER BY e.id DESC LIMIT 1
) h ON true
WHERE h.balance_after IS DISTINCT FROM w.balance
  AND w.updated_at < now() - make_interval(secs => $1)
ORDER BY id
LIMIT 10";

/// Each open status's deadline is the one the reservation's sweeper keeps: a request's creation
/// plus the request timeout, a hold's end, a payment's hold end (`payBy`) plus the pay grace.
/// The sweeper reads `coalesce(held_until, created_at)`, so a hold without an end is due at once.
const DEADLINES_KEPT: &str = "
SELECT id::text AS id,
       status || ' past its deadline by ' || floor(extract(epoch FROM now() - due))::bigint || ' s' AS detail,
       count(*) OVER () AS violations
FROM (
    SELECT id, status, CASE status
        WHEN 'PENDING' THEN created_at + make_interval(secs => $2)
        WHEN 'HELD' THEN coalesce(held_until, created_at)
        ELSE coalesce(held_until, created_at) + make_interval(secs => $3) END AS due
    FROM reservation.reservations
    WHERE status IN ('PENDING', 'HELD', 'PAYING')
) r
WHERE due + make_interval(secs => $1) < now()
ORDER BY id
LIMIT 10";

/// The schemas that have an outbox: every service schema gets one from its first migration
/// (`migrations::service_schema_sql`), so a service added later is audited without a change here.
pub(crate) const OUTBOX_SCHEMAS: &str = "
SELECT table_schema AS schema FROM information_schema.tables
WHERE table_name = 'outbox' AND table_type = 'BASE TABLE'
ORDER BY schema";

/// The rows waiting in each outbox, in one statement.
pub(crate) fn outbox_backlog(schemas: &[String]) -> Option<String> {
    let parts: Vec<String> = schemas
        .iter()
        .map(|s| format!("SELECT {} AS schema, count(*) AS n FROM {}.outbox", literal(s), ident(s)))
        .collect();
    (!parts.is_empty()).then(|| parts.join("\nUNION ALL\n"))
}

/// In flight while younger than the grace: the relay publishes a row within moments of its
/// commit, so an older one means a relay that is not running or cannot publish.
pub(crate) fn outboxes_drained(schemas: &[String]) -> Option<String> {
    let parts: Vec<String> = schemas
        .iter()
        .map(|s| {
            format!(
                "SELECT {name} || '#' || seq AS id,
                        subject || ', ' || floor(extract(epoch FROM now() - created_at))::bigint || ' s old' AS detail,
                        created_at
                 FROM {schema}.outbox
                 WHERE created_at < now() - make_interval(secs => $1)",
                name = literal(&format!("{s}.outbox")),
                schema = ident(s),
            )
        })
        .collect();
    (!parts.is_empty()).then(|| {
        format!(
            "SELECT id, detail, count(*) OVER () AS violations
             FROM ({}) o
             ORDER BY created_at, id
             LIMIT 10",
            parts.join("\n UNION ALL\n")
        )
    })
}

/// `name` as an SQL identifier. Schema names come from the catalog, not from a user, but a
/// quoted name is right whatever it holds.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The reservations by status, for the report's context.
pub(crate) const RESERVATIONS_BY_STATUS: &str = "
SELECT status, count(*) AS n FROM reservation.reservations GROUP BY status ORDER BY status";

/// The open reservations (what keeps the system from being quiet): up to ten, oldest first,
/// with how many there are.
pub(crate) const OPEN_RESERVATIONS: &str = "
SELECT id::text AS id, status AS detail, count(*) OVER () AS violations
FROM reservation.reservations
WHERE status IN ('PENDING', 'HELD', 'PAYING')
ORDER BY created_at, id
LIMIT 10";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_stable() {
        let names: std::collections::HashSet<_> = Invariant::ALL.iter().map(|i| i.name()).collect();
        assert_eq!(names.len(), Invariant::ALL.len());
        for (inv, _) in SQL_CHECKS {
            assert!(Invariant::ALL.contains(&inv));
        }
    }

    #[test]
    fn schema_names_are_quoted() {
        assert_eq!(ident("wallet_history"), "\"wallet_history\"");
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
