//! The invariants of DESIGN §10, checked after every scenario by this one checker. It first
//! waits until the system is quiet (outboxes empty, every consumer caught up, no reservation
//! still open), then reads every service's tables (a checker may; services may not).

use messaging::{Bus, definitions};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::time::Duration;

/// What a scenario expects of the dead-letter stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeadLetters {
    None,
    Expected,
}

async fn count(db: &DatabaseConnection, sql: &str) -> anyhow::Result<i64> {
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    Ok(row.map(|r| r.try_get::<i64>("", "n")).transpose()?.unwrap_or(0))
}

async fn rows(db: &DatabaseConnection, sql: &str) -> anyhow::Result<Vec<String>> {
    let rows = db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql)).await?;
    Ok(rows.iter().map(|r| r.try_get::<String>("", "v").unwrap_or_else(|e| e.to_string())).collect())
}

async fn consumers_idle(bus: &Bus) -> anyhow::Result<bool> {
    for spec in definitions::declared_consumers()? {
        let consumer: Result<async_nats::jetstream::consumer::PullConsumer, _> =
            bus.js.get_consumer_from_stream(&spec.name(), bus.ns.stream(spec.stream)).await;
        let Ok(mut consumer) = consumer else { continue };
        let info = consumer.info().await?;
        if info.num_pending > 0 || info.num_ack_pending > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Waits until nothing is in flight: outboxes empty, consumers caught up and no reservation
/// PENDING/HELD/PAYING, twice in a row.
pub async fn quiesce(db: &DatabaseConnection, bus: &Bus, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut quiet_polls = 0;
    loop {
        let outbox = count(
            db,
            "SELECT (SELECT count(*) FROM concert.outbox) + (SELECT count(*) FROM seat.outbox)
                  + (SELECT count(*) FROM reservation.outbox) + (SELECT count(*) FROM wallet.outbox) AS n",
        )
        .await?;
        let open =
            count(db, "SELECT count(*) AS n FROM reservation.reservations WHERE status IN ('PENDING', 'HELD', 'PAYING')")
                .await?;
        let quiet = outbox == 0 && open == 0 && consumers_idle(bus).await?;
        quiet_polls = if quiet { quiet_polls + 1 } else { 0 };
        if quiet_polls >= 2 {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the system did not settle within {timeout:?}: {outbox} outbox rows, {open} open reservations"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks every invariant; the error lists each violation.
pub async fn check(db: &DatabaseConnection, bus: &Bus, dead_letters: DeadLetters) -> anyhow::Result<()> {
    quiesce(db, bus, Duration::from_secs(60)).await?;
    let mut violations = Vec::new();
    let checks: [(&str, &str); 7] = [
        (
            "a SOLD seat without exactly one CONFIRMED reservation that owns it",
            "SELECT s.schedule_id || '#' || s.seat_no AS v FROM seat.seats s
             WHERE s.status = 'SOLD' AND (
                 (SELECT count(*) FROM reservation.reservations r
                  WHERE r.status = 'CONFIRMED' AND r.schedule_id = s.schedule_id AND s.seat_no = ANY(r.seat_nos)) <> 1
              OR NOT EXISTS (SELECT 1 FROM reservation.reservations r WHERE r.id = s.reservation_id AND r.status = 'CONFIRMED'))",
        ),
        (
            "a CONFIRMED reservation whose seat is not SOLD to it",
            "SELECT r.id || '#' || n AS v FROM reservation.reservations r, unnest(r.seat_nos) AS n
             WHERE r.status = 'CONFIRMED' AND NOT EXISTS (
                 SELECT 1 FROM seat.seats s WHERE s.schedule_id = r.schedule_id AND s.seat_no = n
                   AND s.status = 'SOLD' AND s.reservation_id = r.id)",
        ),
        (
            "a seat still HELD after every reservation ended",
            "SELECT schedule_id || '#' || seat_no AS v FROM seat.seats WHERE status = 'HELD'",
        ),
        (
            "a wallet whose balance is not charges - payments + refunds",
            "SELECT w.user_id || ': ' || w.balance || ' <> ' ||
                    (COALESCE((SELECT sum(amount) FROM wallet.charges c WHERE c.user_id = w.user_id), 0)
                   - COALESCE((SELECT sum(amount) FROM wallet.payments p WHERE p.user_id = w.user_id AND p.status = 'COMPLETED'), 0)) AS v
             FROM wallet.wallets w
             WHERE w.balance <> COALESCE((SELECT sum(amount) FROM wallet.charges c WHERE c.user_id = w.user_id), 0)
                              - COALESCE((SELECT sum(amount) FROM wallet.payments p WHERE p.user_id = w.user_id AND p.status = 'COMPLETED'), 0)",
        ),
        (
            "money kept for a reservation that is not CONFIRMED, or a CONFIRMED one not paid in full",
            "SELECT coalesce(p.reservation_id, r.id)::text AS v
             FROM (SELECT * FROM wallet.payments WHERE status = 'COMPLETED') p
             FULL JOIN (SELECT * FROM reservation.reservations WHERE status = 'CONFIRMED') r ON r.id = p.reservation_id
             WHERE p.reservation_id IS NULL OR r.id IS NULL OR p.amount <> r.amount",
        ),
        (
            "a wallet whose history does not end at its balance",
            "SELECT w.user_id || ': history ends at ' || COALESCE(h.balance_after::text, 'nothing') || ', wallet holds ' || w.balance AS v
             FROM wallet.wallets w
             LEFT JOIN LATERAL (SELECT balance_after FROM wallet_history.entries e
                                WHERE e.user_id = w.user_id ORDER BY e.id DESC LIMIT 1) h ON true
             WHERE h.balance_after IS DISTINCT FROM w.balance",
        ),
        (
            "a reservation left open",
            "SELECT id || ' ' || status AS v FROM reservation.reservations WHERE status IN ('PENDING', 'HELD', 'PAYING')",
        ),
    ];
    for (what, sql) in checks {
        for v in rows(db, sql).await? {
            violations.push(format!("{what}: {v}"));
        }
    }
    let dlq = messaging::dlq::count(bus).await?;
    if dead_letters == DeadLetters::None && dlq > 0 {
        let letters = messaging::dlq::list(bus, 5).await?;
        violations.push(format!("{dlq} dead letters, e.g. {letters:?}"));
    }
    anyhow::ensure!(violations.is_empty(), "invariants violated:\n  {}", violations.join("\n  "));
    Ok(())
}
