use crate::support::{Recorder, applied, env, publish_event, publish_raw, sample, spec};
use contracts::Stream;
use messaging::{PgInbox, dlq, run_consumer};
use std::{sync::Arc, time::Duration};
use testkit::eventually;

#[tokio::test]
async fn a_handler_that_always_fails_ends_in_the_dlq_after_max_deliver() {
    let env = env().await;
    let recorder = Recorder { always_fail: true, ..Recorder::default() };
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", recorder.clone()));
    tokio::spawn(run_consumer(env.bus.clone(), spec(), inbox, env.shutdown.clone()));

    let event = sample();
    publish_event(&env, &event, &event.id.to_string()).await;
    let letters = eventually("a dead letter", Duration::from_secs(15), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(letters.len(), 1);
    let (_, letter) = &letters[0];
    assert_eq!(letter.event_id.as_deref(), Some(event.id.to_string().as_str()));
    assert_eq!(letter.event_type.as_deref(), Some("SeatsReleased"));
    assert_eq!(letter.consumer, "probe__SEAT");
    assert_eq!(letter.deliveries, 3);
    assert!(
        letter.reason.contains("induced failure") && letter.reason.contains("delivery 3 of 3"),
        "{}",
        letter.reason
    );
    assert_eq!(recorder.attempts(event.id.0), 3);
    assert_eq!(applied(&env, event.id.0).await, 0, "failed attempts left no effect");
}

#[tokio::test]
async fn an_undecodable_message_goes_straight_to_the_dlq_and_replay_republishes_it() {
    let env = env().await;
    let recorder = Recorder::default();
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", recorder.clone()));
    tokio::spawn(run_consumer(env.bus.clone(), spec(), inbox, env.shutdown.clone()));

    publish_raw(&env, "seat.released", "garbage-1", b"{not json".to_vec()).await;
    let letters = eventually("a dead letter", Duration::from_secs(10), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    let (seq, letter) = &letters[0];
    assert_eq!(letter.deliveries, 1, "undecodable messages are not retried");
    assert!(letter.reason.starts_with("undecodable envelope"), "{}", letter.reason);
    assert_eq!(letter.original_subject, env.ns.subject("seat.released"));

    let replayed = dlq::replay(&env.bus, *seq).await.unwrap();
    assert_eq!(replayed.original_body, letter.original_body);
    assert_eq!(
        env.stream_messages(Stream::Seat).await.unwrap(),
        2,
        "the replay is a new message on the subject"
    );
    // Still undecodable, so it comes back as a new dead letter; the replayed one is gone.
    let again = eventually("the replayed message dead-lettered again", Duration::from_secs(10), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (l.len() == 1 && l[0].0 != *seq).then_some(l)
    })
    .await;
    assert_eq!(again[0].1.original_body, letter.original_body);
}

#[tokio::test]
async fn a_payload_of_the_wrong_shape_is_dead_lettered_at_once() {
    let env = env().await;
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", Recorder::default()));
    tokio::spawn(run_consumer(env.bus.clone(), spec(), inbox, env.shutdown.clone()));

    let mut event = serde_json::to_value(sample()).unwrap();
    event["payload"]["seatNos"] = serde_json::json!("seven");
    publish_raw(&env, "seat.released", "bad-shape", serde_json::to_vec(&event).unwrap()).await;
    let letters = eventually("a dead letter", Duration::from_secs(10), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(letters[0].1.deliveries, 1);
    assert!(letters[0].1.reason.contains("malformed SeatsReleased payload"), "{}", letters[0].1.reason);
}
