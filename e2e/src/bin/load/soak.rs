//! `soak [minutes=60]`: the open-loop 1,000 holds/s for an hour, sagas included, with a line a
//! minute: the minute's rate and latency, and what the tables hold (sizes, dead rows, vacuums,
//! the outbox backlog, the inbox and idempotency rows kept for their retention). It ends with
//! the p99 of the last five minutes against the first five after the warm-up minute.
//!
//! Every attempt is a new user's reservation of one seat, started on schedule whatever the
//! earlier ones are doing: one in `LOAD_PAY_EVERY` (10) tops up its wallet and pays (CONFIRMED),
//! one in `LOAD_CANCEL_EVERY` (10) is cancelled at once, the others are left to expire
//! (`TICKETING_HOLD_SECS`, 60 here), as most holds of a sale end. A cancelled or expired seat is
//! handed out again once released, so the seats needed are the paid ones plus those in flight.

use super::{Stats, UNLIMITED, latencies, lean, record_latency, start, timed, timed_since};
use contracts::ScheduleId;
use e2e::{api::id_of, cpu::Snapshot, wire};
use futures::StreamExt;
use hdrhistogram::Histogram;
use reqwest::Method;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::{
    collections::VecDeque,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// How long an unpaid hold lives in this scenario.
const HOLD: Duration = Duration::from_secs(60);

/// The price of every seat, topped up by each paying user.
const PRICE: i64 = 1_000;

/// What an attempt does once its seat is held.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Then {
    Pay,
    Expire,
    Cancel,
}

/// Seats handed out one per attempt: fresh ones, and released ones again once their release
/// has surely gone through.
struct Seats {
    fresh: Vec<(ScheduleId, i32)>,
    next: AtomicU64,
    released: Mutex<VecDeque<(Instant, ScheduleId, i32)>>,
}

impl Seats {
    fn take(&self) -> Option<(ScheduleId, i32)> {
        {
            let mut released = self.released.lock().unwrap();
            if released.front().is_some_and(|(ready, _, _)| *ready <= Instant::now()) {
                return released.pop_front().map(|(_, s, n)| (s, n));
            }
        }
        self.fresh.get(self.next.fetch_add(1, Ordering::Relaxed) as usize).copied()
    }

    /// Hands `seat` out again after `after` (the queue stays in the order they come back in).
    fn give_back(&self, seat: (ScheduleId, i32), after: Duration) {
        let ready = Instant::now() + after;
        let mut released = self.released.lock().unwrap();
        let at = released.partition_point(|(r, _, _)| *r <= ready);
        released.insert(at, (ready, seat.0, seat.1));
    }
}

/// One minute's attempts (by the minute they were due in).
#[derive(Default)]
struct Minute {
    held: u64,
    confirmed: u64,
    cancelled: u64,
    expiring: u64,
    /// The seat was still taken (its earlier reservation's release had not gone through).
    refused: u64,
    failed: u64,
    latency: Option<Histogram<u64>>,
}

