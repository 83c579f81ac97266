use crate::support::{
    Recorder, applied, batch_spec, env, incoming, ordered_spec, outbox, outbox_rows, publish_event,
    publish_raw, sample, spec,
};
use contracts::{ChargeCompleted, ChargeId, Envelope, Stream, UserId, Won};
use messaging::{Applied, Apply, HandleError, Handler, Incoming, Outbox, PgInbox, Relay, run_consumer};
use sea_orm::DatabaseTransaction;
use std::{sync::Arc, time::Duration};
use testkit::eventually;

#[tokio::test]
async fn the_same_event_republished_with_a_new_sequence_changes_state_once() {
    let env = env().await;
    let recorder = Recorder::default();
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", recorder.clone()));
    tokio::spawn(run_consumer(env.bus.clone(), ordered_spec(), inbox, env.shutdown.clone()));

    let event = sample();
    // Different Nats-Msg-Id: both copies are stored, with different stream sequences.
    publish_event(&env, &event, "copy-1").await;
    publish_event(&env, &event, "copy-2").await;
    let later = sample();
    publish_event(&env, &later, "later").await;
    assert_eq!(env.stream_messages(contracts::Stream::Seat).await.unwrap(), 3, "both copies are stored");
    // One message at a time in stream order: once `later` is applied, both copies were handled.
    eventually("a later event applied", Duration::from_secs(10), || async {
        (applied(&env, later.id.0).await == 1).then_some(())
    })
    .await;
    assert_eq!(applied(&env, event.id.0).await, 1);
    assert_eq!(recorder.attempts(event.id.0), 1, "the duplicate never reached the handler");
}

#[tokio::test]
async fn a_redelivered_event_is_a_no_op() {
    let env = env().await;
    let inbox = PgInbox::new(env.db.clone(), "probe", Recorder::default());
    let event = sample();
    let incoming = incoming(&event, 1);
    assert_eq!(inbox.apply("probe__SEAT", &incoming).await.unwrap(), Applied::Done);
    let again = Incoming { deliveries: 2, ..incoming.clone() };
    assert_eq!(inbox.apply("probe__SEAT", &again).await.unwrap(), Applied::Duplicate);
    assert_eq!(applied(&env, event.id.0).await, 1);
    // Another consumer keeps its own inbox.
    assert_eq!(inbox.apply("other__SEAT", &incoming).await.unwrap(), Applied::Done);
}

#[tokio::test]
async fn a_batch_applies_each_event_once_even_with_a_redelivery_inside() {
    let env = env().await;
    let recorder = Recorder::default();
    let inbox = PgInbox::new(env.db.clone(), "probe", recorder.clone());
    let (a, b, seen) = (sample(), sample(), sample());
    assert_eq!(inbox.apply("probe__SEAT", &incoming(&seen, 1)).await.unwrap(), Applied::Done);

    let batch = [incoming(&a, 1), incoming(&b, 1), incoming(&a, 2), incoming(&seen, 2)];
    let outcomes: Vec<Applied> =
        inbox.apply_batch("probe__SEAT", &batch).await.into_iter().map(Result::unwrap).collect();
    assert_eq!(outcomes, [Applied::Done, Applied::Done, Applied::Duplicate, Applied::Duplicate]);
    for event in [&a, &b, &seen] {
        assert_eq!(applied(&env, event.id.0).await, 1);
        assert_eq!(recorder.attempts(event.id.0), 1, "applied in one go, never retried");
    }
}

