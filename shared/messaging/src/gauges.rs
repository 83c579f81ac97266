//! The backbone's gauges, for an operator to see whether anything falls behind. Every
//! [`EVERY`], a process samples what it runs:
//!
//! - `outbox_backlog{schema}` and `outbox_oldest_age_seconds{schema}`: rows its relays have not
//!   published yet, and how long the oldest has waited;
//! - `jetstream_consumer_pending{consumer}` and `jetstream_consumer_ack_pending{consumer}`:
//!   messages of each of its consumers not delivered yet, and delivered but not acknowledged;
//! - `dlq_messages{service}`: the dead letters kept for each of its services;
//! - `db_pool_connections{state="in_use"|"idle"}` and `db_pool_max_connections`: its Postgres
//!   pool.
//!
//! Replicas of a service report the same values; dashboards and alerts take their maximum. A
//! sample that fails (NATS or Postgres away) leaves the gauge as it was and is tried again.

use crate::Bus;
use contracts::Stream;
use futures::TryStreamExt;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement};
use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

/// How often the gauges are sampled.
pub const EVERY: Duration = Duration::from_secs(10);

/// Outbox rows counted at most: past that, the backlog reads as this many.
const COUNTED: i64 = 1_000_000;

/// What a process runs, as its relays and consumers start.
#[derive(Clone, Debug, Default)]
struct Watched {
    schemas: BTreeSet<String>,
    /// `(stream, consumer)`, by their names in JetStream.
    consumers: BTreeSet<(String, String)>,
    services: BTreeSet<String>,
}

/// The set a runtime's tasks add to; sampled by [`run`].
#[derive(Clone, Default)]
pub struct Watch(Arc<Mutex<Watched>>);

impl Watch {
    /// Adds the outbox of `schema`.
    pub fn schema(&self, schema: &str) {
        self.with(|w| {
            w.schemas.insert(schema.to_owned());
        });
    }

    /// Adds consumer `name` of `stream` (its name in JetStream), of `service`.
    pub fn consumer(&self, stream: String, name: String, service: &str) {
        self.with(|w| {
            w.consumers.insert((stream, name));
            w.services.insert(service.to_owned());
        });
    }

    fn with(&self, f: impl FnOnce(&mut Watched)) {
        let mut watched = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut watched);
    }

    fn now(&self) -> Watched {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// Samples what `watch` names every [`EVERY`] until `shutdown`.
pub async fn run(db: DatabaseConnection, bus: Bus, watch: Watch, shutdown: CancellationToken) {
    loop {
        sample(&db, &bus, &watch).await;
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// One sample of every gauge of what `watch` names.
pub async fn sample(db: &DatabaseConnection, bus: &Bus, watch: &Watch) {
    let watched = watch.now();
    let pool = db.get_postgres_connection_pool();
    let (size, idle) = (pool.size() as f64, pool.num_idle() as f64);
    metrics::gauge!("db_pool_connections", "state" => "in_use").set((size - idle).max(0.0));
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("db_pool_max_connections").set(f64::from(pool.options().get_max_connections()));
    for schema in &watched.schemas {
        match outbox(db, schema).await {
            Ok((backlog, age)) => {
                metrics::gauge!("outbox_backlog", "schema" => schema.clone()).set(backlog as f64);
                metrics::gauge!("outbox_oldest_age_seconds", "schema" => schema.clone()).set(age);
            }
            Err(e) => tracing::debug!(%schema, error = %e, "cannot sample the outbox"),
        }
    }
    for (stream, name) in &watched.consumers {
        let info = async {
            let stream = bus.js.get_stream_no_info(stream).await?;
            Ok::<_, async_nats::Error>(stream.consumer_info(name).await?)
        };
        match info.await {
            Ok(info) => {
                metrics::gauge!("jetstream_consumer_pending", "consumer" => name.clone())
                    .set(info.num_pending as f64);
                metrics::gauge!("jetstream_consumer_ack_pending", "consumer" => name.clone())
                    .set(info.num_ack_pending as f64);
            }
            Err(e) => tracing::debug!(consumer = %name, error = %e, "cannot sample the consumer"),
        }
    }
    if watched.services.is_empty() {
        return;
    }
    match dead_letters(bus, &watched.services).await {
        Ok(counts) => {
            for (service, n) in counts {
                metrics::gauge!("dlq_messages", "service" => service).set(n as f64);
            }
        }
        Err(e) => tracing::debug!(error = %e, "cannot sample the dead-letter stream"),
    }
}

/// The rows of `<schema>.outbox` (up to [`COUNTED`]) and the age of the oldest, in seconds.
async fn outbox(db: &DatabaseConnection, schema: &str) -> Result<(i64, f64), DbErr> {
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            format!(
                "SELECT count(*) AS backlog, \
                        COALESCE(extract(epoch FROM now() - min(created_at)), 0)::float8 AS age \
                 FROM (SELECT created_at FROM {schema}.outbox ORDER BY seq LIMIT $1) o"
            ),
            [COUNTED.into()],
        ))
        .await?;
    #[derive(sea_orm::FromQueryResult)]
    struct Backlog {
        backlog: i64,
        age: f64,
    }
    let Some(row) = row else { return Ok((0, 0.0)) };
    let Backlog { backlog, age } = sea_orm::FromQueryResult::from_query_result(&row, "")?;
    Ok((backlog, age.max(0.0)))
}

/// The dead letters kept for each of `services`.
async fn dead_letters(
    bus: &Bus,
    services: &BTreeSet<String>,
) -> Result<Vec<(String, usize)>, async_nats::Error> {
    let stream = bus.js.get_stream_no_info(bus.ns.stream(Stream::Dlq)).await?;
    let mut kept: Vec<(String, usize)> = services.iter().map(|s| (s.clone(), 0)).collect();
    let mut subjects = stream.info_with_subjects(bus.ns.dlq_subject("*")).await?;
    while let Some((subject, n)) = subjects.try_next().await? {
        if let Some(k) = kept.iter_mut().find(|(service, _)| bus.ns.dlq_subject(service) == subject) {
            k.1 = n;
        }
    }
    Ok(kept)
}
