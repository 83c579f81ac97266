use crate::support::{commit_samples, env, outbox, outbox_rows, sample};
use axum::http::StatusCode;
use contracts::Stream;
use contracts::UserId;
use messaging::Relay;
use platform::{
    auth::{Identity, Role},
    idempotency::{IdempotencyKey, MaybeKey, StoredResponse},
};
use sea_orm::{ConnectionTrait, TransactionTrait};
use std::time::Duration;
use testkit::eventually;

#[tokio::test]
async fn event_of_a_rolled_back_transaction_is_never_published() {
    let env = env().await;
    let txn = env.db.begin().await.unwrap();
    outbox(&env).push(&txn, &sample()).await.unwrap();
    txn.rollback().await.unwrap();

    let relay = Relay::new(&env.db, env.bus.clone(), "probe");
    assert_eq!(relay.drain().await.unwrap(), 0);
    assert_eq!(env.stream_messages(Stream::Seat).await.unwrap(), 0);
}

#[tokio::test]
async fn committed_event_is_published_exactly_once() {
    let env = env().await;
    let txn = env.db.begin().await.unwrap();
    outbox(&env).push(&txn, &sample()).await.unwrap();
    txn.commit().await.unwrap();

    let relay = Relay::new(&env.db, env.bus.clone(), "probe");
    assert_eq!(relay.drain().await.unwrap(), 1);
    assert_eq!(relay.drain().await.unwrap(), 0);
    assert_eq!(env.stream_messages(Stream::Seat).await.unwrap(), 1);
    assert_eq!(outbox_rows(&env).await, 0);
}

/// A relay whose drains fail on the database (its outbox gone, as in a database restart) does
/// not wait out its back-off once the database is back: the first commit wakes it.
#[tokio::test]
async fn a_relay_failing_on_its_database_tries_again_at_the_first_commit_after() {
    let env = env().await;
    let mut relay = Relay::new(&env.db, env.bus.clone(), "probe");
    // Back-off and polling far longer than the test waits: only the commit can wake it in time.
    relay.first_pause = Duration::from_secs(3600);
    relay.poll = Duration::from_secs(3600);
    env.db.execute_unprepared("ALTER TABLE probe.outbox RENAME TO outbox_away").await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));
    // Its first drain fails (the outbox is away) and it pauses; then the database is back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.db.execute_unprepared("ALTER TABLE probe.outbox_away RENAME TO outbox").await.unwrap();
    let ob = outbox(&env);
    let txn = env.db.begin().await.unwrap();
    ob.push(&txn, &sample()).await.unwrap();
    ob.commit(txn).await.unwrap();
    eventually("the event published", Duration::from_secs(30), || async {
        (env.stream_messages(Stream::Seat).await.unwrap() == 1).then_some(())
    })
    .await;
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn relay_killed_between_ack_and_commit_republishes_as_a_dedup_hit() {
    let env = env().await;
    let txn = env.db.begin().await.unwrap();
    outbox(&env).push_all(&txn, &[sample(), sample(), sample()]).await.unwrap();
    txn.commit().await.unwrap();

    let relay = Relay::new(&env.db, env.bus.clone(), "probe");
    assert_eq!(relay.publish_batch_then_crash().await.unwrap(), 3);
    assert_eq!(env.stream_messages(Stream::Seat).await.unwrap(), 3);
    assert_eq!(outbox_rows(&env).await, 3, "the crashed relay marked nothing");

    // A new relay publishes the same rows again: JetStream drops them as duplicates.
    assert_eq!(relay.drain().await.unwrap(), 3);
    assert_eq!(env.stream_messages(Stream::Seat).await.unwrap(), 3);
    assert_eq!(outbox_rows(&env).await, 0);
}

