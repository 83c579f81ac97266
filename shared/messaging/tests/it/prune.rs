//! Old inbox and idempotency rows are pruned; rows a redelivery could still need are kept.

use crate::support::{SCHEMA, env};
use messaging::prune::{IDEMPOTENCY_RETENTION, inbox_retention, prune};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::time::Duration;

#[tokio::test]
async fn old_inbox_and_idempotency_rows_are_pruned_and_recent_ones_kept() {
    let env = env().await;
    let retention = inbox_retention().unwrap();
    // Longer than every stream keeps a message, the dead letters' included (90 days).
    assert!(retention > Duration::from_secs(90 * 24 * 3600), "{retention:?}");
    let days = |d: u64| format!("now() - interval '{d} days'");
    let keep_days = retention.as_secs() / 86_400;
    env.db
        .execute_unprepared(&format!(
            "INSERT INTO probe.inbox (consumer, event_id, handled_at) VALUES
               ('c', gen_random_uuid(), {old}), ('c', gen_random_uuid(), {old}), ('c', gen_random_uuid(), {recent});
             INSERT INTO probe.idempotency (user_id, key, request_hash, status, body, created_at) VALUES
               (gen_random_uuid(), 'old', '\\x00', 200, '{{}}', {week_ago}), (gen_random_uuid(), 'new', '\\x00', 200, '{{}}', now())",
            old = days(keep_days + 1),
            recent = days(keep_days - 1),
            week_ago = days(8),
        ))
        .await
        .unwrap();
    let count = |table: &'static str| {
        let db = env.db.clone();
        async move {
            let sql = format!("SELECT count(*) AS n FROM {SCHEMA}.{table}");
            let row =
                db.query_one_raw(Statement::from_string(DbBackend::Postgres, sql)).await.unwrap().unwrap();
            row.try_get::<i64>("", "n").unwrap()
        }
    };
    assert_eq!(prune(&env.db, SCHEMA, retention, IDEMPOTENCY_RETENTION).await.unwrap(), (2, 1));
    assert_eq!((count("inbox").await, count("idempotency").await), (1, 1));
    assert_eq!(
        prune(&env.db, SCHEMA, retention, IDEMPOTENCY_RETENTION).await.unwrap(),
        (0, 0),
        "nothing twice"
    );
}
