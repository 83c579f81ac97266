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

/// Issue 24: those who join a sale's room before it opens are admitted at the opening, not
/// before, in an order drawn at random; a global-room token cannot book the sale early.
#[tokio::test]
async fn a_sale_admits_no_one_before_it_opens_and_then_its_early_joiners_first() {
    let Some(s) = scenario(&[("TICKETING_QUEUE_TICK_MS", "200")]).await else {
        return;
    };
    let opens = chrono::Utc::now() + chrono::Duration::seconds(6);
    let (_, schedule) = s.api.schedule_opening(10, 10_000, Some(opens)).await.unwrap();

    // Booking with a token of the global room before the opening: the seats are not on sale.
    let early_bird = UserId::new();
    let refused = s.api.reserve(early_bird, schedule, &[1], 10).await.unwrap();
    if chrono::Utc::now() < opens {
        assert_eq!(
            (refused.body["status"].as_str(), refused.body["failureReason"].as_str()),
            (Some("FAILED"), Some("NOT_ON_SALE")),
            "{:?}",
            refused
        );
    }

    let users: Vec<UserId> = (0..6).map(|_| UserId::new()).collect();
    let mut tokens = Vec::new();
    for u in &users {
        let joined = s
            .api
            .send(
                Method::POST,
                "/queue/tokens",
                Some(&s.api.token(*u)),
                Some(json!({"scheduleId": schedule})),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(joined.status, 201, "{:?}", joined);
        if chrono::Utc::now() < opens {
            assert!(joined.body["salesOpenAt"].is_string(), "{:?}", joined.body);
        }
        let token = joined.body["token"].as_str().unwrap().to_owned();
        s.api.remember_token(*u, &token);
        tokens.push(token);
    }
    // Every token turns ACTIVE, none before the opening.
    for (u, t) in users.iter().zip(&tokens) {
        let bearer = s.api.token(*u);
        s.api
            .eventually("an early joiner to be admitted", || async {
                let read =
                    s.api.send(Method::GET, &format!("/queue/tokens/{t}"), Some(&bearer), None, &[]).await?;
                let active = read.body["status"] == "ACTIVE";
                anyhow::ensure!(
                    !active || chrono::Utc::now() >= opens,
                    "admitted before the opening: {:?}",
                    read
                );
                Ok(active)
            })
            .await
            .unwrap();
    }
    s.api.charge(users[0], 10_000).await.unwrap();
    let held = s.api.reserve(users[0], schedule, &[2], 10).await.unwrap();
    assert_eq!(held.body["status"], "HELD", "{:?}", held);
    let paid = s.api.pay(users[0], id_of(&held).unwrap(), 10).await.unwrap();
    assert_eq!(paid.body["status"], "CONFIRMED", "{:?}", paid);
    s.api.leave_all().await.unwrap();
    s.check().await.unwrap();
}