#[tokio::test]
async fn two_relays_at_once_publish_each_event_once() {
    let env = env().await;
    let ob = outbox(&env);
    for _ in 0..20 {
        commit_samples(&env, &ob, 50).await;
    }
    let mut a = Relay::new(&env.db, env.bus.clone(), "probe");
    let mut b = Relay::new(&env.db, env.bus.clone(), "probe");
    a.batch = 37;
    b.batch = 37;
    let (na, nb) = tokio::join!(a.drain(), b.drain());
    let (na, nb) = (na.unwrap(), nb.unwrap());
    assert_eq!(na + nb, 1000, "relays published {na} + {nb}");
    assert_eq!(env.stream_messages(Stream::Seat).await.unwrap(), 1000);
    assert_eq!(outbox_rows(&env).await, 0);
}

#[tokio::test]
async fn a_relay_vacuums_its_outbox_after_deleting_the_rows_it_is_told_to() {
    let env = env().await;
    let ob = outbox(&env);
    for _ in 0..4 {
        commit_samples(&env, &ob, 25).await;
    }
    let mut relay = Relay::new(&env.db, env.bus.clone(), "probe");
    relay.batch = 30;
    relay.vacuum_after = 50;
    assert_eq!(relay.drain().await.unwrap(), 100);
    assert_eq!(outbox_rows(&env).await, 0);
    // Claims of 30, 30 (60 deleted: a vacuum), 30 and 10.
    assert_eq!(vacuums(&env, 1).await, 1);
    commit_samples(&env, &ob, 10).await;
    assert_eq!(relay.drain().await.unwrap(), 10);
    assert_eq!(vacuums(&env, 2).await, 2, "50 more deleted: another vacuum");
}

/// How often `probe.outbox` has been vacuumed (not by autovacuum), once that is at least `n`.
async fn vacuums(env: &testkit::TestEnv, n: i64) -> i64 {
    eventually(&format!("{n} vacuums of the outbox counted"), Duration::from_secs(10), || async {
        let row = env
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT vacuum_count FROM pg_stat_user_tables WHERE relid = 'probe.outbox'::regclass",
            ))
            .await
            .unwrap()
            .unwrap();
        let count: i64 = row.try_get("", "vacuum_count").unwrap();
        (count >= n).then_some(count)
    })
    .await
}

#[tokio::test]
async fn a_relay_whose_connection_was_cut_reconnects_on_its_next_drain() {
    let env = env().await;
    let relay = Relay::new(&env.db, env.bus.clone(), "probe");
    assert_eq!(relay.drain().await.unwrap(), 0, "the relay connects");
    let cut = env
        .db
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity \
             WHERE application_name = 'relay[probe]' AND datname = current_database()",
        )
        .await
        .unwrap();
    assert_eq!(cut.rows_affected(), 1, "one relay connection to cut");

    let txn = env.db.begin().await.unwrap();
    outbox(&env).push(&txn, &sample()).await.unwrap();
    txn.commit().await.unwrap();
    assert!(relay.drain().await.is_err(), "the cut connection fails the claim");
    assert_eq!(outbox_rows(&env).await, 1, "the row stays");
    assert_eq!(relay.drain().await.unwrap(), 1, "the next drain reconnects");
    assert_eq!(env.stream_messages(Stream::Seat).await.unwrap(), 1);
    assert_eq!(outbox_rows(&env).await, 0);
}

/// How the test's one event is committed.
enum Commit {
    /// `Outbox::commit`: commits and wakes the relay.
    Waking,
    /// A plain commit, as another process makes it: nothing wakes the relay.
    Silent,
    /// Through `servicekit::idempotent`, as a request with an Idempotency-Key.
    Idempotent,
}

