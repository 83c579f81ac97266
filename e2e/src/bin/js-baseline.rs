//! Raw JetStream acked-publish throughput on this machine: the ceiling the outbox relay is
//! compared with (figures, not a test). `js-baseline [messages=200000] [window=256]`.
//! Publishes small messages pipelined (at most `window` acks outstanding) to a stream of its
//! own under a fresh prefix, and removes it afterwards.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout, reason = "a benchmark binary")]

use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use std::time::Instant;

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let n = args.first().copied().unwrap_or(200_000);
    let window = args.get(1).copied().unwrap_or(256);
    let url = std::env::var("TICKETING_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(window * 2)
        .backpressure_on_inflight(true)
        .build(client);
    let name = format!("BASELINE_{}", uuid::Uuid::new_v4().simple());
    let subject = format!("{name}.x");
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![format!("{name}.>")],
        storage: stream::StorageType::File,
        duplicate_window: std::time::Duration::from_secs(120),
        ..Default::default()
    })
    .await
    .unwrap();
    let payload = bytes::Bytes::from(vec![b'x'; 300]);
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let (js, subject, payload) = (js.clone(), subject.clone(), payload.clone());
            async move {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", i.to_string().as_str());
                js.publish_with_headers(subject, headers, payload).await.unwrap().await.unwrap()
            }
        })
        .buffer_unordered(window)
        .collect::<Vec<_>>()
        .await;
    let elapsed = started.elapsed();
    println!(
        "jetstream: {n} acked publishes (300 B, Nats-Msg-Id, file storage, {window} in flight): {:.0}/s",
        n as f64 / elapsed.as_secs_f64()
    );
    js.delete_stream(&name).await.unwrap();
}
