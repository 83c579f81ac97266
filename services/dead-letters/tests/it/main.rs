//! The dead letters over HTTP against NATS, as the service's own NATS user would see them.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod openapi;

use contracts::{ConcertCreated, ConcertId, DeadLetter, Envelope, Stream};
use serde_json::Value;
use testkit::TestEnv;

/// A letter as a consumer writes it for `event`, first published as stream sequence `seq`.
fn letter(event: &Envelope<ConcertCreated>, subject: &str, seq: u64) -> DeadLetter {
    use base64::Engine as _;
    DeadLetter {
        original_subject: subject.to_owned(),
        stream_sequence: seq,
        event_id: Some(event.id.to_string()),
        event_type: Some("ConcertCreated".into()),
        consumer: "ranking__CATALOG".into(),
        deliveries: 8,
        reason: "the handler refused it".into(),
        failed_at: chrono::Utc::now(),
        original_headers: vec![("Nats-Msg-Id".into(), event.id.to_string())],
        original_body: base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(event).unwrap()),
    }
}

async fn call(url: &str, method: reqwest::Method, path: &str, token: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_admin_lists_inspects_replays_and_discards_dead_letters_and_no_one_else_may() {
    let env = TestEnv::new().await.unwrap();
    let url = env.spawn_service::<dead_letters::DeadLetters>().await.unwrap();
    let admin = env.admin_token();
    let c = ConcertId::new();
    let event =
        Envelope::new("concert", c, ConcertCreated { concert_id: c, name: "Lost".into(), host: "h".into() });
    let subject = env.bus.ns.subject("catalog.concert.created");
    for (n, l) in [letter(&event, &subject, 7), letter(&event, &subject, 9)].into_iter().enumerate() {
        let body = serde_json::to_vec(&l).unwrap();
        env.publish_raw("dlq.ranking", &format!("letter-{n}"), body).await.unwrap();
    }
    // An outbox row JetStream refused: nothing to publish.
    let mut refused = letter(&event, &subject, 0);
    refused.original_body = String::new();
    refused.consumer = "outbox[concert]".into();
    env.publish_raw("dlq.concert", "letter-refused", serde_json::to_vec(&refused).unwrap()).await.unwrap();

    let (status, _) =
        call(&url, reqwest::Method::GET, "/dead-letters", &env.user_token(contracts::UserId::new())).await;
    assert_eq!(status, 403);
    let (status, list) = call(&url, reqwest::Method::GET, "/dead-letters?limit=10", &admin).await;
    assert_eq!((status, list["total"].as_u64()), (200, Some(3)), "{list}");
    let seqs: Vec<u64> =
        list["data"].as_array().unwrap().iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(list["data"][0]["originalSubject"], subject.as_str());
    assert_eq!(list["data"][2]["replayable"], false);

    let (status, one) = call(&url, reqwest::Method::GET, &format!("/dead-letters/{}", seqs[0]), &admin).await;
    assert_eq!(status, 200);
    assert_eq!(one["message"]["payload"]["name"], "Lost", "{one}");

    // Replayed: back on its subject, and gone from the dead letters.
    let before = env.stream_messages(Stream::Catalog).await.unwrap();
    let (status, replayed) =
        call(&url, reqwest::Method::POST, &format!("/dead-letters/{}/replay", seqs[0]), &admin).await;
    assert_eq!((status, replayed["consumer"].as_str()), (200, Some("ranking__CATALOG")), "{replayed}");
    assert_eq!(env.stream_messages(Stream::Catalog).await.unwrap(), before + 1);
    let (status, _) = call(&url, reqwest::Method::GET, &format!("/dead-letters/{}", seqs[0]), &admin).await;
    assert_eq!(status, 404);
    // The refused outbox row cannot be replayed, and stays.
    let (status, problem) =
        call(&url, reqwest::Method::POST, &format!("/dead-letters/{}/replay", seqs[2]), &admin).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("NOT_REPLAYABLE")), "{problem}");
    // Discarded, once.
    let path = format!("/dead-letters/{}", seqs[1]);
    assert_eq!(call(&url, reqwest::Method::DELETE, &path, &admin).await.0, 204);
    assert_eq!(call(&url, reqwest::Method::DELETE, &path, &admin).await.0, 404);
    let (_, list) = call(&url, reqwest::Method::GET, "/dead-letters", &admin).await;
    assert_eq!(list["total"], 1);
    let (status, _) = call(&url, reqwest::Method::GET, "/dead-letters?limit=0", &admin).await;
    assert_eq!(status, 400);
}
