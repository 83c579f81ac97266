use crate::support::{commit_samples, env, outbox, publish_event, sample, spec};
use contracts::Stream;
use messaging::gauges::{Watch, sample as sample_gauges};
use testkit::metric as value;

#[tokio::test]
async fn the_gauges_show_the_outbox_backlog_the_pending_messages_and_the_dead_letters() {
    let metrics = platform::http::metrics_handle();
    let env = env().await;
    // Three events no relay publishes; a consumer with two messages waiting; one dead letter.
    commit_samples(&env, &outbox(&env), 3).await;
    let spec = spec();
    spec.ensure(&env.bus).await.unwrap();
    for _ in 0..2 {
        let event = sample();
        publish_event(&env, &event, &event.id.to_string()).await;
    }
    env.bus.js.publish(env.ns.dlq_subject("probe"), "a letter".into()).await.unwrap().await.unwrap();

    let watch = Watch::default();
    watch.schema("probe");
    watch.consumer(env.ns.stream(Stream::Seat), spec.name(), "probe");
    watch.consumer(env.ns.stream(Stream::Seat), spec.name(), "idle");
    let before = chrono::Utc::now();
    sample_gauges(&env.db, &env.bus, &watch).await;
    let text = metrics.render();

    assert_eq!(value(&text, r#"outbox_backlog{schema="probe"}"#), Some(3.0), "{text}");
    let age = value(&text, r#"outbox_oldest_age_seconds{schema="probe"}"#).unwrap_or(-1.0);
    let waited = (chrono::Utc::now() - before).as_seconds_f64() + 60.0;
    assert!((0.0..waited).contains(&age), "the oldest row's age: {age}");
    let consumer = spec.name();
    assert_eq!(
        value(&text, &format!(r#"jetstream_consumer_pending{{consumer="{consumer}"}}"#)),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        value(&text, &format!(r#"jetstream_consumer_ack_pending{{consumer="{consumer}"}}"#)),
        Some(0.0)
    );
    assert_eq!(value(&text, r#"dlq_messages{service="probe"}"#), Some(1.0), "{text}");
    assert_eq!(value(&text, r#"dlq_messages{service="idle"}"#), Some(0.0), "{text}");
    assert!(value(&text, "db_pool_max_connections").is_some_and(|n| n >= 1.0), "{text}");
    assert!(value(&text, r#"db_pool_connections{state="idle"}"#).is_some(), "{text}");
}

#[tokio::test]
async fn the_pool_reports_how_long_each_connection_was_waited_for() {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    use tracing_subscriber::layer::SubscriberExt;
    let metrics = platform::http::metrics_handle();
    let subscriber = tracing_subscriber::registry().with(platform::telemetry::PoolWaits::layer());
    // This test's runtime runs on this thread only, so its tasks report here.
    let _reporting = tracing::subscriber::set_default(subscriber);
    let env = env().await;
    let db = platform::pools::connect_db(&env.database_url, 1).await.unwrap();

    // The only connection is in a transaction while another caller asks for one.
    let held = db.begin().await.unwrap();
    let waiter = tokio::spawn({
        let db = db.clone();
        async move { db.execute_unprepared("SELECT 1").await.unwrap() }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    held.commit().await.unwrap();
    waiter.await.unwrap();

    let text = metrics.render();
    let count = value(&text, "db_pool_acquire_duration_seconds_count").unwrap_or(0.0);
    let waited = value(&text, "db_pool_acquire_duration_seconds_sum").unwrap_or(0.0);
    assert!(count >= 2.0, "the transaction's connection and the waiter's: {text}");
    assert!(waited >= 0.3, "the waiter waited for the transaction to end: {waited} s");
    assert!(value(&text, r#"db_pool_acquire_duration_seconds_bucket{le="0.25"}"#).is_some(), "{text}");
}
