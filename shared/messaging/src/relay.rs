//! The outbox relay: publishes committed outbox rows to JetStream with `Nats-Msg-Id` = event id,
//! and deletes them in the transaction that claimed them, committed once their acks are in. Rows
//! being deleted stay locked (`FOR UPDATE SKIP LOCKED`), so two relays never publish the same row
//! at once, and a relay that dies mid-batch leaves its rows to be published again (a dedup hit,
//! not a duplicate).
//!
//! Each relay keeps one connection of its own and talks to it in the simple query protocol: a
//! batch is two round trips (`BEGIN; EXECUTE claim(..)`, a prepared `DELETE .. RETURNING`, and
//! `COMMIT`) where the pool's extended protocol took four (`BEGIN`, the claim, the delete,
//! `COMMIT`). The connection runs with
//! `synchronous_commit = off`: a delete lost in a crash republishes its rows as dedup hits. The
//! claim is prepared once per connection, so it is planned once, not on every batch.
//! (A lease column instead of the open transaction was tried: 35% less relay throughput and
//! +1.5 ms per hop, from writing every claimed row.)
//!
//! The relay vacuums its outbox itself every [`Relay::vacuum_after`] rows it deleted. An outbox
//! is a queue: every claim walks the index from its oldest entry, through the entries of every
//! row deleted since the table was last vacuumed, and autovacuum visits a database once a
//! minute at most (`autovacuum_naptime`): at 1,000 events per second a claim walked tens of
//! thousands of dead entries before it. A vacuum of the few live rows and their dead
//! neighbours is short, and does not block writers.
//!
//! Writers in the same process wake the relay after their commit ([`crate::Outbox::committed`]);
//! a poll finds the rest.

use crate::{Bus, MessagingError};
use async_nats::{
    HeaderMap,
    jetstream::{
        context::{PublishError, PublishErrorKind},
        message::PublishMessage,
    },
};
use contracts::{HEADER_MSG_ID, HEADER_TRACEPARENT, HEADER_TRACESTATE};
use futures::StreamExt;
use platform::signal::Signal;
use sea_orm::DatabaseConnection;
use sqlx::{Connection, PgConnection, Row as _, postgres::PgConnectOptions};
use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// The least a relay waits after a drain that failed on the database, however soon a commit
/// says the database is back.
pub const RETRY_FLOOR: Duration = Duration::from_millis(200);

/// Publishes one schema's outbox.
#[derive(Clone)]
pub struct Relay {
    options: PgConnectOptions,
    /// The relay's own connection; `None` until first used and after an error (dropping a
    /// connection mid-batch ends its transaction: the rows stay).
    conn: Arc<Mutex<Option<PgConnection>>>,
    bus: Bus,
    schema: String,
    wake: Arc<Signal>,
    /// Rows claimed per transaction.
    pub batch: u32,
    /// Publishes awaiting their ack at once; below the context's `max_ack_inflight`.
    pub window: usize,
    /// How often the outbox is checked when no writer of this process signals.
    pub poll: Duration,
    /// The pause after the first failed drain; it doubles with each failure after it, up to 32
    /// times this.
    pub first_pause: Duration,
    /// Rows deleted after which the relay vacuums the outbox.
    pub vacuum_after: u64,
    /// Rows deleted since the last vacuum.
    deleted: Arc<AtomicU64>,
}

struct Row {
    seq: i64,
    id: String,
    subject: String,
    headers: Vec<(String, String)>,
    body: bytes::Bytes,
}

/// Why a row was not published.
enum Unpublished {
    /// It never will be (larger than the server takes): set aside, with this reason.
    Poison(String),
    /// Worth trying again (NATS away, an ack timed out).
    Failed(MessagingError),
}

impl Relay {
    /// A relay for `<schema>.outbox` (connecting as `db`'s pool does), woken by this process's
    /// [`crate::Outbox`] of the same schema.
    pub fn new(db: &DatabaseConnection, bus: Bus, schema: &str) -> Self {
        let options = (*db.get_postgres_connection_pool().connect_options())
            .clone()
            .options([("synchronous_commit", "off")])
            .application_name(&format!("relay[{schema}]"));
        let wake = crate::outbox::wake_of(&bus.ns, schema);
        Self {
            options,
            conn: Arc::default(),
            bus,
            schema: schema.to_owned(),
            wake,
            batch: 500,
            window: 256,
            poll: Duration::from_millis(500),
            first_pause: Duration::from_millis(200),
            vacuum_after: 2_000,
            deleted: Arc::default(),
        }
    }

