//! The wallet history against real Postgres and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod openapi;

use contracts::{
    ChargeCompleted, ChargeId, Envelope, PaymentCompleted, PaymentId, PaymentRefunded, ReservationId, UserId,
    Won,
};
use serde_json::Value;
use testkit::TestEnv;

async fn start() -> (TestEnv, String) {
    let env = TestEnv::new().await.unwrap();
    let url = env.spawn_service::<wallet_history::WalletHistory>().await.unwrap();
    (env, url)
}

async fn history(env: &TestEnv, url: &str, user: UserId, query: &str) -> (u16, Value) {
    let res = reqwest::Client::new()
        .get(format!("{url}/wallets/me/history{query}"))
        .bearer_auth(env.user_token(user))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn a_charge_a_payment_and_a_refund_appear_once_each_in_order() {
    let (env, url) = start().await;
    let (user, reservation) = (UserId::new(), ReservationId::new());
    let charge = Envelope::new(
        "wallet",
        user,
        ChargeCompleted {
            charge_id: ChargeId::new(),
            user_id: user,
            amount: Won(50_000),
            balance: Won(50_000),
        },
    );
    let payment_id = PaymentId::new();
    let payment = Envelope::new(
        "wallet",
        reservation,
        PaymentCompleted {
            payment_id,
            reservation_id: reservation,
            user_id: user,
            amount: Won(20_000),
            balance: Won(30_000),
        },
    );
    let refund = Envelope::new(
        "wallet",
        reservation,
        PaymentRefunded {
            payment_id,
            reservation_id: reservation,
            user_id: user,
            amount: Won(20_000),
            balance: Won(50_000),
        },
    );
    env.publish(&charge).await.unwrap();
    env.publish(&payment).await.unwrap();
    env.publish(&refund).await.unwrap();
    // Redelivered copies (new message ids, same events).
    for (subject, body) in [
        ("wallet.charge.completed", serde_json::to_vec(&charge).unwrap()),
        ("wallet.0.payment.completed", serde_json::to_vec(&payment).unwrap()),
        ("wallet.0.payment.refunded", serde_json::to_vec(&refund).unwrap()),
    ] {
        env.publish_raw(subject, &format!("copy-{subject}"), body).await.unwrap();
    }
    env.wait_handled("wallet_history", refund.id).await;
    env.wait_handled("wallet_history", charge.id).await;
    env.wait_handled("wallet_history", payment.id).await;
    let (status, page) =
        testkit::eventually("the copies handled", std::time::Duration::from_secs(10), || async {
            let stream = env.stream_messages(contracts::Stream::Wallet).await.unwrap();
            let r = history(&env, &url, user, "").await;
            (stream == 6).then_some(r)
        })
        .await;
    assert_eq!(status, 200);
    let entries: Vec<(String, i64, i64)> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["amount"].as_i64().unwrap(),
                e["balanceAfter"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        entries,
        vec![
            ("REFUND".to_owned(), 20_000, 50_000),
            ("PAYMENT".to_owned(), 20_000, 30_000),
            ("CHARGE".to_owned(), 50_000, 50_000),
        ]
    );
    assert_eq!(page["data"][1]["reservationId"], serde_json::json!(reservation.0));
    assert_eq!(page["hasMore"], false);
    // Someone else sees none of it.
    let (_, other) = history(&env, &url, UserId::new(), "").await;
    assert!(other["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn pages_return_every_entry_exactly_once() {
    let (env, url) = start().await;
    let user = UserId::new();
    let mut ids = Vec::new();
    for i in 1..=23 {
        let e = Envelope::new(
            "wallet",
            user,
            ChargeCompleted {
                charge_id: ChargeId::new(),
                user_id: user,
                amount: Won(i),
                balance: Won(i * (i + 1) / 2),
            },
        );
        env.publish(&e).await.unwrap();
        ids.push(e.id.to_string());
    }
    env.wait_handled("wallet_history", contracts::EventId(ids.last().unwrap().parse().unwrap())).await;
    testkit::eventually("all 23 entries", std::time::Duration::from_secs(10), || async {
        let (_, p) = history(&env, &url, user, "?limit=100").await;
        (p["data"].as_array().unwrap().len() == 23).then_some(())
    })
    .await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = history(&env, &url, user, &format!("?limit=5{cursor}")).await;
        assert_eq!(status, 200);
        let data = page["data"].as_array().unwrap();
        seen.extend(data.iter().map(|e| e["id"].as_str().unwrap().to_owned()));
        if page["hasMore"] == false {
            break;
        }
        cursor = format!("&startingAfter={}", seen.last().unwrap());
    }
    ids.reverse();
    assert_eq!(seen, ids, "newest first, each once");
    assert_eq!(history(&env, &url, user, "?limit=0").await.0, 400);
    let anonymous = reqwest::get(format!("{url}/wallets/me/history")).await.unwrap();
    assert_eq!(anonymous.status(), 401);
}