#[tokio::test]
async fn a_message_that_fails_in_a_batch_fails_alone() {
    let env = env().await;
    let (a, bad, b) = (sample(), sample(), sample());
    let recorder = Recorder { poison: Some(bad.id.0), ..Recorder::default() };
    let inbox = PgInbox::new(env.db.clone(), "probe", recorder.clone());

    let outcomes =
        inbox.apply_batch("probe__SEAT", &[incoming(&a, 1), incoming(&bad, 1), incoming(&b, 1)]).await;
    assert!(matches!(outcomes[..], [Ok(Applied::Done), Err(HandleError::Permanent(_)), Ok(Applied::Done)]));
    assert_eq!(
        (applied(&env, a.id.0).await, applied(&env, bad.id.0).await, applied(&env, b.id.0).await),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn a_batching_consumer_applies_every_event_once_and_dead_letters_the_undecodable() {
    let env = env().await;
    let recorder = Recorder::default();
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", recorder.clone()));
    let events: Vec<_> = (0..60).map(|_| sample()).collect();
    for (i, event) in events.iter().enumerate() {
        publish_event(&env, event, &event.id.to_string()).await;
        if i == 30 {
            publish_raw(&env, "seat.0.released", "garbage", b"{not json".to_vec()).await;
        }
    }
    tokio::spawn(run_consumer(env.bus.clone(), batch_spec(16), inbox, env.shutdown.clone()));

    eventually("every event applied", Duration::from_secs(15), || async {
        for event in &events {
            if applied(&env, event.id.0).await != 1 {
                return None;
            }
        }
        Some(())
    })
    .await;
    let dead = eventually("the undecodable message dead-lettered", Duration::from_secs(10), || async {
        let dead = messaging::dlq::list(&env.bus, 10).await.unwrap();
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead.len(), 1);
    assert!(events.iter().all(|e| recorder.attempts(e.id.0) == 1), "no batch failed or was applied twice");
}

#[tokio::test]
async fn a_transient_failure_is_retried_and_then_succeeds() {
    let env = env().await;
    let recorder = Recorder { fail_first: 2, ..Recorder::default() };
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", recorder.clone()));
    tokio::spawn(run_consumer(env.bus.clone(), spec(), inbox, env.shutdown.clone()));

    let event = sample();
    publish_event(&env, &event, &event.id.to_string()).await;
    eventually("the third delivery to succeed", Duration::from_secs(15), || async {
        (applied(&env, event.id.0).await == 1).then_some(())
    })
    .await;
    assert_eq!(recorder.attempts(event.id.0), 3);
    assert!(messaging::dlq::list(&env.bus, 10).await.unwrap().is_empty());
}

/// A `ChargeCompleted` (on the WALLET stream) answering `msg`.
fn answer_to(msg: &Incoming) -> Envelope<ChargeCompleted> {
    let cause = msg.meta();
    let answer = ChargeCompleted {
        charge_id: ChargeId::new(),
        user_id: UserId::new(),
        amount: Won(1),
        balance: Won(1),
    };
    Envelope::new("probe", cause.id, answer).caused_by(&cause)
}

/// Answers every event through its outbox.
struct Answering(Outbox);

impl Handler for Answering {
    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        self.0.push(txn, &answer_to(msg)).await?;
        Ok(())
    }
}

#[tokio::test]
async fn a_publishing_consumer_wakes_the_relay_when_its_effect_commits() {
    let env = env().await;
    let mut relay = Relay::new(&env.db, env.bus.clone(), "probe");
    relay.poll = Duration::from_secs(3600);
    tokio::spawn(relay.run(env.shutdown.clone()));
    let ob = outbox(&env);
    let inbox = Arc::new(PgInbox::publishing(env.db.clone(), &ob, Answering(ob.clone())));
    tokio::spawn(run_consumer(env.bus.clone(), spec(), inbox, env.shutdown.clone()));

    let event = sample();
    publish_event(&env, &event, &event.id.to_string()).await;
    eventually("the answer published without waiting for the poll", Duration::from_secs(10), || async {
        (env.stream_messages(Stream::Wallet).await.unwrap() == 1).then_some(())
    })
    .await;
}

/// Applies each event in one statement (the effect row, the inbox claim and an answer in the
/// outbox), unless told to decline; then in a transaction. Counts both ways.
#[derive(Clone, Default)]
struct AtOnce {
    outbox: Option<Outbox>,
    decline: bool,
    at_once: Arc<std::sync::atomic::AtomicU32>,
    in_txn: Arc<std::sync::atomic::AtomicU32>,
}

impl Handler for AtOnce {
    async fn at_once_each(
        &self,
        db: &sea_orm::DatabaseConnection,
        claims: &messaging::InboxClaims<'_>,
        msgs: &[Incoming],
    ) -> Result<Vec<i64>, HandleError> {
        let [msg] = msgs else { panic!("these tests send one event at a time") };
        self.at_once.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ob = self.outbox.clone().expect("an outbox");
        let row = ob.row(&answer_to(msg))?;
        let input = messaging::Input::at(vec![1]).column("event_id", "uuid", vec![msg.envelope.id.0]).column(
            "go",
            "bool",
            vec![!self.decline],
        );
        let applied = messaging::BatchWrite::over(input)
            .step(
                "done",
                "INSERT INTO probe.applied (event_id, trace_id) SELECT event_id, 'at once' FROM input WHERE go
                 RETURNING 1::bigint AS i",
            )
            .applied_by("done")
            .claims(claims)
            .events(&ob, vec![(1, &row)])
            .run(db)
            .await?;
        Ok(applied)
    }

    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        use sea_orm::{ConnectionTrait, DbBackend, Statement};
        self.in_txn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO probe.applied (event_id, trace_id) VALUES ($1, 'in a transaction')",
            [msg.envelope.id.0.into()],
        ))
        .await?;
        Ok(())
    }
}

