//! Benchmark (figures, not a test): the waiting room on this machine, over HTTP from 127.0.0.1.
//!
//! `cargo build --release -p ticketing -p e2e && $CARGO_TARGET_DIR/release/queue-bench [users] [polls] [connections]`
//! (defaults 10000, 100000, 64). Starts `ticketing serve queue` (the release binary beside this
//! one) in an isolated environment, joins `users` users, then polls their tokens `polls` times,
//! and prints joins/s, polls/s with latency percentiles, and Redis commands per poll (read from
//! the server's own `total_commands_processed`; run it alone for a clean count).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, reason = "a benchmark binary")]

use contracts::UserId;
use e2e::harness::{Process, binary, command};
use futures::StreamExt;
use hdrhistogram::Histogram;
use std::time::Instant;
use testkit::TestEnv;

async fn commands_processed(env: &TestEnv) -> u64 {
    let mut c = env.redis.clone();
    let info: String = redis::cmd("INFO").arg("stats").query_async(&mut c).await.unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

fn report(name: &str, n: usize, elapsed: std::time::Duration, h: &Histogram<u64>) {
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "  {name:<6} {n:>7} in {:>5.2} s = {:>7.0}/s   p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let users = args.first().copied().unwrap_or(10_000);
    let polls = args.get(1).copied().unwrap_or(100_000);
    let connections = args.get(2).copied().unwrap_or(64);

    let env = TestEnv::new().await.unwrap();
    let mut cmd = command(&binary(), &env);
    // Nobody is admitted during the run: every poll reads a WAITING token and its rank.
    cmd.env("TICKETING_QUEUE_ADMIT_PER_TICK", "1")
        .env("TICKETING_QUEUE_TICK_MS", "3600000")
        .env("RUST_LOG", "warn");
    cmd.args(["serve", "queue"]);
    let server = Process::spawn(cmd).unwrap();
    let base = server.url.clone();
    let jwt = env.jwt();
    let http = reqwest::Client::builder().pool_max_idle_per_host(connections).build().unwrap();
    println!(
        "waiting room: {users} users, {polls} polls, {connections} concurrent connections, `ticketing serve queue` (release)"
    );

    let ids: Vec<UserId> = (0..users).map(|_| UserId::new()).collect();
    let bearers: Vec<String> = ids
        .iter()
        .map(|u| jwt.mint(*u, platform::auth::Role::User, std::time::Duration::from_secs(3600)).unwrap())
        .collect();
    let mut joins = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let started = Instant::now();
    let tokens: Vec<String> = futures::stream::iter(bearers.iter().cloned())
        .map(|bearer| {
            let (http, base) = (http.clone(), base.clone());
            async move {
                let t = Instant::now();
                let res =
                    http.post(format!("{base}/queue/tokens")).bearer_auth(&bearer).send().await.unwrap();
                assert_eq!(res.status(), 201);
                let body: serde_json::Value = res.json().await.unwrap();
                (t.elapsed(), body["token"].as_str().unwrap().to_owned())
            }
        })
        .buffered(connections)
        .map(|(took, token)| {
            joins.record(took.as_micros() as u64).unwrap();
            token
        })
        .collect()
        .await;
    report("joins", users, started.elapsed(), &joins);

    let before = commands_processed(&env).await;
    let mut latencies = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let started = Instant::now();
    let mut stream = futures::stream::iter(0..polls)
        .map(|i| {
            let (http, base) = (http.clone(), base.clone());
            let (token, bearer) = (tokens[i % users].clone(), bearers[i % users].clone());
            async move {
                let t = Instant::now();
                let res = http
                    .get(format!("{base}/queue/tokens/{token}"))
                    .bearer_auth(&bearer)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                let _ = res.bytes().await.unwrap();
                t.elapsed()
            }
        })
        .buffer_unordered(connections);
    while let Some(took) = stream.next().await {
        latencies.record(took.as_micros() as u64).unwrap();
    }
    let elapsed = started.elapsed();
    let after = commands_processed(&env).await;
    report("polls", polls, elapsed, &latencies);
    // INFO itself is one command.
    println!("  Redis commands per poll: {:.2}", (after - before - 1) as f64 / polls as f64);
    drop(server);
}
