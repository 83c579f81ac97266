use crate::support::{Recorder, applied, env, publish_event, publish_raw, sample, spec};
use contracts::Stream;
use messaging::{PgInbox, dlq, run_consumer};
use std::{sync::Arc, time::Duration};
use testkit::eventually;

#[tokio::test]
async fn a_handler_that_always_fails_ends_in_the_dlq_after_its_attempts() {
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

    publish_raw(&env, "seat.0.released", "garbage-1", b"{not json".to_vec()).await;
    let letters = eventually("a dead letter", Duration::from_secs(10), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    let (seq, letter) = &letters[0];
    assert_eq!(letter.deliveries, 1, "undecodable messages are not retried");
    assert!(letter.reason.starts_with("undecodable envelope"), "{}", letter.reason);
    assert_eq!(letter.original_subject, env.ns.subject("seat.0.released"));

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
    publish_raw(&env, "seat.0.released", "bad-shape", serde_json::to_vec(&event).unwrap()).await;
    let letters = eventually("a dead letter", Duration::from_secs(10), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    assert_eq!(letters[0].1.deliveries, 1);
    assert!(letters[0].1.reason.contains("malformed SeatsReleased payload"), "{}", letters[0].1.reason);
    // The reason quotes the schema the event contract's document gives the payload.
    assert!(
        letters[0].1.reason.ends_with("(its schema: nats/asyncapi.json#/components/schemas/SeatsReleased)"),
        "{}",
        letters[0].1.reason
    );
}

#[tokio::test]
async fn an_event_the_database_refuses_goes_to_the_dlq_at_once() {
    let env = env().await;
    let recorder = Recorder { violate: true, ..Recorder::default() };
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", recorder.clone()));
    tokio::spawn(run_consumer(env.bus.clone(), spec(), inbox, env.shutdown.clone()));

    let event = sample();
    publish_event(&env, &event, &event.id.to_string()).await;
    let letters = eventually("a dead letter", Duration::from_secs(10), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    let (_, letter) = &letters[0];
    assert_eq!(letter.deliveries, 1, "not retried: {}", letter.reason);
    assert!(letter.reason.contains("SQLSTATE 23502"), "{}", letter.reason);
    assert_eq!(recorder.attempts(event.id.0), 1);
}

#[tokio::test]
async fn a_message_whose_deliveries_all_went_unanswered_is_dead_lettered_without_being_handled() {
    let env = env().await;
    let mut spec = spec();
    spec.config.ack_wait = Duration::from_millis(500);
    let event = sample();
    publish_event(&env, &event, &event.id.to_string()).await;
    // As if every delivery crashed its handler: taken, never answered, until its attempts are spent.
    let consumer = spec.ensure(&env.bus).await.unwrap();
    let mut seen = 0;
    while seen < spec.attempts {
        let mut batch =
            consumer.batch().max_messages(1).expires(Duration::from_secs(3)).messages().await.unwrap();
        if let Some(msg) = futures::StreamExt::next(&mut batch).await {
            msg.unwrap();
            seen += 1;
        }
    }
    let recorder = Recorder::default();
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", recorder.clone()));
    tokio::spawn(run_consumer(env.bus.clone(), spec, inbox, env.shutdown.clone()));
    let letters = eventually("a dead letter", Duration::from_secs(10), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    let (_, letter) = &letters[0];
    assert_eq!((letter.deliveries, letter.event_id.clone()), (4, Some(event.id.to_string())));
    assert!(letter.reason.contains("past its 3 attempts"), "{}", letter.reason);
    assert_eq!(recorder.attempts(event.id.0), 0, "not handled again");
}

#[tokio::test]
async fn a_dead_letter_that_cannot_be_written_is_tried_again_on_a_later_delivery() {
    let env = env().await;
    // The dead-letter stream is gone for a while: the last attempt's dead letter fails.
    env.bus.js.delete_stream(env.bus.ns.stream(Stream::Dlq)).await.unwrap();
    let recorder = Recorder { always_fail: true, ..Recorder::default() };
    let inbox = Arc::new(PgInbox::new(env.db.clone(), "probe", recorder.clone()));
    tokio::spawn(run_consumer(env.bus.clone(), spec(), inbox, env.shutdown.clone()));
    let event = sample();
    publish_event(&env, &event, &event.id.to_string()).await;
    eventually("every attempt spent", Duration::from_secs(10), || async {
        (recorder.attempts(event.id.0) >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    messaging::definitions::apply_stream(&env.bus, Stream::Dlq, 1).await.unwrap();
    let letters = eventually("the dead letter, once it can be written", Duration::from_secs(10), || async {
        let l = dlq::list(&env.bus, 10).await.unwrap();
        (!l.is_empty()).then_some(l)
    })
    .await;
    let (_, letter) = &letters[0];
    assert_eq!(letter.event_id, Some(event.id.to_string()));
    assert!(letter.deliveries > 3, "{}", letter.deliveries);
    assert_eq!(recorder.attempts(event.id.0), 3, "handled no more than its attempts");
}

#[tokio::test]
async fn applying_the_definitions_brings_an_existing_consumer_to_its_declared_configuration() {
    let env = env().await;
    // A consumer as an earlier version declared it: the server gave up after 8 deliveries.
    let mut old = messaging::ConsumerSpec::declared("seat", Stream::Reservation).unwrap().remove(0);
    old.config.max_deliver = 8;
    old.apply(&env.bus).await.unwrap();
    let max_deliver = |spec: messaging::ConsumerSpec| {
        let bus = env.bus.clone();
        async move { spec.ensure(&bus).await.unwrap().info().await.unwrap().config.max_deliver }
    };
    assert_eq!(max_deliver(old.clone()).await, 8);
    messaging::definitions::apply(&env.bus, 1).await.unwrap();
    assert_eq!(max_deliver(old).await, -1);
}

#[tokio::test]
async fn applying_the_definitions_deletes_a_durable_consumer_no_longer_declared() {
    let env = env().await;
    // A consumer an earlier version declared (before ranking's was split by subject), and a
    // tool's ephemeral reader.
    let stream = env.bus.js.get_stream(env.bus.ns.stream(Stream::Reservation)).await.unwrap();
    let durable = async_nats::jetstream::consumer::pull::Config {
        durable_name: Some("ranking__RESERVATION".into()),
        ..Default::default()
    };
    stream.create_consumer(durable).await.unwrap();
    let reader = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config::default())
        .await
        .unwrap()
        .cached_info()
        .name
        .clone();
    messaging::definitions::apply(&env.bus, 1).await.unwrap();
    let names: Vec<String> = futures::TryStreamExt::try_collect(stream.consumer_names()).await.unwrap();
    assert!(!names.contains(&"ranking__RESERVATION".to_owned()), "{names:?}");
    assert!(names.contains(&reader), "an ephemeral reader is left alone: {names:?}");
    assert!(names.contains(&"ranking__RESERVATION__cancelled".to_owned()), "{names:?}");
}
