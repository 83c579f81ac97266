//! Benchmark (figures, not a test): latency of the booking saga at low load on this machine.
//!
//! `cargo build --release -p ticketing -p e2e && $CARGO_TARGET_DIR/release/saga-latency [sagas] [concurrency]`
//! (defaults 400 and 4). Starts `ticketing up` (the release binary beside this one) in an
//! isolated environment, runs each saga as a user would (charge, reserve with `Prefer: wait`,
//! pay with `Prefer: wait`), and prints p50/p90/p99/max of:
//! - client-observed POST /reservations → HELD and payment → CONFIRMED (after admission; each
//!   includes the client's check of its queue token);
//! - server-side, from the reservation timeline: request committed → SeatReserved applied, and
//!   PaymentRequested committed → ReservationCompleted committed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, reason = "a benchmark binary")]

use chrono::{DateTime, Utc};
use contracts::UserId;
use e2e::{
    api::{Api, id_of},
    deployment::audit_settled,
    harness::System,
};
use hdrhistogram::Histogram;
use std::time::Instant;
use testkit::TestEnv;

fn hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()
}

fn line(name: &str, h: &Histogram<u64>) {
    let ms = |v: u64| v as f64 / 1000.0;
    println!(
        "  {name:<44} p50 {:>6.1} ms  p90 {:>6.1} ms  p99 {:>6.1} ms  max {:>6.1} ms  (n={})",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max()),
        h.len()
    );
}

fn at(timeline: &serde_json::Value, kind: &str) -> Option<DateTime<Utc>> {
    timeline
        .as_array()?
        .iter()
        .find(|e| e["type"] == kind)
        .and_then(|e| serde_json::from_value(e["at"].clone()).ok())
}

fn micros(d: chrono::TimeDelta) -> u64 {
    u64::try_from(d.num_microseconds().unwrap_or(0)).unwrap_or(0).max(1)
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sagas = args.first().copied().unwrap_or(400);
    let concurrency = args.get(1).copied().unwrap_or(4).max(1);

    let env = TestEnv::new().await.unwrap();
    let system = System::start(&env).unwrap();
    let api = Api::new(&system.base_url, env.jwt());
    let mut schedules = Vec::new();
    for _ in 0..sagas.div_ceil(50) {
        schedules.push(api.schedule(50, 10_000).await.unwrap().1);
    }
    println!("saga latency: {sagas} sagas, {concurrency} at a time, one seat each, `ticketing up` (release)");

    let work: Vec<_> = (0..sagas).collect();
    let started = Instant::now();
    let results = futures::future::join_all(work.chunks(sagas.div_ceil(concurrency)).map(|chunk| {
        let api = api.clone();
        let schedules = schedules.clone();
        let chunk = chunk.to_vec();
        async move {
            let mut out = Vec::new();
            for i in chunk {
                let user = UserId::new();
                api.charge(user, 10_000).await.unwrap();
                // Admission (the next tick of the waiting room) is not the saga: wait for it
                // first; the timed call then only re-checks the token (one GET).
                api.admitted(user).await.unwrap();
                let t0 = Instant::now();
                let held = api.reserve(user, schedules[i / 50], &[(i % 50) as i32 + 1], 10).await.unwrap();
                let t1 = Instant::now();
                assert_eq!(held.body["status"], "HELD", "{:?}", held);
                let id = id_of(&held).unwrap();
                let paid = api.pay(user, id, 10).await.unwrap();
                let t2 = Instant::now();
                assert_eq!(paid.body["status"], "CONFIRMED", "{:?}", paid);
                out.push((t1 - t0, t2 - t1, paid.body["timeline"].clone(), paid.body["createdAt"].clone()));
            }
            out
        }
    }))
    .await;
    let elapsed = started.elapsed();

    let (mut hold_client, mut pay_client, mut hold_server, mut pay_server) = (hist(), hist(), hist(), hist());
    for (hold, pay, timeline, created) in results.into_iter().flatten() {
        hold_client.record(hold.as_micros() as u64).unwrap();
        pay_client.record(pay.as_micros() as u64).unwrap();
        let created: DateTime<Utc> = serde_json::from_value(created).unwrap();
        if let Some(held) = at(&timeline, "SeatReserved") {
            hold_server.record(micros(held - created)).unwrap();
        }
        if let (Some(asked), Some(done)) =
            (at(&timeline, "PaymentRequested"), at(&timeline, "ReservationCompleted"))
        {
            pay_server.record(micros(done - asked)).unwrap();
        }
    }
    println!(
        "  {:.0} sagas/s overall, each user's wait for admission included (throughput: `load throughput`)",
        sagas as f64 / elapsed.as_secs_f64()
    );
    line("client: POST /reservations -> HELD", &hold_client);
    line("client: POST .../payment -> CONFIRMED", &pay_client);
    line("server: request committed -> SeatReserved", &hold_server);
    line("server: PaymentRequested -> ReservationCompleted", &pay_server);
    audit_settled(&env.db, &env.bus, &env.config.settings().unwrap()).await.unwrap();
    println!("  invariants hold (ticketing audit)");
}
