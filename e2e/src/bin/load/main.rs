//! Load scenarios against the whole system on this machine (figures, not tests).
//!
//! `cargo build --release -p ticketing -p e2e && $CARGO_TARGET_DIR/release/load <scenario> [n]`
//! - `flash-sale [users=10000]`: every user joins the sale's waiting room (the schedule's own),
//!   is admitted at the configured rate, and races for the 50 seats of the schedule (retrying
//!   other seats until sold out); each winner pays. A user waits without polling: after
//!   joining it reads its token with `Prefer: wait=10`, answered when the user is admitted or
//!   the sale sold out. Once the seat service announces the sale sold out, everyone still in the room
//!   is answered SOLD_OUT, the waiting ones without being admitted. Expect exactly 50 CONFIRMED and no 5xx; the memory of every
//!   program is printed before and after.
//! - `throughput [seconds per step=10]`: many schedules, no contention; two ramps, first holds
//!   only (reserve → HELD), then full sagas (→ pay → CONFIRMED). Concurrency doubles from 8
//!   until `POST /reservations` → HELD p99 passes 100 ms; each step measures `seconds` after 1 s
//!   of warm-up and prints holds/s or sagas/s; then the knee. The queue guard is bypassed here
//!   (each finished saga spends its token; this scenario measures the saga, flash-sale measures
//!   the waiting room). Its requests go over the lean client (`e2e::wire::Pool`).
//!   `LOAD_CONNECTIONS` bounds requests in flight (default 256); `LOAD_SCHEDULES` sets how many
//!   schedules of 50 seats it creates (default 800; each reservation takes one seat). For a steady
//!   load to profile: `LOAD_RAMP=holds|sagas` runs one ramp, `LOAD_CONCURRENCY` starts it at that
//!   concurrency, `LOAD_STEPS` stops it after that many steps. `LOAD_RATE=1000` makes each step
//!   open-loop: an attempt starts every 1/1000 s whatever the earlier ones are doing, taken in
//!   turn by `LOAD_CONCURRENCY` users, and its latency counts from when it was due (a closed
//!   loop waits for its answers and so never measures the queue it would have built).
//!   `LOAD_KEYED=1` sends every reservation and payment with an `Idempotency-Key` of its own.
//! - `waiting-room [users=1000000]`: nobody is admitted; every user joins the global line
//!   (joins/s, and Redis's memory per waiting user), reads its position once (reads/s, p99), and
//!   20,000 of them (`LOAD_STREAMS`) hold their token's event stream open, 10,000 per process on
//!   each side (the server's memory per stream); then the first 100 in line leave, and every
//!   stream must tell its user the new place within a refresh (p99 of how soon).
//! - `soak [minutes=60]`: open-loop reservations at `LOAD_RATE` (1,000/s) for an hour, each a new
//!   user's, one in ten paid, one in ten cancelled, the rest left to expire; a line a minute with
//!   the minute's rate and p99 and what the tables hold (see `load/soak.rs`), and at the end the
//!   last five minutes' p99 against the five after the warm-up minute.
//! - `growth [seconds per step=10]`: the holds step with 10,000, 100,000 and 1,000,000 ended
//!   reservations in the tables, then 1,000 and 100,000 more schedules: holds/s, CPU per hold and
//!   the statements Postgres ran per hold at each size (see `load/growth.rs`).
//!
//! Each starts `ticketing up` (the release binary beside this one) in an isolated environment,
//! or runs against the deployment at `LOAD_BASE_URL` (such as `scripts/cluster-up`'s, whose
//! printed settings it needs: `E2E_JWT_PRIVATE_KEY`, `E2E_CONTROL` and the `TICKETING_*` variables),
//! sends load only to 127.0.0.1, and ends with `ticketing audit`'s checks. `scripts/bench-topology`
//! runs the throughput steps against both, alternated. Throughput steps and the
//! waiting room also print the CPU each operation cost, by program (`e2e::cpu`): on a shared host
//! that figure moves far less from run to run than the rates do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, reason = "a benchmark binary")]

use anyhow::Context;
use contracts::{ReservationId, ScheduleId, UserId};
use e2e::{
    api::{Api, id_of},
    cpu::Snapshot,
    deployment::{Deployment, audit_settled},
    harness::{Process, binary, command},
    wire,
};
use futures::StreamExt;
use hdrhistogram::Histogram;
use rand::seq::IndexedRandom;
use reqwest::Method;
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use testkit::TestEnv;

mod growth;
mod soak;

/// mimalloc, as in the services: with the system allocator the client spent a sixth of its
/// time growing and trimming its heap, and a load tool should not be what sets the rate.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Latency per step and errors by kind.
struct Stats {
    steps: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    errors: Mutex<BTreeMap<String, u64>>,
    /// 4xx answers a user of a flash sale expects (a seat someone else reserves, a sale sold
    /// out), by code.
    refusals: Mutex<BTreeMap<String, u64>>,
    requests: AtomicU64,
    /// Requests in flight at once: users are many, connections are not.
    inflight: tokio::sync::Semaphore,
    /// Requests that wait for a turn (`Prefer: wait` on a queue token) in flight at once: the
    /// server parks them, so they are bounded by connections, not by work.
    waiting: tokio::sync::Semaphore,
    /// When set, the admitted users' requests (seats, reserve, pay, leave) in flight at once,
    /// apart from the joins: each user has a browser of their own, so a user who was let in
    /// does not queue behind a hundred thousand joins in this one client.
    admitted: Option<tokio::sync::Semaphore>,
}

impl Default for Stats {
    fn default() -> Self {
        Self {
            steps: Mutex::default(),
            errors: Mutex::default(),
            refusals: Mutex::default(),
            requests: AtomicU64::default(),
            inflight: tokio::sync::Semaphore::new(
                std::env::var("LOAD_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(256),
            ),
            waiting: tokio::sync::Semaphore::new(WAITING_CONNECTIONS),
            admitted: None,
        }
    }
}

impl Stats {}

/// Latencies in microseconds, up to two minutes.
fn latencies() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 120_000_000, 3).unwrap()
}

/// Records `took` in `h` (in microseconds).
fn record_latency(h: &mut Histogram<u64>, took: Duration) {
    let _ = h.record(took.as_micros().max(1) as u64);
}

impl Stats {
    fn record(&self, step: &'static str, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        record_latency(self.steps.lock().unwrap().entry(step).or_insert_with(latencies), took);
    }

    fn error(&self, kind: String) {
        *self.errors.lock().unwrap().entry(kind).or_default() += 1;
    }

