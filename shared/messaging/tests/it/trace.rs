use crate::support::{Recorder, env, outbox, sample, spec};
use messaging::{PgInbox, Relay, run_consumer};
use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use std::{sync::Arc, time::Duration};
use testkit::eventually;
use tracing::Instrument;

#[tokio::test]
async fn the_consumer_span_has_the_producer_trace_id() {
    let env = env().await;
    tokio::spawn(Relay::new(&env.db, env.bus.clone(), "probe").run(env.shutdown.clone()));
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", Recorder::default()));
    tokio::spawn(run_consumer(env.bus.clone(), spec(), inbox, env.shutdown.clone()));

    let producer = tracing::info_span!("producer");
    let producer_trace = platform::telemetry::trace_id(&producer);
    let event = sample();
    async {
        let txn = env.db.begin().await.unwrap();
        outbox(&env).push(&txn, &event).await.unwrap();
        txn.commit().await.unwrap();
    }
    .instrument(producer)
    .await;

    let seen: String = eventually("the event consumed", Duration::from_secs(10), || async {
        let row = env
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT trace_id FROM probe.applied WHERE event_id = $1",
                [event.id.0.into()],
            ))
            .await
            .unwrap()?;
        row.try_get("", "trace_id").ok()
    })
    .await;
    assert_ne!(producer_trace, "00000000000000000000000000000000");
    assert_eq!(seen, producer_trace);
}