/// Runs a relay that polls every `poll`, past its first (empty) drain; then commits one event
/// and waits for it to be published.
async fn commit_one_with_a_relay_running(poll: Duration, commit: Commit) {
    let env = env().await;
    let mut relay = Relay::new(&env.db, env.bus.clone(), "probe");
    relay.poll = poll;
    tokio::spawn(relay.run(env.shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ob = outbox(&env);
    if let Commit::Idempotent = commit {
        let who = Identity { user_id: UserId::new(), role: Role::User };
        let key = MaybeKey(Some(IdempotencyKey::parse("k-1").unwrap()));
        let pushing = ob.clone();
        servicekit::idempotent(&ob, &env.db, &who, &key, &[b"POST /probe"], |txn| {
            Box::pin(async move {
                pushing.push(txn, &sample()).await?;
                StoredResponse::json(StatusCode::ACCEPTED, &serde_json::json!({}))
            })
        })
        .await
        .unwrap();
    } else {
        let txn = env.db.begin().await.unwrap();
        ob.push(&txn, &sample()).await.unwrap();
        match commit {
            Commit::Waking => ob.commit(txn).await.unwrap(),
            _ => txn.commit().await.unwrap(),
        }
    }
    eventually("the relay to publish", Duration::from_secs(10), || async {
        (env.stream_messages(Stream::Seat).await.unwrap() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_commit_wakes_the_relay_without_waiting_for_the_poll() {
    commit_one_with_a_relay_running(Duration::from_secs(3600), Commit::Waking).await;
}

#[tokio::test]
async fn an_idempotent_request_wakes_the_relay_once_its_effect_committed() {
    commit_one_with_a_relay_running(Duration::from_secs(3600), Commit::Idempotent).await;
}

#[tokio::test]
async fn rows_no_writer_announced_are_found_by_the_poll() {
    // As another process (or a relay that died) leaves them: committed, no signal here.
    commit_one_with_a_relay_running(Duration::from_millis(100), Commit::Silent).await;
}

#[tokio::test]
async fn pool_connections_plan_each_statement_once_and_by_its_indexes() {
    // The handlers' statements (the seat hold first of all) would otherwise be planned afresh on
    // every execution, and a plan made while a table was small would keep scanning it whole
    // once it has grown; see `platform::pools::connect_db`.
    let env = env().await;
    for (setting, expected) in [("plan_cache_mode", "force_generic_plan"), ("enable_seqscan", "off")] {
        let row = env
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                format!("SHOW {setting}"),
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", setting).unwrap(), expected);
    }
}

#[tokio::test]
async fn a_row_jetstream_will_never_take_is_set_aside_and_dead_lettered_and_the_rest_published() {
    let env = env().await;
    commit_samples(&env, &outbox(&env), 1).await;
    // An event larger than the NATS server's max_payload (1 MB), between two good ones.
    let huge = uuid::Uuid::now_v7();
    env.db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "INSERT INTO probe.outbox (id, subject, headers, body) VALUES ($1, $2, '[[\"Ticketing-Type\",\"SeatsReleased\"]]', $3)",
            [huge.into(), env.ns.subject("seat.0.released").into(), vec![b'x'; 2 * 1024 * 1024].into()],
        ))
        .await
        .unwrap();
    commit_samples(&env, &outbox(&env), 1).await;

    let relay = Relay::new(&env.db, env.bus.clone(), "probe");
    assert_eq!(relay.drain().await.unwrap(), 3, "all three taken from the outbox");
    assert_eq!(outbox_rows(&env).await, 0);
    let published = env.events_of::<contracts::SeatsReleased>().await.unwrap();
    assert_eq!(published.len(), 2, "the rows after it were published");
    let aside = env
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT id::text AS id, length(body) AS n, reason FROM probe.outbox_dead",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(aside.try_get::<String>("", "id").unwrap(), huge.to_string());
    assert_eq!(aside.try_get::<i32>("", "n").unwrap(), 2 * 1024 * 1024, "kept whole");
    assert!(aside.try_get::<String>("", "reason").unwrap().contains("max payload"));
    let letters = messaging::dlq::list(&env.bus, 10).await.unwrap();
    assert_eq!(letters.len(), 1);
    let (_, letter) = &letters[0];
    assert_eq!(
        (letter.consumer.as_str(), letter.event_id.clone()),
        ("outbox[probe]", Some(huge.to_string()))
    );
    assert_eq!(letter.event_type.as_deref(), Some("SeatsReleased"));
}
