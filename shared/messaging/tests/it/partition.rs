//! The partition key agrees with nats-server's own (docs/scaling.md §2.1): a stream whose subject
//! transform puts `{{partition(1024,1)}}` in front of a schedule id files each message under the
//! bucket `contracts::Bucket::of` computes for that schedule.

use contracts::{Bucket, ReservationId, ScheduleId};
use serde_json::{Value, json};

#[tokio::test]
async fn the_servers_partition_transform_puts_every_schedule_in_the_bucket_we_compute() {
    let env = testkit::TestEnv::new().await.unwrap();
    let js = &env.bus.js;
    let stream = env.ns.stream_name("BUCKETS");
    let source = env.ns.subject("bucket-of.*");
    let created: Value = js
        .request(
            format!("STREAM.CREATE.{stream}"),
            &json!({
                "name": stream,
                "subjects": [source],
                "subject_transform": {
                    "src": source,
                    "dest": env.ns.subject("bucket-of.{{partition(1024,1)}}.{{wildcard(1)}}"),
                },
                "storage": "memory",
                "max_age": 600_000_000_000u64,
            }),
        )
        .await
        .unwrap();
    assert!(created.get("error").is_none(), "the server refused the stream: {created}");

    let schedules: Vec<ScheduleId> = (0..300).map(|_| ScheduleId::new()).collect();
    for s in &schedules {
        js.publish(env.ns.subject(&format!("bucket-of.{s}")), "".into()).await.unwrap().await.unwrap();
    }
    let filed = js.get_stream(&stream).await.unwrap();
    for (seq, s) in (1u64..).zip(&schedules) {
        let subject = filed.get_raw_message(seq).await.unwrap().subject;
        let expected = env.ns.subject(&format!("bucket-of.{}.{s}", Bucket::of(*s)));
        assert_eq!(subject.as_str(), expected, "schedule {s}");
        assert_eq!(ReservationId::for_schedule(*s).bucket(), Bucket::of(*s));
    }
    js.delete_stream(&stream).await.unwrap();
}

/// Deploying the partitioned subjects on a running system (docs/scaling.md §2.7, step 2): a
/// durable that still has the filter of before (`reservation.requested`) takes the pattern
/// (`reservation.*.requested`) when the definitions are applied, in place: the same consumer,
/// which keeps its place in the stream and is given the events of every partition.
#[tokio::test]
async fn applying_the_definitions_moves_a_durable_of_before_to_the_partitioned_filter_in_place() {
    use async_nats::jetstream::{AckKind, consumer::PullConsumer};
    use futures::StreamExt as _;
    let env = testkit::TestEnv::new().await.unwrap();
    let spec = messaging::definitions::declared_consumers(contracts::Partitions::ONE)
        .unwrap()
        .into_iter()
        .find(|c| c.name() == "seat__RESERVATION__requested")
        .unwrap();
    let stream = env.bus.js.get_stream(env.ns.stream(contracts::Stream::Reservation)).await.unwrap();
    let mut before = stream.consumer_info(spec.name()).await.unwrap().config;
    assert_eq!(before.filter_subject, env.ns.subject("reservation.*.requested"));
    before.filter_subject = env.ns.subject("reservation.requested");
    stream.create_consumer(before).await.unwrap();

    // The durable of before takes an event of before.
    let publish = |subject: String| {
        let env = &env;
        async move { env.publish_raw(&subject, &uuid::Uuid::now_v7().to_string(), b"{}".to_vec()).await.unwrap() }
    };
    publish("reservation.requested".into()).await;
    let durable: PullConsumer = stream.get_consumer(&spec.name()).await.unwrap();
    let mut batch =
        durable.fetch().max_messages(10).expires(std::time::Duration::from_secs(2)).messages().await.unwrap();
    let first = batch.next().await.unwrap().unwrap();
    assert_eq!(first.subject.as_str(), env.ns.subject("reservation.requested"));
    first.ack_with(AckKind::Ack).await.unwrap();
    drop(batch);

    messaging::definitions::apply(&env.bus, 1).await.unwrap();
    let mut durable: PullConsumer = stream.get_consumer(&spec.name()).await.unwrap();
    let info = durable.info().await.unwrap().clone();
    assert_eq!(info.config.filter_subject, env.ns.subject("reservation.*.requested"));
    assert_eq!(info.ack_floor.stream_sequence, 1, "its place in the stream is kept");
    for p in ["0", "7"] {
        publish(format!("reservation.{p}.requested")).await;
    }
    publish("reservation.0.completed".into()).await;
    let mut batch =
        durable.fetch().max_messages(10).expires(std::time::Duration::from_secs(2)).messages().await.unwrap();
    let mut given = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.unwrap();
        given.push(message.subject.to_string());
        message.ack_with(AckKind::Ack).await.unwrap();
    }
    assert_eq!(given, [env.ns.subject("reservation.0.requested"), env.ns.subject("reservation.7.requested")]);
}
