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