pub async fn soak(minutes: u64) {
    let env_n =
        |name: &str, default: u64| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let rate = env_n("LOAD_RATE", 1_000).max(1);
    let pay_every = env_n("LOAD_PAY_EVERY", 10).max(1);
    let cancel_every = env_n("LOAD_CANCEL_EVERY", 10).max(2);
    let sys = start(
        &[
            ("TICKETING_DEV_SKIP_QUEUE_TOKEN", "true"),
            ("TICKETING_HOLD_SECS", "60"),
            UNLIMITED[0],
            UNLIMITED[1],
            UNLIMITED[2],
        ],
        &[("TICKETING_DATABASE_MAX_CONNECTIONS", "40")],
    )
    .await;
    let api = &sys.api;
    // The paid seats are gone for good; the others come back within a hold and a half.
    let paid = rate * 60 * minutes / pay_every;
    let in_flight = rate * (HOLD.as_secs() * 3 / 2 + 30);
    let schedules = env_n("LOAD_SCHEDULES", (paid + in_flight) * 11 / 10 / 50 + 1);
    println!(
        "soak: {minutes} min open-loop at {rate} reservations/s, each a new user's; 1 in {pay_every} paid, \
         1 in {cancel_every} cancelled, the rest left to expire after {} s; {schedules} schedules of 50",
        HOLD.as_secs()
    );
    let created = Instant::now();
    let ids: Vec<ScheduleId> = futures::stream::iter(0..schedules)
        .map(|_| async { api.schedule(50, PRICE).await.unwrap().1 })
        .buffer_unordered(16)
        .collect()
        .await;
    println!("  {schedules} schedules created in {:.0} s", created.elapsed().as_secs_f64());
    let seats = Seats {
        // Seat by seat across the schedules.
        fresh: (1..=50).flat_map(|n| ids.iter().map(move |s| (*s, n))).collect(),
        next: AtomicU64::new(0),
        released: Mutex::default(),
    };
    let db = sys.database();
    if let Some(db) = db {
        // Without autovacuum (a server tuned for tests may have it off) every update and delete
        // stays as a dead row for good, and an hour measures that rather than the system.
        let autovacuum = db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT current_setting('autovacuum') AS on",
            ))
            .await
            .ok()
            .flatten()
            .and_then(|r| r.try_get::<String>("", "on").ok())
            .unwrap_or_default();
        if autovacuum != "on" {
            println!(
                "  WARNING: this Postgres runs with autovacuum = {autovacuum:?}; for a soak run \
                 `ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf();` first (docs/benchmarks.md)"
            );
        }
        println!("  {}", tables(db).await);
    }

    let pool = &wire::Pool::new(api.base.trim_start_matches("http://"));
    let by_minute: Vec<Mutex<Minute>> = (0..minutes).map(|_| Mutex::default()).collect();
    let stats = Stats::default();
    let started = Instant::now();
    let end = started + Duration::from_secs(60 * minutes);
    let cpu = Snapshot::now();
    let attempt = |n: u64, due: Instant| {
        let (seats, by_minute, stats) = (&seats, &by_minute, &stats);
        async move {
            let minute = &by_minute[((due - started).as_secs() / 60) as usize];
            let then = if n.is_multiple_of(pay_every) {
                Then::Pay
            } else if n % cancel_every == 1 {
                Then::Cancel
            } else {
                Then::Expire
            };
            let Some(seat) = seats.take() else {
                minute.lock().unwrap().failed += 1;
                stats.error("no seat left (raise LOAD_SCHEDULES)".into());
                return;
            };
            let bearer = format!("Bearer {}", api.token(contracts::UserId::new()));
            let auth = [("authorization", bearer.as_str()), ("prefer", "wait=10")];
            if then == Then::Pay {
                let charge = serde_json::json!({ "amount": PRICE });
                let topped = lean(pool, Method::POST, "/wallets/me/charges", &auth[..1], Some(charge));
                if timed(stats, "charge", topped).await.is_none_or(|a| a.status != 200) {
                    minute.lock().unwrap().failed += 1;
                    seats.give_back(seat, Duration::ZERO);
                    return;
                }
            }
            let body = serde_json::json!({ "scheduleId": seat.0, "seatNos": [seat.1] });
            let reserve = lean(pool, Method::POST, "/reservations", &auth, Some(body));
            let answer = timed_since(stats, "reserve -> HELD", Some(due), reserve).await;
            {
                let mut m = minute.lock().unwrap();
                record_latency(m.latency.get_or_insert_with(latencies), due.elapsed());
                match &answer {
                    Some(a) if a.body["status"] == "HELD" => m.held += 1,
                    // Taken: refused at once (409), or by the seat service, which had not yet
                    // released the seat of the reservation that expired or was cancelled.
                    Some(a) if a.status == 409 || a.body["failureReason"] == "SEAT_UNAVAILABLE" => {
                        m.refused += 1
                    }
                    _ => m.failed += 1,
                }
            }
            let Some(id) = answer.as_ref().filter(|a| a.body["status"] == "HELD").and_then(|a| id_of(a).ok())
            else {
                // Held by someone whose release has not gone through yet: try it again later.
                seats.give_back(seat, HOLD);
                return;
            };
            match then {
                Then::Pay => {
                    let path = format!("/reservations/{id}/payment");
                    let payment = lean(pool, Method::POST, &path, &auth, None);
                    let paid = timed(stats, "pay -> CONFIRMED", payment).await;
                    if paid.is_some_and(|a| a.body["status"] == "CONFIRMED") {
                        minute.lock().unwrap().confirmed += 1;
                    } else {
                        minute.lock().unwrap().failed += 1;
                        seats.give_back(seat, HOLD * 3 / 2);
                    }
                }
                Then::Expire => {
                    minute.lock().unwrap().expiring += 1;
                    seats.give_back(seat, HOLD * 3 / 2);
                }
                Then::Cancel => {
                    let path = format!("/reservations/{id}");
                    let cancel = lean(pool, Method::DELETE, &path, &auth[..1], None);
                    if timed(stats, "cancel", cancel).await.is_some_and(|a| a.status < 300) {
                        minute.lock().unwrap().cancelled += 1;
                    } else {
                        minute.lock().unwrap().failed += 1;
                    }
                    seats.give_back(seat, Duration::from_secs(30));
                }
            }
        }
    };

    let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut running = futures::stream::FuturesUnordered::new();
    let mut report =
        tokio::time::interval_at((started + Duration::from_secs(60)).into(), Duration::from_secs(60));
    let (mut n, mut reported) = (0u64, 0u64);
    loop {
        tokio::select! {
            due = ticks.tick() => {
                let due = due.into_std();
                if due >= end {
                    break;
                }
                running.push(attempt(n, due));
                n += 1;
            }
            _ = report.tick() => {
                print_minute(reported, &by_minute[reported as usize], running.len(), db).await;
                reported += 1;
            }
            Some(_) = running.next(), if !running.is_empty() => {}
        }
    }
    while running.next().await.is_some() {}
    let cpu = cpu.until(&Snapshot::now());
    while reported < minutes {
        print_minute(reported, &by_minute[reported as usize], 0, db).await;
        reported += 1;
    }
    summary(&by_minute, started.elapsed());
    stats.print(started.elapsed());
    let attempts: u64 = by_minute.iter().map(|m| m.lock().unwrap().held).sum();
    println!("  {}", cpu.per_op(attempts, "held reservation (with its payment, cancel or expiry)"));
    // Let the last holds expire, so the check sees them released.
    tokio::time::sleep(HOLD + Duration::from_secs(5)).await;
    sys.check().await;
}