    fn print(&self, elapsed: Duration) {
        println!(
            "  requests: {} ({:.0}/s)",
            self.requests.load(Ordering::Relaxed),
            self.requests.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64()
        );
        for (step, h) in self.steps.lock().unwrap().iter() {
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "  {step:<22} n={:>7}  p50 {:>7.1} ms  p90 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
                h.len(),
                ms(0.5),
                ms(0.9),
                ms(0.99),
                h.max() as f64 / 1000.0
            );
        }
        for (kind, n) in self.refusals.lock().unwrap().iter() {
            println!("  answered {kind}: {n}");
        }
        let errors = self.errors.lock().unwrap();
        if errors.is_empty() {
            println!("  errors: none");
        }
        for (kind, n) in errors.iter() {
            println!("  error {kind}: {n}");
        }
    }
}

/// Times `request` as `step`; a status error is counted by kind, and so is a transport error.
async fn timed(
    stats: &Stats,
    step: &'static str,
    request: impl std::future::Future<Output = anyhow::Result<e2e::api::Answer>>,
) -> Option<e2e::api::Answer> {
    timed_since(stats, step, None, request).await
}

/// [`timed`], timed from `since` when given (an open-loop request's scheduled start, so that
/// waiting for a connection counts), otherwise from when a connection is free.
async fn timed_since(
    stats: &Stats,
    step: &'static str,
    since: Option<Instant>,
    request: impl std::future::Future<Output = anyhow::Result<e2e::api::Answer>>,
) -> Option<e2e::api::Answer> {
    let permits = match (step, &stats.admitted) {
        (WAIT, _) => &stats.waiting,
        ("join", _) | (_, None) => &stats.inflight,
        (_, Some(admitted)) => admitted,
    };
    let Ok(_permit) = permits.acquire().await else { return None };
    let started = since.unwrap_or_else(Instant::now);
    match request.await {
        Ok(a) => {
            stats.record(step, started.elapsed());
            if a.status >= 400 {
                let code = a.body["code"].as_str().unwrap_or("?").to_owned();
                let kind = format!("{step} {} {code}", a.status);
                if a.status == 409 && (code == "SEAT_UNAVAILABLE" || code == "SOLD_OUT") {
                    *stats.refusals.lock().unwrap().entry(kind).or_default() += 1;
                } else {
                    stats.error(kind);
                }
            }
            Some(a)
        }
        Err(e) => {
            stats.error(format!("{step} transport: {e}"));
            None
        }
    }
}

/// Sends a request over `pool` and answers as [`Api::send`] does (without the headers).
async fn lean(
    pool: &wire::Pool,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<serde_json::Value>,
) -> anyhow::Result<e2e::api::Answer> {
    let body = body.map(|b| serde_json::to_vec(&b)).transpose()?.map(bytes::Bytes::from);
    let (status, body) = pool.send(method, path, headers, body).await?;
    Ok(e2e::api::Answer {
        status,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        headers: Default::default(),
    })
}

/// [`lean`] with the call shape of [`Api::send`]: `bearer` becomes the Authorization header.
struct Lean(wire::Pool);

impl Lean {
    fn of(api: &Api) -> Self {
        Self(wire::Pool::new(api.base.trim_start_matches("http://")))
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<e2e::api::Answer> {
        let auth = bearer.map(|b| format!("Bearer {b}"));
        let mut all: Vec<(&str, &str)> = auth.iter().map(|a| ("authorization", a.as_str())).collect();
        all.extend_from_slice(headers);
        lean(&self.0, method, path, &all, body).await
    }
}

/// The system under load: `ticketing up` started here in an environment of its own, or the
/// deployment at `LOAD_BASE_URL` (its settings applied through `E2E_CONTROL` where it has one).
struct System {
    api: Api,
    target: Target,
}

/// Fields drop in order: the server stops before its database and streams are removed.
enum Target {
    Local { _process: Process, env: Box<TestEnv> },
    Deployment(Box<Deployment>),
}

/// Starts the system with the scenario's settings; `local_only` are those that make sense only
/// for one `ticketing up` process (a deployment sizes its own pools).
/// The rate limits off: every simulated client comes from this one address, and a worker asks
/// far faster than a person would.
/// The per-user and per-address rates and the per-user velocity limit off: the load tool's users
/// are scripts, all of one address.
const UNLIMITED: [(&str, &str); 3] = [
    ("TICKETING_RATE_PER_USER", "0"),
    ("TICKETING_RATE_PER_ADDRESS", "0"),
    ("TICKETING_MAX_RESERVATIONS_PER_MINUTE", "0"),
];

/// `LOAD_SETTINGS` (`NAME=value ...`): settings the system runs with beyond the scenario's.
fn extra_settings() -> Vec<(String, String)> {
    let extra = std::env::var("LOAD_SETTINGS").unwrap_or_default();
    extra
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn start(settings: &[(&str, &str)], local_only: &[(&str, &str)]) -> System {
    if let Some(url) = std::env::var("LOAD_BASE_URL").ok().filter(|u| !u.is_empty()) {
        // A setting given to `load` itself wins over the scenario's own, and `LOAD_SETTINGS`
        // (`NAME=value ...`) adds more (such as TICKETING_NATS_REPLICAS=1, to see what the
        // replicas of the streams cost).
        let mut settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| ((*k).to_owned(), std::env::var(k).unwrap_or_else(|_| (*v).to_owned())))
            .collect();
        settings.extend(extra_settings());
        let pairs: Vec<(&str, &str)> = settings.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let deployment = Deployment::connect(&url, &pairs).await.unwrap();
        println!("against {url}");
        return System { api: deployment.api.clone(), target: Target::Deployment(Box::new(deployment)) };
    }
    let env = TestEnv::new().await.unwrap();
    let mut cmd = command(&binary(), &env);
    cmd.env("RUST_LOG", "warn");
    // As against a deployment, a setting given to `load` itself wins over the scenario's own
    // (the harness passes the process no other TICKETING_ variable of this one's).
    for (k, v) in settings.iter().chain(local_only) {
        cmd.env(k, std::env::var(k).unwrap_or_else(|_| (*v).to_owned()));
    }
    cmd.envs(extra_settings());
    cmd.arg("up");
    let process = Process::spawn(cmd).unwrap();
    let api = Api::new(&process.url, env.jwt());
    System { api, target: Target::Local { _process: process, env: Box::new(env) } }
}

impl System {
    /// One more process of the queue service beside the system this tool started, with
    /// `settings` (a deployment runs its own replicas: `None`).
    fn queue_replica(&self, settings: &[(&str, &str)]) -> Option<Process> {
        let Target::Local { env, .. } = &self.target else { return None };
        let mut cmd = command(&binary(), env);
        cmd.env("RUST_LOG", "warn");
        for (k, v) in settings {
            cmd.env(k, std::env::var(k).unwrap_or_else(|_| (*v).to_owned()));
        }
        cmd.args(["serve", "queue"]);
        Some(Process::spawn(cmd).unwrap())
    }

