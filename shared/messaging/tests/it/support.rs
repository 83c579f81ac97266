//! Shared fixtures: a probe schema with an effect table, a sample event, and a counting handler.

use contracts::{Envelope, Event, ReservationId, ScheduleId, SeatNo, SeatsReleased, Stream};
use messaging::{ConsumerSpec, HandleError, Handler, Incoming, Outbox};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement, TransactionTrait};
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use testkit::TestEnv;

pub const SCHEMA: &str = "probe";

/// A test environment with the `probe` schema (outbox, inbox and an `applied` effect table).
pub async fn env() -> TestEnv {
    let env = TestEnv::new().await.expect("test environment");
    env.messaging_schema(SCHEMA).await.expect("probe schema");
    env.db
        .execute_unprepared("CREATE TABLE probe.applied (event_id uuid NOT NULL, trace_id text NOT NULL)")
        .await
        .expect("effect table");
    env
}

pub fn outbox(env: &TestEnv) -> Outbox {
    Outbox::new(SCHEMA, env.ns.clone())
}

pub fn sample() -> Envelope<SeatsReleased> {
    let reservation_id = ReservationId::new();
    Envelope::new(
        "probe",
        reservation_id,
        SeatsReleased { reservation_id, schedule_id: ScheduleId::new(), seat_nos: vec![SeatNo(7)] },
    )
}

/// A consumer of the SEAT stream that gives up after 3 deliveries and retries fast.
pub fn spec() -> ConsumerSpec {
    let mut spec = ConsumerSpec::new("probe", Stream::Seat, None).expect("spec");
    spec.attempts = 3;
    spec.config.backoff = Vec::new();
    spec.config.ack_wait = Duration::from_secs(5);
    spec.nak_delays = vec![Duration::from_millis(50)];
    spec
}

/// [`spec`] applying up to `batch` arrived messages per transaction, one batch at a time.
pub fn batch_spec(batch: usize) -> ConsumerSpec {
    ConsumerSpec { concurrency: 1, batch, ..spec() }
}

/// [`spec`] handling one message at a time, so messages are applied in stream order.
pub fn ordered_spec() -> ConsumerSpec {
    ConsumerSpec { concurrency: 1, ..spec() }
}

/// How many times the effect of `event_id` was applied.
pub async fn applied(env: &TestEnv, event_id: uuid::Uuid) -> i64 {
    let row = env
        .db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT count(*) AS n FROM probe.applied WHERE event_id = $1",
            [event_id.into()],
        ))
        .await
        .expect("count")
        .expect("row");
    row.try_get("", "n").expect("n")
}

pub async fn outbox_rows(env: &TestEnv) -> i64 {
    let row = env
        .db
        .query_one_raw(Statement::from_string(DbBackend::Postgres, "SELECT count(*) AS n FROM probe.outbox"))
        .await
        .expect("count")
        .expect("row");
    row.try_get("", "n").expect("n")
}

/// Publishes raw bytes to an (unprefixed) subject with the given message id.
pub async fn publish_raw(env: &TestEnv, subject: &str, msg_id: &str, body: Vec<u8>) {
    env.publish_raw(subject, msg_id, body).await.expect("publish");
}

/// Publishes an envelope directly (not through the outbox) with the given message id.
pub async fn publish_event<E: Event>(env: &TestEnv, event: &Envelope<E>, msg_id: &str) {
    publish_raw(
        env,
        &env.ns.partitions().subject(&event.payload),
        msg_id,
        serde_json::to_vec(event).expect("json"),
    )
    .await;
}

/// `event` as a consumer receives it.
pub fn incoming<E: Event>(event: &Envelope<E>, deliveries: u64) -> Incoming {
    Incoming { deliveries, ..Incoming::first_delivery(event).expect("envelope") }
}

/// Commits `n` sample events to the outbox in one transaction.
pub async fn commit_samples(env: &TestEnv, ob: &Outbox, n: usize) {
    let txn = env.db.begin().await.expect("begin");
    let events: Vec<_> = (0..n).map(|_| sample()).collect();
    ob.push_all(&txn, &events).await.expect("push");
    txn.commit().await.expect("commit");
}

/// Records each event it applies (with the trace id it saw); fails the first `fail_first`
/// deliveries of every event, transiently, or every time when `always_fail`.
#[derive(Clone, Default)]
pub struct Recorder {
    pub fail_first: u32,
    pub always_fail: bool,
    /// An event that fails permanently, every time.
    pub poison: Option<uuid::Uuid>,
    /// Writes its effect so that Postgres refuses it (a NULL where the column allows none).
    pub violate: bool,
    pub attempts: Arc<Mutex<HashMap<uuid::Uuid, u32>>>,
}

impl Recorder {
    pub fn attempts(&self, id: uuid::Uuid) -> u32 {
        self.attempts.lock().expect("lock").get(&id).copied().unwrap_or(0)
    }
}

impl Handler for Recorder {
    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let event = msg.decode::<SeatsReleased>()?;
        let attempt = {
            let mut attempts = self.attempts.lock().expect("lock");
            let n = attempts.entry(event.id.0).or_default();
            *n += 1;
            *n
        };
        let trace_id =
            Some(platform::telemetry::trace_id(&tracing::Span::current())).filter(|_| !self.violate);
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO probe.applied (event_id, trace_id) VALUES ($1, $2)",
            [event.id.0.into(), trace_id.into()],
        ))
        .await?;
        if self.poison == Some(event.id.0) {
            return Err(HandleError::Permanent("poisoned".into()));
        }
        if self.always_fail || attempt <= self.fail_first {
            // The insert above is rolled back with the transaction.
            return Err(HandleError::Transient(format!("induced failure on attempt {attempt}")));
        }
        Ok(())
    }
}
