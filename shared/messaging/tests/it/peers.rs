//! Notices between replicas (`messaging::Peers`) over a real NATS server.

use messaging::Peers;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use testkit::{TestEnv, eventually};
use tokio_util::sync::CancellationToken;

type Heard = Arc<Mutex<Vec<Vec<u8>>>>;

/// A replica: its own connections (a process of its own would have them) on the environment's
/// namespace, and what it hears.
async fn replica(env: &TestEnv) -> (Peers, Heard, CancellationToken) {
    let bus = messaging::Bus::connect(&env.config.nats_url, env.ns.clone()).await.unwrap();
    let shutdown = CancellationToken::new();
    let rt = messaging::Runtime::from_parts(
        env.config.clone(),
        env.db.clone(),
        bus,
        env.redis.clone(),
        shutdown.clone(),
    );
    let heard: Heard = Arc::default();
    let record = heard.clone();
    let peers = Peers::start(&rt, "test.changed", move |notice| record.lock().unwrap().push(notice.to_vec()));
    (peers, heard, shutdown)
}

#[tokio::test]
async fn a_replica_hears_the_others_notices_in_order_and_never_its_own() {
    let env = TestEnv::new().await.unwrap();
    let (a, heard_by_a, stop_a) = replica(&env).await;
    let (b, heard_by_b, stop_b) = replica(&env).await;
    // The subscriptions are made by the tasks just started: announce until one arrives.
    eventually("b to hear a", Duration::from_secs(10), || {
        a.announce(b"hello".to_vec());
        let heard = !heard_by_b.lock().unwrap().is_empty();
        async move { heard.then_some(()) }
    })
    .await;

    let notices: Vec<Vec<u8>> = (0..500u32).map(|n| n.to_be_bytes().to_vec()).collect();
    for n in &notices {
        a.announce(n.clone());
    }
    b.announce(b"from b".to_vec());
    // Besides the greetings (the last of which may still be on its way).
    let numbered = || -> Vec<Vec<u8>> {
        heard_by_b.lock().unwrap().iter().filter(|n| n.as_slice() != b"hello").cloned().collect()
    };
    eventually("every notice of a at b", Duration::from_secs(10), || {
        let done = numbered().len() >= notices.len();
        async move { done.then_some(()) }
    })
    .await;
    assert_eq!(numbered(), notices, "all of them, in order, and nothing of b's own");
    eventually("b's notice at a", Duration::from_secs(10), || {
        let heard = heard_by_a.lock().unwrap().contains(&b"from b".to_vec());
        async move { heard.then_some(()) }
    })
    .await;
    assert!(!heard_by_a.lock().unwrap().iter().any(|n| n == b"hello"), "a never hears itself");
    stop_a.cancel();
    stop_b.cancel();
}
