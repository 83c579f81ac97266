use crate::Wallet;
use contracts::{ChargeCompleted, ChargeFailed, ChargeFailureReason, UserId, Won};
use serde_json::json;
use std::time::Duration;
use testkit::eventually;

#[tokio::test]
async fn charges_add_up_and_are_announced() {
    let w = Wallet::start().await;
    let user = UserId::new();
    assert_eq!(w.balance(user).await, 0);

    let res = w.charge(user, json!({"amount": 5000})).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<serde_json::Value>().await.unwrap(), json!({"balance": 5000}));
    let res = w.charge(user, json!({"amount": 3000})).await;
    assert_eq!(res.json::<serde_json::Value>().await.unwrap(), json!({"balance": 8000}));
    assert_eq!(w.balance(user).await, 8000);

    let charges = eventually("two ChargeCompleted", Duration::from_secs(10), || async {
        let c = w.env.events_of::<ChargeCompleted>().await.unwrap();
        (c.len() == 2).then_some(c)
    })
    .await;
    assert_eq!(charges.iter().map(|c| c.balance).collect::<Vec<_>>(), vec![Won(5000), Won(8000)]);
    assert!(charges.iter().all(|c| c.user_id == user));
}

#[tokio::test]
async fn bad_charges_get_problems_and_change_nothing() {
    let w = Wallet::start().await;
    let user = UserId::new();
    let cases = [
        (json!({"amount": 0}), "VALIDATION_FAILED"),
        (json!({"amount": -100}), "VALIDATION_FAILED"),
        (json!({"amount": 10_000_001}), "VALIDATION_FAILED"),
        (json!({"amount": 1.5}), "VALIDATION_FAILED"),
        (json!({"amount": "100"}), "VALIDATION_FAILED"),
        (json!({"amount": 1e30}), "VALIDATION_FAILED"),
        (json!({}), "VALIDATION_FAILED"),
        (json!({"amount": 100, "currency": "USD"}), "VALIDATION_FAILED"),
    ];
    for (body, code) in cases {
        let res = w.charge(user, body.clone()).await;
        assert_eq!(res.status(), 400, "{body}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let p: serde_json::Value = res.json().await.unwrap();
        assert_eq!(p["code"], code, "{body}: {p}");
    }
    let token = w.env.user_token(user);
    let url = format!("{}/wallets/me/charges", w.url);
    let malformed = w
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"amount\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), 400);
    assert_eq!(malformed.json::<serde_json::Value>().await.unwrap()["code"], "MALFORMED_JSON");
    let not_json = w.http.post(&url).bearer_auth(&token).body("amount=5").send().await.unwrap();
    assert_eq!(not_json.status(), 415);
    let huge = w
        .http
        .post(&url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(format!("{{\"amount\": 1, \"pad\": \"{}\"}}", "x".repeat(100_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(huge.status(), 413);
    let anonymous = w.http.post(&url).json(&json!({"amount": 5})).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let forged =
        w.http.post(&url).bearer_auth("not.a.token").json(&json!({"amount": 5})).send().await.unwrap();
    assert_eq!(forged.status(), 401);

    assert_eq!(w.balance(user).await, 0);
    assert!(w.env.events_of::<ChargeCompleted>().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_repeated_idempotency_key_charges_once_and_replays_the_answer() {
    let w = Wallet::start().await;
    let user = UserId::new();
    let post = |key: &str, amount: i64| {
        w.http
            .post(format!("{}/wallets/me/charges", w.url))
            .bearer_auth(w.env.user_token(user))
            .header("Idempotency-Key", key)
            .json(&json!({"amount": amount}))
            .send()
    };
    let first = post("k-1", 1000).await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let again = post("k-1", 1000).await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), json!({"balance": 1000}));

    let other_body = post("k-1", 2000).await.unwrap();
    assert_eq!(other_body.status(), 422);
    assert_eq!(other_body.json::<serde_json::Value>().await.unwrap()["code"], "IDEMPOTENCY_KEY_REUSED");

    // Ten at once with one key: one charge, the rest replays (or told it is still running).
    let racing = futures_join(10, || post("k-2", 500)).await;
    for r in &racing {
        assert!(r.status() == 200 || r.status() == 409, "{}", r.status());
    }
    assert!(racing.iter().any(|r| r.status() == 200));
    assert_eq!(w.balance(user).await, 1500);
}

async fn futures_join<F, Fut>(n: usize, f: F) -> Vec<reqwest::Response>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut set = Vec::new();
    for _ in 0..n {
        set.push(f());
    }
    let mut out = Vec::new();
    for r in futures::future::join_all(set).await {
        out.push(r.unwrap());
    }
    out
}

#[tokio::test]
async fn a_top_up_past_the_cap_is_refused_announced_once_and_changes_nothing() {
    use sea_orm::ConnectionTrait;
    let w = Wallet::start().await;
    let user = UserId::new();
    assert_eq!(w.charge(user, json!({"amount": 1_000})).await.status(), 200);
    let near_cap: i64 = 1_000_000_000_000 - 5_000;
    w.env
        .db
        .execute_unprepared(&format!(
            "UPDATE wallet.wallets SET balance = {near_cap} WHERE user_id = '{user}'"
        ))
        .await
        .unwrap();

    // With an Idempotency-Key, twice: refused both times, the second a replay.
    let url = format!("{}/wallets/me/charges", w.url);
    let token = w.env.user_token(user);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let res = w
            .http
            .post(&url)
            .bearer_auth(&token)
            .header("Idempotency-Key", "over-the-cap")
            .json(&json!({"amount": 10_000}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 422);
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let replayed = res.headers().get("idempotent-replayed").is_some();
        let p: serde_json::Value = res.json().await.unwrap();
        assert_eq!(p["code"], "BALANCE_LIMIT", "{p}");
        answers.push(replayed);
    }
    assert_eq!(answers, [false, true]);
    // Without one, refused again: a new attempt.
    assert_eq!(w.charge(user, json!({"amount": 5_001})).await.status(), 422);
    // Up to the cap is taken.
    assert_eq!(w.charge(user, json!({"amount": 5_000})).await.status(), 200);
    assert_eq!(w.balance(user).await, 1_000_000_000_000);

    let failed = eventually("two ChargeFailed", Duration::from_secs(10), || async {
        let got = w.env.events_of::<ChargeFailed>().await.ok()?;
        (got.len() >= 2).then_some(got)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.env.events_of::<ChargeFailed>().await.unwrap().len(), 2, "one per attempt, none per replay");
    assert_eq!(
        failed.iter().map(|f| (f.user_id, f.amount, f.reason)).collect::<Vec<_>>(),
        [
            (user, Won(10_000), ChargeFailureReason::BalanceLimit),
            (user, Won(5_001), ChargeFailureReason::BalanceLimit)
        ]
    );
}