/// The p99 of five minutes after the warm-up against the last five's, and the totals.
fn summary(by_minute: &[Mutex<Minute>], elapsed: Duration) {
    let merged = |range: &[Mutex<Minute>]| {
        let mut h = latencies();
        for m in range {
            if let Some(l) = &m.lock().unwrap().latency {
                h.add(l).unwrap();
            }
        }
        h
    };
    // The first minute warms up (connections, caches, the first batches) and is left out when
    // the run is long enough for two five-minute windows after it.
    let five = by_minute.len().min(5);
    let from = usize::from(by_minute.len() > 10);
    let first = merged(&by_minute[from..from + five]);
    let last = merged(&by_minute[by_minute.len() - five..]);
    let p99 = |h: &Histogram<u64>| h.value_at_quantile(0.99) as f64 / 1000.0;
    let change = p99(&last) / p99(&first).max(0.001) - 1.0;
    println!(
        "  reserve -> HELD p99: minutes {}-{} {:.1} ms, the last {five} {:.1} ms ({:+.0}%: {})",
        from + 1,
        from + five,
        p99(&first),
        p99(&last),
        change * 100.0,
        if change <= 0.2 { "within 20%" } else { "MORE than 20% worse" }
    );
    let sum = |f: fn(&Minute) -> u64| by_minute.iter().map(|m| f(&m.lock().unwrap())).sum::<u64>();
    println!(
        "  in {:.0} s: {} held, {} CONFIRMED, {} cancelled, {} left to expire, {} refused (seat not yet released), {} failed",
        elapsed.as_secs_f64(),
        sum(|m| m.held),
        sum(|m| m.confirmed),
        sum(|m| m.cancelled),
        sum(|m| m.expiring),
        sum(|m| m.refused),
        sum(|m| m.failed),
    );
}

