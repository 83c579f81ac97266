use crate::scenario;
use contracts::UserId;
use e2e::api::id_of;
use reqwest::Method;
use serde_json::json;

/// Issue 4: a user waits, is admitted, books and pays, and the token expires; a user whose
/// payment fails can try again without re-queuing.
#[tokio::test]
async fn users_wait_their_turn_book_and_retry_without_requeuing() {
    let Some(s) = scenario(&[("TICKETING_QUEUE_MAX_ACTIVE", "1"), ("TICKETING_QUEUE_TICK_MS", "200")]).await
    else {
        return;
    };
    let (_, schedule) = s.api.schedule(10, 10_000).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());
    s.api.charge(alice, 10_000).await.unwrap();
    s.api.charge(bob, 5_000).await.unwrap();

    let a_token = s.api.admitted(alice).await.unwrap();
    let b_token = s.api.join(bob).await.unwrap();
    let bob_bearer = s.api.token(bob);
    let waiting = s
        .api
        .send(Method::GET, &format!("/queue/tokens/{b_token}"), Some(&bob_bearer), None, &[])
        .await
        .unwrap();
    assert_eq!(
        (waiting.body["status"].as_str(), waiting.body["position"].as_u64()),
        (Some("WAITING"), Some(1))
    );
    assert!(waiting.body["etaSeconds"].as_u64().unwrap() >= 1);
    let refused = s
        .api
        .send(
            Method::POST,
            "/reservations",
            Some(&bob_bearer),
            Some(json!({"scheduleId": schedule, "seatNos": [2]})),
            &[("X-Queue-Token", b_token.as_str())],
        )
        .await
        .unwrap();
    assert_eq!((refused.status, refused.body["code"].as_str()), (403, Some("QUEUE_NOT_ADMITTED")));

    // Alice books and pays: her token is spent at once and the slot goes to bob.
    let held = s.api.reserve(alice, schedule, &[1], 10).await.unwrap();
    let paid = s.api.pay(alice, id_of(&held).unwrap(), 10).await.unwrap();
    assert_eq!(paid.body["status"], "CONFIRMED");
    let alice_bearer = s.api.token(alice);
    s.api
        .eventually("alice's token to expire", || async {
            let t = s
                .api
                .send(Method::GET, &format!("/queue/tokens/{a_token}"), Some(&alice_bearer), None, &[])
                .await?;
            Ok(t.body["status"] == "EXPIRED")
        })
        .await
        .unwrap();
    assert_eq!(s.api.admitted(bob).await.unwrap(), b_token, "bob is admitted with the token he waited with");

    // Bob cannot pay yet: his seats stay held and his token ACTIVE, so he tops up and pays
    // again without queuing again.
    let held = s.api.reserve(bob, schedule, &[2], 10).await.unwrap();
    let id = id_of(&held).unwrap();
    let refused = s.api.pay(bob, id, 10).await.unwrap();
    assert_eq!(refused.body["status"], "HELD", "{:?}", refused);
    s.api.charge(bob, 10_000).await.unwrap();
    let t = s
        .api
        .send(Method::GET, &format!("/queue/tokens/{b_token}"), Some(&bob_bearer), None, &[])
        .await
        .unwrap();
    assert_eq!(t.body["status"], "ACTIVE", "{:?}", t.body);
    let paid = s.api.pay(bob, id, 10).await.unwrap();
    assert_eq!(paid.body["status"], "CONFIRMED");
    s.check().await.unwrap();
}