    /// Runs until `shutdown`: drains the outbox whenever a writer signals a commit the last
    /// drain may not have seen (or every `poll`), and after errors backs off (bounded) and tries
    /// again. A drain that failed on the database is tried again at the first commit since
    /// (after at least `RETRY_FLOOR`, 200 ms, or the pause if shorter) rather than at the end
    /// of its pause: a commit says the database takes writes again, and the events it wrote wait
    /// for this relay. Logs why it stops.
    pub async fn run(self, shutdown: CancellationToken) {
        let name = format!("relay[{}]", self.schema);
        let mut failures = 0u32;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            // Read before the claim: a commit signalled later may be one the claim missed.
            let seen = self.wake.count();
            match self.drain().await {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    metrics::counter!("outbox_relay_errors_total", "schema" => self.schema.clone())
                        .increment(1);
                    let pause = self.first_pause * 2u32.pow(failures.saturating_sub(1).min(5));
                    tracing::warn!(task = %name, error = %e, ?pause, "publishing the outbox failed; retrying");
                    let database = matches!(e, MessagingError::Db(_) | MessagingError::Sql(_));
                    let back = async {
                        if !database {
                            return std::future::pending().await;
                        }
                        tokio::time::sleep(pause.min(RETRY_FLOOR)).await;
                        self.wake.after(seen).await;
                    };
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => continue,
                        _ = back => continue,
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = self.wake.after(seen) => {}
            }
        }
        tracing::info!(task = %name, "stopped: shutdown requested");
    }

    /// Publishes batches until the outbox is empty (as far as this relay can claim); returns how
    /// many events were published.
    pub async fn drain(&self) -> Result<u64, MessagingError> {
        let mut total = 0u64;
        loop {
            let n = self.publish_batch(true).await?;
            total += n as u64;
            if n < self.batch as usize {
                return Ok(total);
            }
        }
    }

    /// Claims and publishes one batch but never marks it: the same as a relay killed between its
    /// publish acks and its commit. For tests of the dedup path.
    #[doc(hidden)]
    pub async fn publish_batch_then_crash(&self) -> Result<usize, MessagingError> {
        self.publish_batch(false).await
    }

    async fn publish_batch(&self, mark: bool) -> Result<usize, MessagingError> {
        let mut conn = self.conn.lock().await;
        let live = match conn.take() {
            Some(live) => conn.insert(live),
            None => conn.insert(self.connect().await?),
        };
        let outcome = self.publish_on(live, mark).await;
        if outcome.is_err() {
            // Closing the socket rolls the claim back on the server.
            *conn = None;
        }
        outcome
    }

    async fn publish_on(&self, conn: &mut PgConnection, mark: bool) -> Result<usize, MessagingError> {
        let rows = self.claim(conn).await?;
        let count = rows.len();
        if count == 0 {
            sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
            return Ok(0);
        }
        // On a failed publish the connection is dropped: every row stays, and those already
        // acked become dedup hits next time. A row JetStream will never take is set aside
        // instead, so that it does not hold back every row after it.
        let outcomes: Vec<(Row, Result<bool, Unpublished>)> =
            futures::stream::iter(rows.into_iter().map(|row| async move {
                let outcome = self.publish(&row).await;
                (row, outcome)
            }))
            .buffered(self.window)
            .collect()
            .await;
        let mut acks = Vec::with_capacity(count);
        let mut poison = Vec::new();
        for (row, outcome) in outcomes {
            match outcome {
                Ok(duplicate) => acks.push(duplicate),
                Err(Unpublished::Poison(reason)) => poison.push((row, reason)),
                Err(Unpublished::Failed(e)) => return Err(e),
            }
        }
        if !mark {
            sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await?;
            return Ok(count);
        }
        for (row, reason) in &poison {
            self.set_aside(conn, row, reason).await?;
        }
        sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
        self.vacuum_if_due(conn, count as u64).await;
        let duplicates = acks.into_iter().filter(|d| *d).count();
        metrics::counter!("outbox_published_total", "schema" => self.schema.clone()).increment(count as u64);
        if duplicates > 0 {
            metrics::counter!("outbox_duplicate_acks_total", "schema" => self.schema.clone())
                .increment(duplicates as u64);
        }
        Ok(count)
    }

    /// Counts `deleted` rows and, once [`Relay::vacuum_after`] have been, vacuums the outbox
    /// (skipped if another relay vacuums it already). A failed vacuum is only logged: the rows
    /// are published, and the next one will try again.
    async fn vacuum_if_due(&self, conn: &mut PgConnection, deleted: u64) {
        let total = self.deleted.fetch_add(deleted, Ordering::Relaxed) + deleted;
        if total < self.vacuum_after {
            return;
        }
        self.deleted.store(0, Ordering::Relaxed);
        // Without truncating: a queue's last pages are where rows are written, and truncating
        // them waits for (then takes) a lock that stops every writer: 150-280 ms a vacuum
        // against 2 ms without, measured during a run at 1,000 holds/s.
        let sql = format!("VACUUM (SKIP_LOCKED, TRUNCATE OFF, PROCESS_TOAST OFF) {}.outbox", self.schema);
        match sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(conn).await {
            Ok(_) => metrics::counter!("outbox_vacuums_total", "schema" => self.schema.clone()).increment(1),
            Err(e) => tracing::warn!(schema = %self.schema, error = %e, "vacuuming the outbox failed"),
        }
    }

    /// The relay's connection, with its claim prepared: planned once, not on every claim (a
    /// simple-protocol statement is planned each time it runs, and planning the claim cost
    /// about as much as running it).
    async fn connect(&self) -> Result<PgConnection, MessagingError> {
        let mut conn = PgConnection::connect_with(&self.options).await?;
        // The rows are deleted by `ctid` from an array, not joined by `seq`: the join's generic
        // plan hashed a sequential scan of the whole table (dead rows included) into every claim.
        // A locked row keeps its `ctid`.
        let prepare = format!(
            "PREPARE claim(int) AS DELETE FROM {schema}.outbox WHERE ctid = ANY(ARRAY(\
             SELECT ctid FROM {schema}.outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)) \
             RETURNING seq, id::text, subject, headers::text, body",
            schema = self.schema
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(prepare)).execute(&mut conn).await?;
        Ok(conn)
    }

    /// Opens a transaction on `conn` and deletes in it up to `batch` rows no other relay holds,
    /// returning them in commit order; they stay locked until the transaction ends.
    async fn claim(&self, conn: &mut PgConnection) -> Result<Vec<Row>, MessagingError> {
        let sql = format!("BEGIN; EXECUTE claim({})", self.batch);
        let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_all(&mut *conn).await?;
        let mut rows = rows
            .iter()
            .map(|r| {
                let headers: String = r.try_get(3)?;
                Ok(Row {
                    seq: r.try_get(0)?,
                    id: r.try_get(1)?,
                    subject: r.try_get(2)?,
                    headers: serde_json::from_str(&headers).unwrap_or_default(),
                    body: r.try_get::<Vec<u8>, _>(4)?.into(),
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        rows.sort_unstable_by_key(|r| r.seq);
        Ok(rows)
    }

    /// Publishes one row and waits for its ack; `true` when JetStream already had it. The
    /// publish is a span of its own, a child of the trace the row carries; the message carries
    /// that span's context, so its consumers are the publish's children.
    async fn publish(&self, row: &Row) -> Result<bool, Unpublished> {
        let span = tracing::info_span!(
            "publish",
            subject = %row.subject,
            event_id = %row.id,
            otel.kind = "producer",
        );
        platform::telemetry::set_parent_from(
            &span,
            row.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let trace = platform::telemetry::trace_headers(&span);
        let mut headers = HeaderMap::new();
        for (k, v) in row.headers.iter().filter(|(k, _)| !is_trace_header(k)).chain(&trace) {
            headers.insert(k.as_str(), v.as_str());
        }
        headers.insert(HEADER_MSG_ID, row.id.as_str());
        self.send(row, headers).instrument(span).await
    }

    async fn send(&self, row: &Row, headers: HeaderMap) -> Result<bool, Unpublished> {
        let publish = PublishMessage::build().payload(row.body.clone()).headers(headers);
        let failed = |what: &'static str| {
            move |e: PublishError| match e.kind() {
                PublishErrorKind::MaxPayloadExceeded => Unpublished::Poison(format!(
                    "{e}: {} bytes, more than the NATS server takes",
                    row.body.len()
                )),
                _ => Unpublished::Failed(MessagingError::js(what, e)),
            }
        };
        let ack = self
            .bus
            .js
            .send_publish(row.subject.clone(), publish)
            .await
            .map_err(failed("publish"))?
            .await
            .map_err(failed("publish ack"))?;
        Ok(ack.duplicate)
    }

    /// Moves a row JetStream will never take into `<schema>.outbox_dead` (in the claim's
    /// transaction, which deleted it from the outbox) and dead-letters it with `reason`.
    async fn set_aside(
        &self,
        conn: &mut PgConnection,
        row: &Row,
        reason: &str,
    ) -> Result<(), MessagingError> {
        tracing::error!(schema = %self.schema, event_id = %row.id, %reason, "an outbox row cannot be published; set aside");
        let sql = format!(
            "INSERT INTO {}.outbox_dead (id, subject, headers, body, reason) \
             VALUES ($1::uuid, $2, $3::jsonb, $4, $5) ON CONFLICT (id) DO NOTHING",
            self.schema
        );
        let headers = serde_json::to_string(&row.headers).unwrap_or_else(|_| "[]".into());
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&row.id)
            .bind(&row.subject)
            .bind(headers)
            .bind(row.body.as_ref())
            .bind(reason)
            .execute(&mut *conn)
            .await?;
        crate::dlq::outbox_letter(&self.bus, &self.schema, &row.subject, &row.id, &row.headers, reason)
            .await?;
        metrics::counter!("outbox_set_aside_total", "schema" => self.schema.clone()).increment(1);
        Ok(())
    }
}

/// Whether `name` is a W3C trace context header, which the relay replaces by its own span's.
fn is_trace_header(name: &str) -> bool {
    name.eq_ignore_ascii_case(HEADER_TRACEPARENT) || name.eq_ignore_ascii_case(HEADER_TRACESTATE)
}