    /// The system's database, when this process started it (a deployment's is its own).
    fn database(&self) -> Option<&sea_orm::DatabaseConnection> {
        match &self.target {
            Target::Local { env, .. } => Some(&env.db),
            Target::Deployment(_) => None,
        }
    }

    /// `ticketing audit`'s checks once the system has settled; panics with the report if any fails.
    async fn check(&self) {
        match &self.target {
            Target::Local { env, .. } => {
                audit_settled(&env.db, &env.bus, &env.config.settings().unwrap()).await.unwrap()
            }
            Target::Deployment(d) => d.check().await.unwrap(),
        }
        println!("  invariants hold (ticketing audit)");
    }
}

async fn charge_all(api: &Api, users: &[UserId], amount: i64) {
    futures::stream::iter(users.iter().copied())
        .map(|u| async move { api.charge(u, amount).await.unwrap() })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
}

async fn flash_sale(users: usize) {
    let sys = start(
        &[
            ("TICKETING_QUEUE_MAX_ACTIVE", "5000"),
            ("TICKETING_QUEUE_ADMIT_PER_TICK", "1000"),
            ("TICKETING_QUEUE_TICK_MS", "200"),
            UNLIMITED[0],
            UNLIMITED[1],
            UNLIMITED[2],
        ],
        &[],
    )
    .await;
    let api = &sys.api;
    let (_, schedule) = api.schedule(50, 10_000).await.unwrap();
    let ids: Vec<UserId> = (0..users).map(|_| UserId::new()).collect();
    charge_all(api, &ids, 10_000).await;
    sale_room_open(api, schedule).await;
    println!("flash-sale: {users} users, 50 seats, the sale's room admits 1000 per 200 ms up to 5000 active");
    println!("  {}", e2e::cpu::memory_line("before"));

    let stats = Arc::new(Stats { admitted: Some(tokio::sync::Semaphore::new(256)), ..Stats::default() });
    let outcome = Arc::new(Outcome::default());
    let first_admitted = Arc::new(Mutex::new(None::<Instant>));
    // Each user arrives signed in: their tokens are signed before the clock starts, as an
    // identity provider would have done before the sale.
    let bearers: Vec<String> = ids.iter().map(|u| api.token(*u)).collect();
    // Over the lean client, as the throughput scenario: reqwest cost this client more CPU per
    // request than the server spent answering it.
    let lean = &Lean::of(api);
    let started = Instant::now();
    futures::stream::iter(bearers)
        .map(|bearer| {
            let (stats, outcome, first_admitted) = (stats.clone(), outcome.clone(), first_admitted.clone());
            async move { buyer(lean, &stats, bearer, schedule, &outcome, &first_admitted).await }
        })
        .buffer_unordered(users)
        .collect::<Vec<_>>()
        .await;
    let elapsed = started.elapsed();
    let after_admission = first_admitted.lock().unwrap().map(|t| t.elapsed()).unwrap_or_default();
    println!(
        "  all {users} users answered in {:.2} s ({:.2} s after the first admission)",
        elapsed.as_secs_f64(),
        after_admission.as_secs_f64()
    );
    println!(
        "  CONFIRMED: {}; told SOLD_OUT while waiting: {}, once admitted: {}",
        outcome.confirmed.load(Ordering::Relaxed),
        outcome.sold_out_waiting.load(Ordering::Relaxed),
        outcome.sold_out_admitted.load(Ordering::Relaxed),
    );
    let since_start = |t: &Mutex<Option<Instant>>| {
        t.lock().unwrap().map_or("-".to_owned(), |t| format!("{:.2} s", (t - started).as_secs_f64()))
    };
    println!(
        "  from the start: first admission {}, last seat paid {}, first waiting user told SOLD_OUT {}",
        since_start(&first_admitted),
        since_start(&outcome.last_confirmed),
        since_start(&outcome.first_sold_out)
    );
    stats.print(elapsed);
    println!("  {}", e2e::cpu::memory_line("after"));
    let checking = Instant::now();
    sys.check().await;
    println!("  checked in {:.1} s", checking.elapsed().as_secs_f64());
}

/// Waiting requests held open at most: the session's open-file limit here is 20,000, shared by
/// the client's connections and (on one machine) the server's.
const WAITING_CONNECTIONS: usize = 9_000;

/// The step of a request that waits for the user's turn.
const WAIT: &str = "wait";

/// How the buyers of a flash sale ended.
#[derive(Default)]
struct Outcome {
    /// When the last seat was paid for, and when a waiting user was first told SOLD_OUT.
    last_confirmed: Mutex<Option<Instant>>,
    first_sold_out: Mutex<Option<Instant>>,
    confirmed: AtomicU64,
    sold_out_waiting: AtomicU64,
    sold_out_admitted: AtomicU64,
}

/// Waits until the queue knows `schedule` (it learns of it from the catalog's event), so the
/// sale's room can be joined.
async fn sale_room_open(api: &Api, schedule: ScheduleId) {
    let probe = api.token(UserId::new());
    let body = serde_json::json!({ "scheduleId": schedule });
    for _ in 0..100 {
        let a = api.send(Method::POST, "/queue/tokens", Some(&probe), Some(body.clone()), &[]).await.unwrap();
        if (200..300).contains(&a.status) {
            let token = a.body["token"].as_str().unwrap_or_default();
            api.send(Method::DELETE, &format!("/queue/tokens/{token}"), Some(&probe), None, &[])
                .await
                .unwrap();
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the queue never learned of schedule {schedule}");
}

async fn buyer(
    api: &Lean,
    stats: &Stats,
    bearer: String,
    schedule: ScheduleId,
    outcome: &Outcome,
    first_admitted: &Mutex<Option<Instant>>,
) {
    let sale = serde_json::json!({ "scheduleId": schedule });
    // Join, then wait without polling: the wait is answered when the user is admitted or the
    // sale sold out (or after 10 s, and then the user waits again).
    let Some(mut t) =
        timed(stats, "join", api.send(Method::POST, "/queue/tokens", Some(&bearer), Some(sale), &[])).await
    else {
        return;
    };
    if t.body["code"] == "SOLD_OUT" {
        outcome.sold_out_waiting.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let wait = [("Prefer", "wait=10")];
    let token = t.body["token"].as_str().unwrap_or_default().to_owned();
    loop {
        match t.body["status"].as_str() {
            Some("ACTIVE") => break,
            Some("SOLD_OUT") => {
                outcome.first_sold_out.lock().unwrap().get_or_insert_with(Instant::now);
                outcome.sold_out_waiting.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Some("WAITING") => {}
            _ => return,
        }
        let Some(again) = timed(
            stats,
            WAIT,
            api.send(Method::GET, &format!("/queue/tokens/{token}"), Some(&bearer), None, &wait),
        )
        .await
        else {
            return;
        };
        t = again;
    }
    first_admitted.lock().unwrap().get_or_insert_with(Instant::now);
    if !book(api, stats, &bearer, &token, schedule, outcome).await {
        // Done without a booking (sold out): give the slot back, as a client that closes the
        // page would (a completed booking spends the token by itself).
        timed(
            stats,
            "leave",
            api.send(Method::DELETE, &format!("/queue/tokens/{token}"), Some(&bearer), None, &[]),
        )
        .await;
    }
}

/// Races for a free seat until one is held and paid (true) or none is left (false).
async fn book(
    api: &Lean,
    stats: &Stats,
    bearer: &str,
    token: &str,
    schedule: ScheduleId,
    outcome: &Outcome,
) -> bool {
    let headers = [("X-Queue-Token", token), ("Prefer", "wait=10")];
    for _ in 0..60 {
        let Some(map) = timed(
            stats,
            "seats",
            api.send(Method::GET, &format!("/schedules/{schedule}/seats?status=AVAILABLE"), None, None, &[]),
        )
        .await
        else {
            return false;
        };
        let free: Vec<i64> = map.body["seats"]
            .as_array()
            .map(|s| s.iter().filter_map(|x| x["seatNo"].as_i64()).collect())
            .unwrap_or_default();
        let Some(seat) = free.choose(&mut rand::rng()).copied() else {
            return false; // sold out
        };
        let body = serde_json::json!({"scheduleId": schedule, "seatNos": [seat]});
        let Some(held) = timed(
            stats,
            "reserve",
            api.send(Method::POST, "/reservations", Some(bearer), Some(body), &headers),
        )
        .await
        else {
            return false;
        };
        if held.body["code"] == "SOLD_OUT" {
            outcome.sold_out_admitted.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if held.body["status"] != "HELD" {
            continue; // someone was faster; try another seat
        }
        let Ok(id) = id_of(&held) else { return false };
        if let Some(paid) = timed(
            stats,
            "pay",
            api.send(Method::POST, &format!("/reservations/{id}/payment"), Some(bearer), None, &headers),
        )
        .await
            && paid.body["status"] == "CONFIRMED"
        {
            outcome.confirmed.fetch_add(1, Ordering::Relaxed);
            *outcome.last_confirmed.lock().unwrap() = Some(Instant::now());
            return true;
        }
        return false;
    }
    false
}

/// Seats of the throughput scenario, handed out one per attempt.
struct SeatSupply {
    seats: Vec<(ScheduleId, i32)>,
    next: AtomicU64,
}

impl SeatSupply {
    /// Every seat of `schedules` (50 each), seat by seat across the schedules, so that one
    /// user's next attempt is of another schedule (a user may have one live reservation of a
    /// schedule, and four of its seats).
    fn across(schedules: &[ScheduleId]) -> Arc<Self> {
        let seats = (1..=50).flat_map(|n| schedules.iter().map(move |s| (*s, n))).collect();
        Arc::new(Self { seats, next: AtomicU64::new(0) })
    }

    fn take(&self) -> Option<(ScheduleId, i32)> {
        self.seats.get(self.next.fetch_add(1, Ordering::Relaxed) as usize).copied()
    }

    fn left(&self) -> usize {
        self.seats.len().saturating_sub(self.next.load(Ordering::Relaxed) as usize)
    }
}

async fn throughput(seconds: u64) {
    let sys = start(
        &[("TICKETING_DEV_SKIP_QUEUE_TOKEN", "true"), UNLIMITED[0], UNLIMITED[1], UNLIMITED[2]],
        &[("TICKETING_DATABASE_MAX_CONNECTIONS", "40")],
    )
    .await;
    let api = &sys.api;
    let env_n =
        |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    // `LOAD_SCHEDULES`: enough seats for long steps at high rates (each holds one seat).
    let schedules_needed = env_n("LOAD_SCHEDULES", 800);
    println!(
        "throughput: {seconds} s measured per step after 1 s of warm-up, one seat per reservation on \
         {schedules_needed} schedules of 50 (no contention), queue guard bypassed"
    );
    let schedules: Vec<ScheduleId> = futures::stream::iter(0..schedules_needed)
        .map(|_| async { api.schedule(50, 1_000).await.unwrap().1 })
        .buffer_unordered(16)
        .collect()
        .await;
    let supply = SeatSupply::across(&schedules);
    // Full sagas first: the holds ramp leaves its seats held, and cancels them at the end.
    let held = Mutex::new(Vec::new());
    // `LOAD_RAMP=sagas|holds` runs one ramp; `LOAD_CONCURRENCY` starts it there (one fixed step
    // with `LOAD_STEPS=1`): for profiling a steady load.
    let ramps: &[bool] = match std::env::var("LOAD_RAMP").as_deref() {
        Ok("sagas") => &[true],
        Ok("holds") => &[false],
        _ => &[true, false],
    };
    // `LOAD_RATE` makes every step open-loop at that many attempts per second.
    let rate = std::env::var("LOAD_RATE").ok().and_then(|v| v.parse::<f64>().ok()).filter(|r| *r > 0.0);
    for &pay in ramps {
        println!(
            "{}",
            if pay { "full sagas (reserve -> HELD, pay -> CONFIRMED):" } else { "holds (reserve -> HELD):" }
        );
        let mut knee = None;
        let mut concurrency = env_n("LOAD_CONCURRENCY", 8);
        let mut steps = env_n("LOAD_STEPS", usize::MAX);
        while concurrency <= 1024 && supply.left() > 0 && steps > 0 {
            steps -= 1;
            let p99 = step(api, &supply, concurrency, rate, seconds, pay, &held).await;
            if supply.left() == 0 {
                println!("  the seats ran out during this step: its rate is too low (raise LOAD_SCHEDULES)");
            }
            if p99 > 100.0 {
                knee = Some(concurrency);
                break;
            }
            concurrency *= 2;
        }
        match knee {
            Some(c) => println!("  knee: reserve -> HELD p99 passed 100 ms at concurrency {c}"),
            None => println!("  knee: not reached (p99 stayed under 100 ms, or the seats or steps ran out)"),
        }
    }
    cancel_all(api, held.into_inner().unwrap()).await;
    sys.check().await;
}

/// Cancels the reservations the holds steps left HELD.
async fn cancel_all(api: &Api, held: Vec<(UserId, ReservationId)>) {
    println!("  cancelling the {} reservations the holds left HELD", held.len());
    futures::stream::iter(held)
        .map(|(user, id): (UserId, ReservationId)| async move {
            let path = format!("/reservations/{id}");
            api.send(Method::DELETE, &path, Some(&api.token(user)), None, &[]).await.unwrap();
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
}

/// One step of the throughput ramp: `concurrency` users reserve (and with `pay`, pay for) one
/// seat after another for 1 s of warm-up plus `seconds`; only what starts after the warm-up
/// counts. With `rate` (attempts per second) the step is open-loop instead: an attempt starts
/// on schedule whether or not the earlier ones are answered (the users take turns), and its
/// reserve -> HELD latency counts from when it was due. Reservations left HELD go to `held`.
/// Prints the step and answers its reserve -> HELD p99 in ms.
async fn step(
    api: &Api,
    supply: &SeatSupply,
    concurrency: usize,
    rate: Option<f64>,
    seconds: u64,
    pay: bool,
    held: &Mutex<Vec<(UserId, ReservationId)>>,
) -> f64 {
    let users: Vec<UserId> = (0..concurrency.max(1)).map(|_| UserId::new()).collect();
    if pay {
        charge_all(api, &users, 10_000_000).await;
    }
    let authorizations: Vec<String> = users.iter().map(|u| format!("Bearer {}", api.token(*u))).collect();
    let keyed = std::env::var("LOAD_KEYED").is_ok_and(|v| v == "1");
    // The lean client (`e2e::wire`): the load tool shares the two cores with what it measures.
    let pool = wire::Pool::new(api.base.trim_start_matches("http://"));
    // Open loop: reserve -> HELD latency by the second the attempt was due in, to see whether a
    // tail is spread over the step or comes in bursts (none for a closed loop).
    let by_second: Vec<Mutex<Histogram<u64>>> =
        (0..if rate.is_some() { seconds } else { 0 }).map(|_| Mutex::new(latencies())).collect();
    let stats = Stats::default();
    let (holds, sagas) = (AtomicU64::new(0), AtomicU64::new(0));
    let measured_from = Instant::now() + Duration::from_secs(1);
    let deadline = measured_from + Duration::from_secs(seconds);
    let scratch = Stats::default();
    let cpu = tokio::spawn(async move {
        tokio::time::sleep_until(measured_from.into()).await;
        let from = Snapshot::now();
        tokio::time::sleep_until(deadline.into()).await;
        from.until(&Snapshot::now())
    });
    // One reservation by user `u` (and with `pay`, its payment), due at `due` in an open-loop
    // step; false once the seats have run out.
    let attempt = |u: usize, due: Option<Instant>| {
        let (stats, scratch, holds, sagas, users, authorizations, pool, by_second) =
            (&stats, &scratch, &holds, &sagas, &users, &authorizations, &pool, &by_second);
        let key = keyed.then(|| uuid::Uuid::new_v4().to_string());
        async move {
            let measured = due.unwrap_or_else(Instant::now) >= measured_from;
            let stats = if measured { stats } else { scratch };
            let Some((schedule, seat)) = supply.take() else { return false };
            // Holds stay live: each is a new user's. A saga's user has a funded wallet; its attempts
            // are of different schedules, the seats being handed out schedule after schedule.
            let (user, fresh) = if pay {
                (users[u], None)
            } else {
                let user = UserId::new();
                (user, Some(format!("Bearer {}", api.token(user))))
            };
            let authorization = fresh.as_deref().unwrap_or(&authorizations[u]);
            let mut headers = vec![("authorization", authorization), ("prefer", "wait=10")];
            if let Some(key) = &key {
                headers.push(("idempotency-key", key.as_str()));
            }
            let body = serde_json::json!({"scheduleId": schedule, "seatNos": [seat]});
            let reserve = lean(pool, Method::POST, "/reservations", &headers, Some(body));
            let Some(answer) = timed_since(stats, "reserve -> HELD", due, reserve).await else { return true };
            if let Some(due) = due
                && let Some(second) = due.checked_duration_since(measured_from)
                && let Some(h) = by_second.get(second.as_secs() as usize)
            {
                record_latency(&mut h.lock().unwrap(), due.elapsed());
            }
            if answer.body["status"] != "HELD" {
                return true;
            }
            if measured {
                holds.fetch_add(1, Ordering::Relaxed);
            }
            let Ok(id) = id_of(&answer) else { return true };
            if !pay {
                held.lock().unwrap().push((user, id));
                return true;
            }
            let path = format!("/reservations/{id}/payment");
            let paying = key.as_ref().map(|k| format!("{k}-pay"));
            let mut headers = headers[..2].to_vec();
            if let Some(key) = &paying {
                headers.push(("idempotency-key", key.as_str()));
            }
            let payment = lean(pool, Method::POST, &path, &headers, None);
            if let Some(paid) = timed(stats, "pay -> CONFIRMED", payment).await
                && paid.body["status"] == "CONFIRMED"
                && measured
            {
                sagas.fetch_add(1, Ordering::Relaxed);
            }
            true
        }
    };
    match rate {
        None => {
            let attempt = &attempt;
            let worker =
                |u: usize| async move { while Instant::now() < deadline && attempt(u, None).await {} };
            futures::future::join_all((0..users.len()).map(worker)).await;
        }
        Some(rate) => {
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            // Attempts a late timer missed start at once: the offered rate stays the rate.
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut running = futures::stream::FuturesUnordered::new();
            let mut n = 0usize;
            loop {
                tokio::select! {
                    due = ticks.tick() => {
                        let due = due.into_std();
                        if due >= deadline || supply.left() == 0 {
                            break;
                        }
                        running.push(attempt(n % users.len(), Some(due)));
                        n += 1;
                    }
                    Some(_) = running.next(), if !running.is_empty() => {}
                }
            }
            while running.next().await.is_some() {}
        }
    }
    let cpu = cpu.await.unwrap();
    let elapsed = Duration::from_secs(seconds);
    let p99 = stats
        .steps
        .lock()
        .unwrap()
        .get("reserve -> HELD")
        .map(|h| h.value_at_quantile(0.99) as f64 / 1000.0)
        .unwrap_or(0.0);
    let per_s = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    let load = match rate {
        None => format!("concurrency {concurrency:>4}"),
        Some(rate) => format!("offered {rate:.0}/s by {concurrency} users"),
    };
    if pay {
        println!(
            "  {load}: {:>6.0} sagas/s ({:>6.0} holds/s)  reserve->HELD p99 {p99:>6.1} ms",
            per_s(&sagas),
            per_s(&holds)
        );
    } else {
        println!("  {load}: {:>6.0} holds/s  reserve->HELD p99 {p99:>6.1} ms", per_s(&holds));
    }
    stats.print(elapsed);
    if rate.is_some() {
        let p99s: Vec<String> = by_second
            .iter()
            .map(|h| format!("{:.0}", h.lock().unwrap().value_at_quantile(0.99) as f64 / 1000.0))
            .collect();
        println!("  reserve -> HELD p99 by second (ms): {}", p99s.join(" "));
    }
    let (ops, what) = if pay { (&sagas, "saga") } else { (&holds, "hold") };
    println!("  {}", cpu.per_op(ops.load(Ordering::Relaxed), what));
    p99
}

/// Event streams `waiting-room` holds open at once (`LOAD_STREAMS` to change).
const STREAMS: usize = 20_000;

/// Streams one process holds at most: the open-file limit here is 20,000 per process and cannot
/// be raised, and each end of a stream is a file besides the process's other connections. More
/// streams are spread over processes, as over replicas: a queue process per share on the server
/// (`ticketing serve queue` beside `ticketing up`), and on the client a `load stream-holder`
/// per share beside this one.
const STREAMS_PER_PROCESS: usize = 10_000;

/// Users who leave the line while the streams are open, so that everyone behind them moves up.
const LEAVERS: usize = 100;

/// The waiting-room scenario's settings: nobody is admitted, and nothing is rate-limited.
const WAITING_ROOM: [(&str, &str); 5] = [
    ("TICKETING_QUEUE_ADMIT_PER_TICK", "1"),
    ("TICKETING_QUEUE_TICK_MS", "3600000"),
    UNLIMITED[0],
    UNLIMITED[1],
    UNLIMITED[2],
];

async fn waiting_room(users: usize) {
    // Nobody is admitted: every user waits, and every read is a waiting user's position.
    let sys = start(&WAITING_ROOM, &[]).await;
    let api = &sys.api;
    let streams = std::env::var("LOAD_STREAMS").ok().and_then(|v| v.parse().ok()).unwrap_or(STREAMS);
    let streams = streams.min(users.saturating_sub(LEAVERS));
    let shares = streams.div_ceil(STREAMS_PER_PROCESS).max(1);
    println!(
        "waiting-room: {users} users join and read their position; {streams} hold its event stream open \
         ({shares} server and {shares} client processes)"
    );
    // The other shares' servers: queue processes on the same database, NATS and Redis.
    let replicas: Vec<Process> = (1..shares).filter_map(|_| sys.queue_replica(&WAITING_ROOM)).collect();
    // Signed in before the clock starts, as an identity provider would have done.
    let bearers: Vec<String> = (0..users).map(|_| format!("Bearer {}", api.token(UserId::new()))).collect();
    let addr = api.base.trim_start_matches("http://").to_owned();
    println!("  {}", e2e::cpu::memory_line("before"));

    let tokens = joins(&addr, &bearers).await;
    let mut in_line: Vec<(u64, wire::Get)> = bearers
        .into_iter()
        .zip(tokens)
        .filter_map(|(authorization, joined)| {
            let (token, position) = joined?;
            Some((position, wire::Get { path: format!("/queue/tokens/{token}"), authorization }))
        })
        .collect();
    in_line.sort_by_key(|(position, _)| *position);
    let mut gets: Vec<wire::Get> = in_line.into_iter().map(|(_, get)| get).collect();
    position_reads(&addr, gets.clone()).await;
    // The first in line leave while the next ones watch: everyone behind them moves up.
    let leavers: Vec<wire::Get> = gets.drain(..LEAVERS.min(gets.len())).collect();
    gets.truncate(streams);
    let servers: Vec<String> = std::iter::once(addr.clone())
        .chain(replicas.iter().map(|r| r.url.trim_start_matches("http://").to_owned()))
        .collect();
    event_streams(&servers, shares, gets, leavers).await;
    drop(replicas);
    sys.check().await;
}

/// Every user joins the global line (over `LOAD_CONNECTIONS` connections); their tokens and
/// places, in the order of `bearers`. Prints joins/s, latency, the CPU per join and Redis's
/// memory per user.
async fn joins(addr: &str, bearers: &[String]) -> Vec<Option<(String, u64)>> {
    let stats = Arc::new(Stats::default());
    let pool = &wire::Pool::new(addr);
    let redis_before = redis_memory();
    let started = Instant::now();
    let cpu = Snapshot::now();
    let tokens: Vec<Option<(String, u64)>> = futures::stream::iter(bearers)
        .map(|bearer| {
            let stats = stats.clone();
            async move {
                let auth = [("authorization", bearer.as_str())];
                let a = timed(&stats, "join", lean(pool, Method::POST, "/queue/tokens", &auth, None)).await?;
                Some((a.body["token"].as_str()?.to_owned(), a.body["position"].as_u64()?))
            }
        })
        // In order: each token belongs to the bearer at its place.
        .buffered(stats.inflight.available_permits())
        .collect()
        .await;
    let elapsed = started.elapsed();
    let cpu = cpu.until(&Snapshot::now());
    let joined = tokens.iter().flatten().count();
    println!(
        "  {joined} joins in {:.1} s = {:.0} joins/s",
        elapsed.as_secs_f64(),
        joined as f64 / elapsed.as_secs_f64()
    );
    stats.print(elapsed);
    println!("  {}", cpu.per_op(joined as u64 / 1000, "1000 joins"));
    let grown = redis_memory().saturating_sub(redis_before);
    println!(
        "  Redis grew {} MiB: {:.0} bytes per waiting user",
        grown / (1 << 20),
        grown as f64 / joined.max(1) as f64
    );
    tokens
}

/// Redis's memory (its PSS), in bytes.
fn redis_memory() -> u64 {
    e2e::cpu::memory().get("redis-server").copied().unwrap_or(0)
}

/// Every waiting user reads its position once, over 64 keep-alive connections with the lean
/// client (so that the client's own work per read is not what sets the rate).
async fn position_reads(addr: &str, gets: Vec<wire::Get>) {
    let n = gets.len();
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let cpu = Snapshot::now();
    let recorded = stats.clone();
    let sent = wire::get_all(addr, gets, 64, move |outcome| match outcome {
        wire::Outcome::Answered { status, took } => {
            recorded.record("position read", took);
            if status >= 400 {
                recorded.error(format!("position read {status}"));
            }
        }
        wire::Outcome::Failed(e) => recorded.error(format!("position read transport: {e}")),
    })
    .await;
    if let Err(e) = sent {
        stats.error(format!("position read client: {e}"));
    }
    let elapsed = started.elapsed();
    let cpu = cpu.until(&Snapshot::now());
    println!(
        "  {n} position reads in {:.2} s = {:.0} reads/s",
        elapsed.as_secs_f64(),
        n as f64 / elapsed.as_secs_f64()
    );
    stats.print(elapsed);
    println!("  {}", cpu.per_op(n as u64 / 1000, "1000 reads"));
}

/// How far each event stream got.
#[derive(Default)]
struct Streams {
    /// Streams that answered their first `token` event, and those that failed.
    open: AtomicU64,
    failed: Mutex<BTreeMap<String, u64>>,
    /// Streams that sent a second event (the position moved), and how long after the leavers left.
    moved: AtomicU64,
    moved_after: Mutex<Option<Histogram<u64>>>,
    left_at: Mutex<Option<Instant>>,
    /// Streams this process set out to open.
    started: AtomicU64,
}

/// Opens one event stream per get (256 opening at once per process), each reading its events
/// until the end: share 0 in this process against `servers[0]`, each other share `j` in a
/// `load stream-holder` process against `servers[j]` (or the last server, when there are fewer).
/// Once all are open, the `leavers` leave the line, and every stream behind them should say
/// within a position refresh that it moved up. Prints the time to open them, the memory each
/// costs the server, the CPU of holding them, and how soon they moved.
async fn event_streams(servers: &[String], shares: usize, gets: Vec<wire::Get>, leavers: Vec<wire::Get>) {
    let n = gets.len();
    let server = |j: usize| servers[j.min(servers.len() - 1)].as_str();
    let mut parts: Vec<Vec<wire::Get>> = vec![Vec::new(); shares.max(1)];
    for (i, get) in gets.into_iter().enumerate() {
        parts[i % shares.max(1)].push(get);
    }
    let mine = parts.remove(0);
    let before = e2e::cpu::memory();
    let started = Instant::now();
    let mut holders = Vec::new();
    for (j, part) in parts.into_iter().enumerate() {
        holders.push(Holder::start(server(j + 1), &part).await.expect("start a stream holder"));
    }
    let state = Arc::new(Streams { moved_after: Mutex::new(Some(latencies())), ..Streams::default() });
    let tasks = hold_streams(server(0), mine, &state);
    let mut open = state.open_all(Duration::from_secs(300)).await;
    for holder in &mut holders {
        open += holder.opened().await.unwrap_or_else(|e| {
            state.fail(format!("stream holder: {e}"));
            0
        });
    }
    println!(
        "  {open} event streams open in {:.1} s (each answered its first event)",
        started.elapsed().as_secs_f64()
    );
    let after = e2e::cpu::memory();
    let grown =
        |p: &str| after.get(p).copied().unwrap_or(0).saturating_sub(before.get(p).copied().unwrap_or(0));
    println!(
        "  memory per open stream: server {:.1} KiB, Redis {:.2} KiB, client {:.1} KiB",
        grown("ticketing") as f64 / 1024.0 / open.max(1) as f64,
        grown("redis-server") as f64 / 1024.0 / open.max(1) as f64,
        grown("load") as f64 / 1024.0 / open.max(1) as f64,
    );
    println!("  {}", e2e::cpu::memory_line("with the streams open"));

    // The first in line leave; every open stream is behind them.
    let cpu = Snapshot::now();
    let held = Instant::now();
    *state.left_at.lock().unwrap() = Some(Instant::now());
    for holder in &mut holders {
        if let Err(e) = holder.left().await {
            state.fail(format!("stream holder: {e}"));
        }
    }
    let pool = wire::Pool::new(server(0));
    for get in &leavers {
        let auth = [("authorization", get.authorization.as_str())];
        if let Ok((status, _)) = pool.send(Method::DELETE, &get.path, &auth, None).await
            && status >= 300
        {
            state.fail(format!("leave {status}"));
        }
    }
    let mut moved = state.moved_all(Duration::from_secs(15)).await;
    for holder in holders {
        match holder.finish().await {
            Ok(report) => {
                moved += report.moved;
                if let Some(h) = state.moved_after.lock().unwrap().as_mut() {
                    for (value, count) in report.latencies {
                        let _ = h.record_n(value, count);
                    }
                }
                for (kind, count) in report.failed {
                    *state.failed.lock().unwrap().entry(kind).or_default() += count;
                }
            }
            Err(e) => state.fail(format!("stream holder: {e}")),
        }
    }
    let h = state.moved_after.lock().unwrap().take().unwrap_or_else(latencies);
    let s = |q: f64| h.value_at_quantile(q) as f64 / 1e6;
    println!(
        "  {LEAVERS} users ahead left: {moved} of {open} streams told their new place, p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        s(0.5),
        s(0.99),
        h.max() as f64 / 1e6
    );
    let cpu = cpu.until(&Snapshot::now());
    println!(
        "  holding them for {:.1} s: {}",
        held.elapsed().as_secs_f64(),
        cpu.per_op(held.elapsed().as_secs().max(1), "second")
    );
    for task in tasks {
        task.abort();
    }
    let failed = state.failed.lock().unwrap();
    if failed.is_empty() && moved == open && open == n as u64 {
        println!("  stream errors: none");
    }
    for (kind, count) in failed.iter() {
        println!("  stream error {kind}: {count}");
    }
    if moved < open {
        println!("  stream error: {} streams never told their new place", open - moved);
    }
}

impl Streams {
    fn fail(&self, kind: String) {
        *self.failed.lock().unwrap().entry(kind).or_default() += 1;
    }

    /// Waits, bounded, until every stream of this process opened or failed; how many opened.
    async fn open_all(&self, bound: Duration) -> u64 {
        let (started, n) = (Instant::now(), self.started.load(Ordering::Relaxed));
        let settled =
            || self.open.load(Ordering::Relaxed) + self.failed.lock().unwrap().values().sum::<u64>();
        while settled() < n && started.elapsed() < bound {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.open.load(Ordering::Relaxed)
    }

    /// Waits, bounded, until every open stream of this process moved; how many did.
    async fn moved_all(&self, bound: Duration) -> u64 {
        let started = Instant::now();
        while self.moved.load(Ordering::Relaxed) < self.open.load(Ordering::Relaxed)
            && started.elapsed() < bound
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.moved.load(Ordering::Relaxed)
    }
}

/// Opens the streams of `gets` against `addr` (256 opening at once), counted in `state`.
fn hold_streams(addr: &str, gets: Vec<wire::Get>, state: &Arc<Streams>) -> Vec<tokio::task::JoinHandle<()>> {
    let opening = Arc::new(tokio::sync::Semaphore::new(256));
    state.started.fetch_add(gets.len() as u64, Ordering::Relaxed);
    gets.into_iter()
        .map(|get| {
            let (state, opening, addr) = (state.clone(), opening.clone(), addr.to_owned());
            tokio::spawn(async move {
                let permit = opening.acquire_owned().await.ok();
                if let Err(e) = watch(&addr, &get, &state, permit).await {
                    state.fail(e.to_string());
                }
            })
        })
        .collect()
}

/// What a `load stream-holder` process reports once its streams were told to move.
struct HolderReport {
    moved: u64,
    /// The moved streams' latencies (µs) and how many had each.
    latencies: Vec<(u64, u64)>,
    failed: Vec<(String, u64)>,
}

/// A `load stream-holder` process: given its gets on its standard input (a line each,
/// `path<TAB>authorization`, then an empty line), it opens their streams against its address
/// and prints `open <n>`; given a line `left`, it times each stream's next place from then, and
/// prints `moved <n>`, a line `latency <µs> <count>` per value and `failed <count> <kind>` per
/// kind of failure, then `end`.
struct Holder {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl Holder {
    async fn start(addr: &str, gets: &[wire::Get]) -> anyhow::Result<Self> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["stream-holder", addr])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let mut stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut listed = String::with_capacity(gets.len() * 200);
        for get in gets {
            listed.push_str(&format!("{}\t{}\n", get.path, get.authorization));
        }
        listed.push('\n');
        stdin.write_all(listed.as_bytes()).await?;
        stdin.flush().await?;
        Ok(Self { child, stdin, lines: tokio::io::BufReader::new(stdout).lines() })
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        self.lines.next_line().await?.context("the stream holder ended early")
    }

    /// How many of its streams opened (waits for its `open` line).
    async fn opened(&mut self) -> anyhow::Result<u64> {
        let line = self.line().await?;
        Ok(line.strip_prefix("open ").context("expected `open <n>`")?.parse()?)
    }

    async fn left(&mut self) -> anyhow::Result<()> {
        use tokio::io::AsyncWriteExt;
        self.stdin.write_all(b"left\n").await?;
        Ok(self.stdin.flush().await?)
    }

    async fn finish(mut self) -> anyhow::Result<HolderReport> {
        let mut report = HolderReport { moved: 0, latencies: Vec::new(), failed: Vec::new() };
        loop {
            let line = self.line().await?;
            let mut words = line.splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("moved"), Some(n), None) => report.moved = n.parse()?,
                (Some("latency"), Some(v), Some(c)) => report.latencies.push((v.parse()?, c.parse()?)),
                (Some("failed"), Some(c), Some(kind)) => report.failed.push((kind.to_owned(), c.parse()?)),
                (Some("end"), None, None) => break,
                _ => anyhow::bail!("unexpected line {line:?}"),
            }
        }
        let _ = self.child.wait().await;
        Ok(report)
    }
}

/// `load stream-holder <addr>`: the other side of [`Holder`].
async fn stream_holder(addr: &str) -> anyhow::Result<()> {
    use tokio::io::AsyncBufReadExt;
    let mut input = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut gets = Vec::new();
    while let Some(line) = input.next_line().await? {
        let Some((path, authorization)) = line.split_once('\t') else { break };
        gets.push(wire::Get { path: path.to_owned(), authorization: authorization.to_owned() });
    }
    let state = Arc::new(Streams { moved_after: Mutex::new(Some(latencies())), ..Streams::default() });
    let tasks = hold_streams(addr, gets, &state);
    println!("open {}", state.open_all(Duration::from_secs(300)).await);
    let said = input.next_line().await?;
    anyhow::ensure!(said.as_deref() == Some("left"), "expected `left`, got {said:?}");
    *state.left_at.lock().unwrap() = Some(Instant::now());
    println!("moved {}", state.moved_all(Duration::from_secs(15)).await);
    if let Some(h) = state.moved_after.lock().unwrap().as_ref() {
        for v in h.iter_recorded() {
            println!("latency {} {}", v.value_iterated_to(), v.count_at_value());
        }
    }
    for (kind, count) in state.failed.lock().unwrap().iter() {
        println!("failed {count} {}", kind.replace('\n', " "));
    }
    println!("end");
    for task in tasks {
        task.abort();
    }
    Ok(())
}

/// Reads the event stream of the token `get` reads: counts it open at its first `token` event (and gives the
/// opening permit back), and moved at its second.
async fn watch(
    addr: &str,
    get: &wire::Get,
    state: &Streams,
    mut permit: Option<tokio::sync::OwnedSemaphorePermit>,
) -> anyhow::Result<()> {
    use http_body_util::BodyExt;
    let events_of =
        wire::Get { path: format!("{}/events", get.path), authorization: get.authorization.clone() };
    let (status, mut body) = wire::open_stream(addr, &events_of).await?;
    anyhow::ensure!(status == 200, "status {status}");
    let (mut buffer, mut events) = (String::new(), 0);
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else { continue };
        buffer.push_str(&String::from_utf8_lossy(&data));
        while let Some(end) = buffer.find("\n\n") {
            if buffer[..end].lines().any(|l| l == "event: token") {
                events += 1;
                if events == 1 {
                    state.open.fetch_add(1, Ordering::Relaxed);
                    permit.take();
                } else if events == 2 {
                    state.moved.fetch_add(1, Ordering::Relaxed);
                    if let Some(left) = *state.left_at.lock().unwrap()
                        && let Some(h) = state.moved_after.lock().unwrap().as_mut()
                    {
                        record_latency(h, left.elapsed());
                    }
                }
            }
            buffer.drain(..end + 2);
        }
    }
    anyhow::bail!("ended after {events} events: {:?}", buffer.chars().take(120).collect::<String>())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n = |default: usize| args.get(1).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("flash-sale") => flash_sale(n(10_000)).await,
        Some("throughput") => throughput(n(10) as u64).await,
        Some("waiting-room") => waiting_room(n(1_000_000)).await,
        Some("soak") => soak::soak(n(60) as u64).await,
        Some("growth") => growth::growth(n(10) as u64).await,
        Some("stream-holder") => {
            let addr = args.get(1).map(String::as_str).unwrap_or_default();
            if let Err(e) = stream_holder(addr).await {
                eprintln!("stream-holder: {e:#}");
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!(
                "usage: load flash-sale [users] | throughput [seconds per step] | waiting-room [users] | soak [minutes] \
                 | growth [seconds per step]"
            );
            std::process::exit(2);
        }
    }
}
