//! `growth [seconds per step=10]`: how the cost of a hold grows with what the tables already
//! hold. The same holds step (`LOAD_CONCURRENCY` users, 64, closed loop, one seat each on the
//! scenario's own schedules) runs with 10,000, 100,000 and 1,000,000 ended reservations in the
//! tables, then with 1,000 and 100,000 more schedules (50 seats each) beside them; each step
//! prints holds/s, p99, the CPU per hold by program, and the statements Postgres ran per hold
//! (`pg_stat_statements`, which `scripts/dev-stack` preloads): the same statements, as often,
//! whatever the size.
//!
//! The rows are written straight into the services' tables, as years of sales would have left
//! them: reservations that ended without a sale (EXPIRED, CANCELLED, FAILED: most holds of a
//! sale end so, and they claim no seat and no money) spread over the scenario's schedules, and
//! schedules announced in the catalog with their seats in the inventory and the reservation
//! service's projection. `LOAD_GROWTH_RESERVATIONS` and `LOAD_GROWTH_SCHEDULES` (comma-separated
//! totals) change the sizes.

use super::{UNLIMITED, cancel_all, start, step};
use contracts::ScheduleId;
use futures::StreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::{sync::Mutex, time::Instant};

/// Users of each step, in a closed loop.
const USERS: usize = 64;

/// Rows written by one statement while filling the tables.
const CHUNK: u64 = 100_000;

pub async fn growth(seconds: u64) {
    let sys = start(
        &[("TICKETING_DEV_SKIP_QUEUE_TOKEN", "true"), UNLIMITED[0], UNLIMITED[1], UNLIMITED[2]],
        &[("TICKETING_DATABASE_MAX_CONNECTIONS", "40")],
    )
    .await;
    let Some(db) = sys.database().cloned() else {
        println!("growth: fills the tables of a system it starts itself (unset LOAD_BASE_URL)");
        return;
    };
    if let Err(e) = statements_ready(&db).await {
        println!(
            "growth: pg_stat_statements is not loaded ({e}); `scripts/dev-stack` preloads it (a restart)"
        );
        return;
    }
    let sizes = |name: &str, default: &[u64]| -> Vec<u64> {
        std::env::var(name)
            .ok()
            .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
            .unwrap_or_else(|| default.to_vec())
    };
    let reservations = sizes("LOAD_GROWTH_RESERVATIONS", &[10_000, 100_000, 1_000_000]);
    let schedules = sizes("LOAD_GROWTH_SCHEDULES", &[1_000, 100_000]);
    let users = std::env::var("LOAD_CONCURRENCY").ok().and_then(|v| v.parse().ok()).unwrap_or(USERS);

    // Seats for every step: a step at 3,000 holds/s for 11 s takes 33,000.
    let steps = reservations.len() + schedules.len();
    let needed = (steps * (seconds as usize + 1) * 4_000).div_ceil(50);
    println!(
        "growth: holds by {users} users for {seconds} s per step (after 1 s of warm-up), one seat each \
         on {needed} schedules of 50; ended reservations {reservations:?}, then schedules {schedules:?} \
         more in the tables"
    );
    let api = &sys.api;
    let own: Vec<ScheduleId> = futures::stream::iter(0..needed)
        .map(|_| async { api.schedule(50, 1_000).await.unwrap().1 })
        .buffer_unordered(16)
        .collect()
        .await;
    let supply = super::SeatSupply::across(&own);
    let held = Mutex::new(Vec::new());

    let mut filled = 0;
    for &target in &reservations {
        let took = Instant::now();
        while filled < target {
            let n = (target - filled).min(CHUNK);
            add_ended_reservations(&db, &own, n).await;
            filled += n;
        }
        settle(&db).await;
        println!(
            "with {filled} ended reservations in the tables (written in {:.1} s):",
            took.elapsed().as_secs_f64()
        );
        measured(&db, || step(api, &supply, users, None, seconds, false, &held)).await;
    }
    let mut added = 0;
    for &target in &schedules {
        let took = Instant::now();
        while added < target {
            let n = (target - added).min(CHUNK / 50);
            add_schedules(&db, n).await;
            added += n;
        }
        settle(&db).await;
        println!(
            "with {} schedules in the tables ({added} more; written in {:.1} s):",
            added + own.len() as u64,
            took.elapsed().as_secs_f64()
        );
        measured(&db, || step(api, &supply, users, None, seconds, false, &held)).await;
    }
    cancel_all(api, held.into_inner().unwrap()).await;
    sys.check().await;
}

/// Whether `pg_stat_statements` counts this database's statements.
async fn statements_ready(db: &DatabaseConnection) -> Result<(), sea_orm::DbErr> {
    db.execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements").await?;
    db.execute_unprepared("SELECT pg_stat_statements_reset()").await?;
    Ok(())
}

/// Runs `run` (a step) with the statement counts reset before it, then prints the statements
/// Postgres ran for this database per hold made, the most frequent first.
async fn measured<F, Fut>(db: &DatabaseConnection, run: F)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let before = holds(db).await;
    db.execute_unprepared("SELECT pg_stat_statements_reset()").await.unwrap();
    run().await;
    let made = (holds(db).await - before).max(1) as f64;
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT s.calls, s.total_exec_time, s.rows, regexp_replace(left(s.query, 400), '\\s+', ' ', 'g') AS query
             FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
             WHERE d.datname = current_database() AND s.calls > 0
             ORDER BY s.calls DESC LIMIT 12",
        ))
        .await
        .unwrap();
    println!("  statements per hold ({made:.0} holds; calls, mean ms, rows per call):");
    for r in rows {
        let calls: i64 = r.try_get("", "calls").unwrap();
        let total: f64 = r.try_get("", "total_exec_time").unwrap();
        let returned: i64 = r.try_get("", "rows").unwrap();
        let query: String = r.try_get("", "query").unwrap();
        println!(
            "    {:>7.3} x {:>6.3} ms {:>6.1} rows  {}",
            calls as f64 / made,
            total / calls as f64,
            returned as f64 / calls as f64,
            summary(&query)
        );
    }
}

