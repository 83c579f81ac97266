//! Benchmark of the event backbone on this machine (figures, not a test):
//!
//! 1. relay throughput: events/s from committed outbox rows to JetStream PubAck, one relay and
//!    two relays draining the same outbox;
//! 2. commit-to-consume latency: a producer commits one event per transaction at a steady rate
//!    while the relay and an inbox consumer run; p50/p90/p99/max from commit to handler.
//!
//! `cargo run --release -p messaging --example backbone -- [events] [rate/s] [seconds]`
//! (defaults 50000, 1000, 10). Runs in an isolated test environment (own database and prefix).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, reason = "a benchmark binary")]

use contracts::{Envelope, ReservationId, ScheduleId, SeatNo, SeatsReleased, Stream};
use hdrhistogram::Histogram;
use messaging::{ConsumerSpec, HandleError, Handler, Incoming, Outbox, PgInbox, Relay, run_consumer};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use testkit::TestEnv;

const SCHEMA: &str = "bench";

fn event() -> Envelope<SeatsReleased> {
    let reservation_id = ReservationId::new();
    Envelope::new(
        "bench",
        reservation_id,
        SeatsReleased {
            reservation_id,
            schedule_id: ScheduleId::new(),
            seat_nos: vec![SeatNo(1), SeatNo(2)],
        },
    )
}

async fn fill(env: &TestEnv, outbox: &Outbox, n: usize) {
    for chunk in 0..n.div_ceil(500) {
        let count = 500.min(n - chunk * 500);
        let events: Vec<_> = (0..count).map(|_| event()).collect();
        let txn = env.db.begin().await.unwrap();
        outbox.push_all(&txn, &events).await.unwrap();
        txn.commit().await.unwrap();
    }
}

async fn relay_throughput(env: &TestEnv, outbox: &Outbox, n: usize, relays: usize) -> f64 {
    fill(env, outbox, n).await;
    let before = env.stream_messages(Stream::Seat).await.unwrap();
    let started = Instant::now();
    let drains = (0..relays).map(|_| {
        let relay = Relay::new(&env.db, env.bus.clone(), SCHEMA);
        async move { relay.drain().await.unwrap() }
    });
    let published: u64 = futures::future::join_all(drains).await.into_iter().sum();
    let elapsed = started.elapsed();
    assert_eq!(published as usize, n);
    assert_eq!(env.stream_messages(Stream::Seat).await.unwrap() - before, n as u64);
    n as f64 / elapsed.as_secs_f64()
}

/// Records commit-to-handle latency of every event the producer registered.
struct Clock {
    committed: Arc<Mutex<HashMap<uuid::Uuid, Instant>>>,
    latencies: Arc<Mutex<Histogram<u64>>>,
}

impl Handler for Clock {
    async fn handle(&self, _txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let now = Instant::now();
        if let Some(at) = self.committed.lock().unwrap().remove(&msg.envelope.id.0) {
            let micros = u64::try_from(now.duration_since(at).as_micros()).unwrap_or(u64::MAX);
            self.latencies.lock().unwrap().record(micros.max(1)).unwrap();
        }
        Ok(())
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(50_000) as usize;
    let rate = args.get(1).copied().unwrap_or(1_000);
    let secs = args.get(2).copied().unwrap_or(10);

    let env = TestEnv::new().await.unwrap();
    env.messaging_schema(SCHEMA).await.unwrap();
    let outbox = Outbox::new(SCHEMA, env.ns.clone());

    println!("relay throughput, {n} committed events (batches of 500, 256 acks in flight):");
    let one = relay_throughput(&env, &outbox, n, 1).await;
    println!("  1 relay:  {one:>9.0} events/s commit -> PubAck");
    let two = relay_throughput(&env, &outbox, n, 2).await;
    println!("  2 relays: {two:>9.0} events/s commit -> PubAck");

    let committed = Arc::new(Mutex::new(HashMap::new()));
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap()));
    let clock = Clock { committed: committed.clone(), latencies: latencies.clone() };
    let mut spec = ConsumerSpec::new("bench", Stream::Seat, None).unwrap();
    spec.config.deliver_policy = async_nats::jetstream::consumer::DeliverPolicy::New;
    tokio::spawn(run_consumer(
        env.bus.clone(),
        spec,
        Arc::new(PgInbox::new(env.db.clone(), SCHEMA, clock)),
        env.shutdown.clone(),
    ));
    tokio::spawn(Relay::new(&env.db, env.bus.clone(), SCHEMA).run(env.shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    println!("commit-to-consume latency, {rate} events/s for {secs} s (one event per transaction):");
    let total = rate * secs;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let producers = Arc::new(tokio::sync::Semaphore::new(16));
    let started = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let permit = producers.clone().acquire_owned().await.unwrap();
        let (db, outbox, committed) = (env.db.clone(), outbox.clone(), committed.clone());
        tokio::spawn(async move {
            let e = event();
            let txn = db.begin().await.unwrap();
            outbox.push(&txn, &e).await.unwrap();
            // Register before commit so the consumer can never see the event first.
            committed.lock().unwrap().insert(e.id.0, Instant::now());
            outbox.commit(txn).await.unwrap();
            committed.lock().unwrap().insert(e.id.0, Instant::now());
            drop(permit);
        });
    }
    let produced_in = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(60);
    while latencies.lock().unwrap().len() < total && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = latencies.lock().unwrap().clone();
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "  offered {:.0} events/s; consumed {}/{}: p50 {:.1} ms  p90 {:.1} ms  p99 {:.1} ms  max {:.1} ms",
        total as f64 / produced_in.as_secs_f64(),
        h.len(),
        total,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        h.max() as f64 / 1000.0
    );
    env.shutdown.cancel();
}