/// One minute's line, and the tables' line under it.
async fn print_minute(i: u64, minute: &Mutex<Minute>, in_flight: usize, db: Option<&DatabaseConnection>) {
    let line = {
        let m = minute.lock().unwrap();
        let q = |h: &Option<Histogram<u64>>, q: f64| {
            h.as_ref().map_or(0.0, |h| h.value_at_quantile(q) as f64 / 1000.0)
        };
        format!(
            "  min {:>2}: held {:>5.0}/s (p50 {:>5.1} ms, p99 {:>6.1} ms), confirmed {:>4.0}/s, cancelled {:>4.0}/s, \
             expiring {:>4.0}/s, refused {}, failed {}, in flight {in_flight}",
            i + 1,
            m.held as f64 / 60.0,
            q(&m.latency, 0.5),
            q(&m.latency, 0.99),
            m.confirmed as f64 / 60.0,
            m.cancelled as f64 / 60.0,
            m.expiring as f64 / 60.0,
            m.refused,
            m.failed,
        )
    };
    println!("{line}");
    if let Some(db) = db {
        println!("          {}", tables(db).await);
    }
}

/// Postgres's checkpoints so far (timed, and requested because the WAL filled up) and the
/// buffers its backends had to write out themselves; empty where `pg_stat_bgwriter` has no such
/// columns (they moved in Postgres 17).
async fn checkpoints(db: &DatabaseConnection) -> String {
    let sql = "SELECT checkpoints_timed::bigint AS timed, checkpoints_req::bigint AS requested, \
        buffers_backend::bigint AS by_backends FROM pg_stat_bgwriter";
    let row = db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.ok().flatten();
    row.map_or_else(String::new, |row| {
        let get = |name: &str| row.try_get::<i64>("", name).unwrap_or(-1);
        format!(
            ", checkpoints {} timed {} requested, buffers written by backends {}",
            get("timed"),
            get("requested"),
            get("by_backends")
        )
    })
}

/// What the tables hold now: their size, rows, dead rows and vacuums (from Postgres's
/// statistics), the outbox backlog (counted), and the inbox and idempotency rows.
async fn tables(db: &DatabaseConnection) -> String {
    let sql = "SELECT pg_database_size(current_database())::bigint AS bytes, \
        coalesce(sum(n_live_tup), 0)::bigint AS live, coalesce(sum(n_dead_tup), 0)::bigint AS dead, \
        coalesce(sum(n_live_tup) FILTER (WHERE relname = 'inbox'), 0)::bigint AS inbox, \
        coalesce(sum(n_live_tup) FILTER (WHERE relname = 'idempotency'), 0)::bigint AS idempotency, \
        coalesce(sum(n_live_tup) FILTER (WHERE schemaname = 'reservation' AND relname = 'reservations'), 0)::bigint AS reservations, \
        coalesce(sum(autovacuum_count + vacuum_count), 0)::bigint AS vacuums, \
        coalesce(sum(autoanalyze_count + analyze_count), 0)::bigint AS analyzes, \
        (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker')::bigint AS vacuuming \
        FROM pg_stat_user_tables";
    let outboxes = "SELECT string_agg(format('SELECT count(*) AS n FROM %I.outbox', table_schema), ' UNION ALL ') AS q \
        FROM information_schema.tables WHERE table_name = 'outbox'";
    let read = async {
        let row = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, sql))
            .await?
            .ok_or_else(|| anyhow::anyhow!("no row"))?;
        let get = |name: &str| row.try_get::<i64>("", name).unwrap_or(-1);
        let q: String = db
            .query_one_raw(Statement::from_string(DbBackend::Postgres, outboxes))
            .await?
            .and_then(|r| r.try_get("", "q").ok())
            .unwrap_or_default();
        let backlog: i64 = if q.is_empty() {
            0
        } else {
            let total = format!("SELECT coalesce(sum(n), 0)::bigint AS n FROM ({q}) o");
            db.query_one_raw(Statement::from_string(DbBackend::Postgres, total))
                .await?
                .and_then(|r| r.try_get("", "n").ok())
                .unwrap_or(-1)
        };
        anyhow::Ok(format!(
            "database {} MiB, {} rows ({} reservations), {} dead ({:.1}%), outbox backlog {backlog}, inbox {} rows, \
             idempotency {} rows, vacuums {} (running {}), analyzes {}{}",
            get("bytes") / (1 << 20),
            get("live"),
            get("reservations"),
            get("dead"),
            get("dead") as f64 * 100.0 / (get("live") + get("dead")).max(1) as f64,
            get("inbox"),
            get("idempotency"),
            get("vacuums"),
            get("vacuuming"),
            get("analyzes"),
            checkpoints(db).await,
        ))
    };
    read.await.unwrap_or_else(|e| format!("tables: {e}"))
}