/// A statement in a line: its start, the steps it names (`name AS (..)`), and the tables.
fn summary(query: &str) -> String {
    let mut steps = Vec::new();
    for marker in [" AS (", " AS MATERIALIZED ("] {
        for (at, _) in query.match_indices(marker) {
            let before = query[..at].trim_end();
            let name = before.rsplit(|c: char| !(c.is_alphanumeric() || c == '_')).next().unwrap_or("");
            steps.push((at, name));
        }
    }
    steps.sort();
    let steps: Vec<&str> = steps.into_iter().map(|(_, name)| name).collect();
    let tables: std::collections::BTreeSet<&str> = query
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| {
            ["reservation.", "seat.", "wallet.", "concert.", "external_data.", "wallet_history."]
                .iter()
                .any(|s| w.starts_with(s))
        })
        .collect();
    let tables: Vec<&str> = tables.into_iter().collect();
    if steps.is_empty() {
        let start: String = query.chars().take(50).collect();
        format!("{start}… [{}]", tables.join(" "))
    } else {
        format!("WITH {} [{}]", steps.join(", "), tables.join(" "))
    }
}

/// Reservations HELD or beyond: how many holds the system made.
async fn holds(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM reservation.reservations WHERE amount IS NOT NULL",
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get("", "n").unwrap()
}

/// Writes `n` reservations that ended without a sale, of new users, across `schedules`.
async fn add_ended_reservations(db: &DatabaseConnection, schedules: &[ScheduleId], n: u64) {
    let ids: Vec<uuid::Uuid> = schedules.iter().map(|s| s.0).collect();
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO reservation.reservations
           (id, user_id, schedule_id, concert_id, seat_nos, status, amount, held_until, failure_reason,
            queue_token, created_at, updated_at, timeline)
         SELECT gen_random_uuid(), gen_random_uuid(), s.schedule_id, s.concert_id, ARRAY[1 + g % 50],
                e.status, 1000, now() - interval '1 day', e.reason, '', now() - interval '1 day',
                now() - interval '1 day',
                jsonb_build_array(jsonb_build_object('type', 'reservation.requested', 'at', now() - interval '1 day'),
                                  jsonb_build_object('type', e.kind, 'at', now() - interval '1 day'))
         FROM generate_series(1, $2::bigint) g
         JOIN reservation.schedules s ON s.schedule_id = ($1::uuid[])[1 + g % cardinality($1::uuid[])]
         CROSS JOIN LATERAL (SELECT (ARRAY['EXPIRED', 'CANCELLED', 'FAILED'])[1 + g % 3] AS status,
                                    (ARRAY['EXPIRED', 'CANCELLED', 'SEAT_UNAVAILABLE'])[1 + g % 3] AS reason,
                                    (ARRAY['reservation.expired', 'reservation.cancelled', 'reservation.failed'])[1 + g % 3] AS kind) e",
        [ids.into(), (n as i64).into()],
    ))
    .await
    .unwrap();
}

/// Writes `n` schedules of 50 seats, a concert for every hundred, as the catalog, the inventory
/// and the reservation service's projection hold them.
async fn add_schedules(db: &DatabaseConnection, n: u64) {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "WITH new AS MATERIALIZED (
               SELECT gen_random_uuid() AS schedule_id, g FROM generate_series(1, $1::bigint) g),
             concerts AS MATERIALIZED (
               SELECT gen_random_uuid() AS concert_id, c FROM generate_series(0, ($1::bigint - 1) / 100) c),
             pairs AS MATERIALIZED (
               SELECT new.schedule_id, concerts.concert_id FROM new JOIN concerts ON concerts.c = (new.g - 1) / 100),
             c1 AS (INSERT INTO concert.concerts (id, name, host)
                    SELECT concert_id, 'Earlier concert', 'Earlier host' FROM concerts),
             c2 AS (INSERT INTO concert.schedules (id, concert_id, starts_at, seat_count)
                    SELECT schedule_id, concert_id, now() - interval '30 days', 50 FROM pairs),
             s1 AS (INSERT INTO seat.schedules (schedule_id, concert_id, seat_count)
                    SELECT schedule_id, concert_id, 50 FROM pairs),
             r1 AS (INSERT INTO reservation.schedules (schedule_id, concert_id, seat_nos)
                    SELECT schedule_id, concert_id, ARRAY(SELECT generate_series(1, 50)) FROM pairs)
             SELECT array_agg(schedule_id) AS ids FROM pairs",
            [(n as i64).into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let ids: Vec<uuid::Uuid> = row.try_get("", "ids").unwrap();
    // The seats reference their schedule, so they follow it in a statement of their own.
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "INSERT INTO seat.seats (schedule_id, seat_no, price)
         SELECT s, n, 1000 FROM unnest($1::uuid[]) s CROSS JOIN generate_series(1, 50) n",
        [ids.into()],
    ))
    .await
    .unwrap();
}

/// Vacuums and analyzes what was written, as autovacuum would in time.
async fn settle(db: &DatabaseConnection) {
    for table in [
        "reservation.reservations",
        "reservation.schedules",
        "seat.seats",
        "seat.schedules",
        "concert.schedules",
    ] {
        db.execute_unprepared(&format!("VACUUM ANALYZE {table}")).await.unwrap();
    }
}
