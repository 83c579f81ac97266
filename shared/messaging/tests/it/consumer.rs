use crate::support::{Recorder, applied, env, ordered_spec, outbox, publish_event, sample, spec};
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
    let incoming = Incoming {
        subject: "seat.released".into(),
        envelope: serde_json::from_value(serde_json::to_value(&event).unwrap()).unwrap(),
        stream_sequence: 1,
        deliveries: 1,
    };
    assert_eq!(inbox.apply("probe__SEAT", &incoming).await.unwrap(), Applied::Done);
    let again = Incoming { deliveries: 2, ..incoming.clone() };
    assert_eq!(inbox.apply("probe__SEAT", &again).await.unwrap(), Applied::Duplicate);
    assert_eq!(applied(&env, event.id.0).await, 1);
    // Another consumer keeps its own inbox.
    assert_eq!(inbox.apply("other__SEAT", &incoming).await.unwrap(), Applied::Done);
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

/// Answers every event with a `ChargeCompleted` (on the WALLET stream) through its outbox.
struct Answering(Outbox);

impl Handler for Answering {
    async fn handle(&self, txn: &DatabaseTransaction, msg: &Incoming) -> Result<(), HandleError> {
        let cause = msg.meta();
        let answer = ChargeCompleted {
            charge_id: ChargeId::new(),
            user_id: UserId::new(),
            amount: Won(1),
            balance: Won(1),
        };
        self.0.push(txn, &Envelope::new("probe", cause.id, answer).caused_by(&cause)).await?;
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
