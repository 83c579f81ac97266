//! The outbox relay: publishes committed outbox rows to JetStream with `Nats-Msg-Id` = event id,
//! then deletes them. A batch is claimed in one statement (`FOR UPDATE SKIP LOCKED`, then a
//! lease: `claimed_until`), so two relays never publish the same row at once and no transaction
//! stays open while acks are awaited; a relay that dies mid-batch leaves its rows to be published
//! again when the lease runs out (a dedup hit, not a duplicate). A claim or a delete that a
//! crash loses only means the same: a republish that JetStream drops.
//! Writers in the same process wake the relay after their commit ([`crate::Outbox::committed`]);
//! a poll finds the rest.

use crate::{Bus, MessagingError};
use async_nats::{HeaderMap, jetstream::message::PublishMessage};
use contracts::HEADER_MSG_ID;
use futures::{StreamExt, TryStreamExt};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::{sync::Arc, time::Duration};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// Publishes one schema's outbox.
#[derive(Clone)]
pub struct Relay {
    db: DatabaseConnection,
    bus: Bus,
    schema: String,
    wake: Arc<Notify>,
    /// Rows claimed per transaction.
    pub batch: u32,
    /// Publishes awaiting their ack at once; below the context's `max_ack_inflight`.
    pub window: usize,
    /// How often the outbox is checked when no writer of this process signals.
    pub poll: Duration,
    /// How long a claimed batch is this relay's; far longer than publishing a batch takes.
    pub lease: Duration,
}

struct Row {
    seq: i64,
    id: uuid::Uuid,
    subject: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Relay {
    /// A relay for `<schema>.outbox`, woken by this process's [`crate::Outbox`] of the same schema.
    pub fn new(db: DatabaseConnection, bus: Bus, schema: &str) -> Self {
        let wake = crate::outbox::wake_of(&bus.ns, schema);
        Self {
            db,
            bus,
            schema: schema.to_owned(),
            wake,
            batch: 500,
            window: 256,
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(10),
        }
    }

    /// Runs until `shutdown`: drains the outbox whenever a writer signals (or every `poll`), and
    /// after errors backs off (bounded) and tries again. Logs why it stops.
    pub async fn run(self, shutdown: CancellationToken) {
        let name = format!("relay[{}]", self.schema);
        let mut failures = 0u32;
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            match self.drain().await {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    metrics::counter!("outbox_relay_errors_total", "schema" => self.schema.clone())
                        .increment(1);
                    let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                    tracing::warn!(task = %name, error = %e, ?pause, "publishing the outbox failed; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(pause) => continue,
                    }
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(self.poll) => {}
                _ = self.wake.notified() => {}
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

    /// Claims and publishes one batch but never deletes it: the same as a relay killed between
    /// its publish acks and its delete. For tests of the dedup path.
    #[doc(hidden)]
    pub async fn publish_batch_then_crash(&self) -> Result<usize, MessagingError> {
        self.publish_batch(false).await
    }

    async fn publish_batch(&self, mark: bool) -> Result<usize, MessagingError> {
        let mut rows = self.claim().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        rows.sort_by_key(|r| r.seq);
        let list = rows.iter().map(|r| r.seq.to_string()).collect::<Vec<_>>().join(",");
        let count = rows.len();
        let acks = futures::stream::iter(rows.into_iter().map(|row| self.publish(row)))
            .buffered(self.window)
            .try_collect::<Vec<bool>>()
            .await;
        let duplicates = match acks {
            Ok(acks) => acks.into_iter().filter(|d| *d).count(),
            Err(e) => {
                // Give the rows back for the retry; those already acked become dedup hits. If
                // this fails too, the lease runs out by itself.
                let release =
                    format!("UPDATE {}.outbox SET claimed_until = NULL WHERE seq IN ({list})", self.schema);
                if let Err(release_error) = self.db.execute_unprepared(&release).await {
                    tracing::warn!(error = %release_error, "could not release claimed outbox rows");
                }
                return Err(e);
            }
        };
        if !mark {
            return Ok(count);
        }
        self.db
            .execute_unprepared(&format!("DELETE FROM {}.outbox WHERE seq IN ({list})", self.schema))
            .await?;
        metrics::counter!("outbox_published_total", "schema" => self.schema.clone()).increment(count as u64);
        if duplicates > 0 {
            metrics::counter!("outbox_duplicate_acks_total", "schema" => self.schema.clone())
                .increment(duplicates as u64);
        }
        Ok(count)
    }

    /// Leases up to `batch` rows nobody holds (one statement; `SKIP LOCKED` keeps two relays
    /// claiming at once apart, the lease keeps them apart afterwards).
    async fn claim(&self) -> Result<Vec<Row>, MessagingError> {
        let schema = &self.schema;
        let sql = format!(
            "UPDATE {schema}.outbox SET claimed_until = now() + make_interval(secs => $2)
             WHERE seq IN (SELECT seq FROM {schema}.outbox WHERE claimed_until IS NULL OR claimed_until < now()
                           ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING seq, id, subject, headers, body"
        );
        let rows = self
            .db
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                [i64::from(self.batch).into(), self.lease.as_secs_f64().into()],
            ))
            .await?;
        rows.into_iter()
            .map(|r| {
                let headers: serde_json::Value = r.try_get("", "headers")?;
                Ok(Row {
                    seq: r.try_get("", "seq")?,
                    id: r.try_get("", "id")?,
                    subject: r.try_get("", "subject")?,
                    headers: serde_json::from_value(headers).unwrap_or_default(),
                    body: r.try_get("", "body")?,
                })
            })
            .collect::<Result<_, sea_orm::DbErr>>()
            .map_err(MessagingError::from)
    }

    /// Publishes one row and waits for its ack; `true` when JetStream already had it.
    async fn publish(&self, row: Row) -> Result<bool, MessagingError> {
        let mut headers = HeaderMap::new();
        for (k, v) in &row.headers {
            headers.insert(k.as_str(), v.as_str());
        }
        headers.insert(HEADER_MSG_ID, row.id.to_string().as_str());
        let publish = PublishMessage::build().payload(row.body.into()).headers(headers);
        let ack = self
            .bus
            .js
            .send_publish(row.subject, publish)
            .await
            .map_err(|e| MessagingError::js("publish", e))?
            .await
            .map_err(|e| MessagingError::js("publish ack", e))?;
        Ok(ack.duplicate)
    }
}
