//! Pruning what a schema remembers only for a while: its inbox rows (applied events) and its
//! idempotency rows (first answers to `Idempotency-Key` requests). Without it both tables grow
//! for ever, one row per event and per keyed request.

use crate::{MessagingError, definitions};
use contracts::Stream;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a keyed request's first answer is kept: a retry with the same key within this
/// gets it; after it, the key is new again.
pub const IDEMPOTENCY_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// How often the pruner runs.
const EVERY: Duration = Duration::from_secs(3600);
/// Rows deleted by one statement at most, so that a long backlog never holds locks for long.
const AT_ONCE: i64 = 10_000;

/// How long an applied event's inbox row is kept: longer than any stream keeps a message, the
/// dead-letter stream included (a replayed dead letter may be one whose effect committed before
/// its process died), plus a day. A message JetStream can still deliver always finds its row.
pub fn inbox_retention() -> Result<Duration, MessagingError> {
    let mut longest = Duration::ZERO;
    for stream in Stream::ALL {
        let config = definitions::stream_config(stream, &Default::default(), 1)?;
        longest = longest.max(config.max_age);
    }
    Ok(longest + Duration::from_secs(24 * 3600))
}

/// Deletes `schema`'s inbox rows older than `inbox` and idempotency rows older than
/// `idempotency`; answers how many of each.
pub async fn prune(
    db: &impl ConnectionTrait,
    schema: &str,
    inbox: Duration,
    idempotency: Duration,
) -> Result<(u64, u64), MessagingError> {
    let mut deleted = (0, 0);
    for (table, column, age, count) in [
        ("inbox", "handled_at", inbox, &mut deleted.0),
        ("idempotency", "created_at", idempotency, &mut deleted.1),
    ] {
        loop {
            let n = db.execute_raw(older_than(schema, table, column, age)).await?.rows_affected();
            *count += n;
            if n < AT_ONCE as u64 {
                break;
            }
        }
    }
    Ok(deleted)
}

/// Deletes up to [`AT_ONCE`] rows of `schema.table` whose `column` is older than `age`, found
/// through the table's BRIN index on `column` (`migrations::service_schema_sql`).
fn older_than(schema: &str, table: &str, column: &str, age: Duration) -> Statement {
    Statement::from_sql_and_values(
        DbBackend::Postgres,
        format!(
            "DELETE FROM {schema}.{table} WHERE ctid = ANY(ARRAY(SELECT ctid FROM {schema}.{table} \
             WHERE {column} < now() - make_interval(secs => $1) LIMIT $2))"
        ),
        [age.as_secs_f64().into(), AT_ONCE.into()],
    )
}

/// Prunes `schema` now and every hour until `shutdown`; a failed run is logged and tried again
/// at the next.
pub async fn run(db: DatabaseConnection, schema: String, shutdown: CancellationToken) {
    let inbox = match inbox_retention() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%schema, error = %e, "cannot tell the inbox's retention; nothing is pruned");
            shutdown.cancelled().await;
            return;
        }
    };
    loop {
        match prune(&db, &schema, inbox, IDEMPOTENCY_RETENTION).await {
            Ok((inbox, idempotency)) => {
                metrics::counter!("pruned_rows_total", "schema" => schema.clone(), "table" => "inbox")
                    .increment(inbox);
                metrics::counter!("pruned_rows_total", "schema" => schema.clone(), "table" => "idempotency")
                    .increment(idempotency);
            }
            Err(e) => tracing::warn!(%schema, error = %e, "pruning failed; trying again in an hour"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prune finds the old rows through the age index, not by reading every row: run hourly
    /// against an inbox of millions of rows, a full scan stalled every writer of the database.
    #[tokio::test]
    async fn the_prune_reads_the_age_index_not_the_whole_table() {
        let env = testkit::TestEnv::new().await.expect("test environment");
        env.messaging_schema("aged").await.expect("schema");
        env.db
            .execute_unprepared(
                "INSERT INTO aged.inbox (consumer, event_id, handled_at)
                   SELECT 'c', gen_random_uuid(), now() - interval '1 hour' + g * interval '10 ms'
                   FROM generate_series(1, 50000) g;
                 INSERT INTO aged.idempotency (user_id, key, request_hash, status, body, created_at)
                   SELECT gen_random_uuid(), 'k', '\\x00', 200, '{}', now() - interval '1 hour' + g * interval '10 ms'
                   FROM generate_series(1, 50000) g;
                 ANALYZE aged.inbox; ANALYZE aged.idempotency;",
            )
            .await
            .expect("rows");
        for (table, column, index) in
            [("inbox", "handled_at", "inbox_by_age"), ("idempotency", "created_at", "idempotency_by_age")]
        {
            let Statement { sql, values, .. } =
                older_than("aged", table, column, Duration::from_secs(86_400));
            let plan: Vec<String> = env
                .db
                .query_all_raw(Statement {
                    sql: format!("EXPLAIN {sql}"),
                    values,
                    db_backend: DbBackend::Postgres,
                })
                .await
                .expect("explain")
                .iter()
                .map(|row| row.try_get_by_index::<String>(0).expect("plan line"))
                .collect();
            let plan = plan.join("\n");
            assert!(plan.contains(index) && !plan.contains("Seq Scan"), "{table}:\n{plan}");
        }
    }
}