#[tokio::test]
async fn an_event_applied_in_one_statement_is_claimed_in_the_inbox_with_its_answer() {
    let env = env().await;
    let handler = AtOnce { outbox: Some(outbox(&env)), ..AtOnce::default() };
    let inbox = PgInbox::publishing(env.db.clone(), &outbox(&env), handler.clone());
    let event = sample();
    assert_eq!(inbox.apply("probe__SEAT", &incoming(&event, 1)).await.unwrap(), Applied::Done);
    assert_eq!(applied(&env, event.id.0).await, 1);
    assert_eq!(outbox_rows(&env).await, 1, "the answer went with the effect");

    // A redelivery: the statement fails on the inbox's key and leaves nothing; the transaction
    // then finds the event applied.
    assert_eq!(inbox.apply("probe__SEAT", &incoming(&event, 2)).await.unwrap(), Applied::Duplicate);
    assert_eq!(applied(&env, event.id.0).await, 1);
    assert_eq!(outbox_rows(&env).await, 1);
    assert_eq!(handler.at_once.load(std::sync::atomic::Ordering::Relaxed), 2);
    assert_eq!(
        handler.in_txn.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the duplicate never reached the handler"
    );
}

#[tokio::test]
async fn an_event_the_handler_cannot_apply_at_once_is_applied_in_a_transaction() {
    let env = env().await;
    let handler = AtOnce { outbox: Some(outbox(&env)), decline: true, ..AtOnce::default() };
    let inbox = PgInbox::publishing(env.db.clone(), &outbox(&env), handler.clone());
    let event = sample();
    assert_eq!(inbox.apply("probe__SEAT", &incoming(&event, 1)).await.unwrap(), Applied::Done);
    assert_eq!(applied(&env, event.id.0).await, 1);
    assert_eq!(outbox_rows(&env).await, 0, "a declined statement writes no answer");
    assert_eq!(handler.in_txn.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(inbox.apply("probe__SEAT", &incoming(&event, 2)).await.unwrap(), Applied::Duplicate);
    assert_eq!(applied(&env, event.id.0).await, 1);
}

#[tokio::test]
async fn a_consumer_whose_filters_and_handler_disagree_does_not_start() {
    let env = env().await;
    let rt = env.runtime();
    // The reservation service is given the seat service's holds and rejections, not its
    // releases or sell-outs; a handler that takes every event would miss some of them.
    let spec = messaging::ConsumerSpec::declared("reservation", Stream::Seat).unwrap();
    let refused = rt.consumer(spec, PgInbox::new(env.db.clone(), "probe", Recorder::default()));
    let Err(messaging::MessagingError::Filters(why)) = refused else {
        panic!("a mismatched consumer started")
    };
    assert!(why.contains("but no consumer is given it"), "{why}");
}
