use crate::Scenario;
use contracts::UserId;
use e2e::{api::id_of, invariants::DeadLetters};
use reqwest::Method;
use serde_json::json;
use std::sync::{Arc, Mutex};

/// A stand-in for the external data platform: records every delivery it receives.
async fn receiver(env: &testkit::TestEnv) -> (String, Arc<Mutex<Vec<(String, serde_json::Value)>>>) {
    let got: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let record = got.clone();
    let app = axum::Router::new().route(
        "/deliveries",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::Json<serde_json::Value>| {
            let record = record.clone();
            async move {
                let id = headers
                    .get("x-ticketing-delivery")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                record.lock().unwrap().push((id, body.0));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    (format!("{}/deliveries", env.spawn_raw(app).await.unwrap()), got)
}

/// Scenario 1: charge → hold 2 seats → pay → CONFIRMED; seats SOLD; balance reduced by their
/// price; the read side shows the history, the ranking change and the delivery.
#[tokio::test]
async fn happy_path() {
    let env = testkit::TestEnv::new().await.unwrap();
    let (platform_url, delivered) = receiver(&env).await;
    let s = Scenario::start_in(
        env,
        &[
            ("TICKETING_EXTERNAL_DATA_URL", &platform_url),
            ("TICKETING_EXTERNAL_DATA_SECRET", "e2e-external-secret-0123"),
        ],
    )
    .await;
    let (concert, schedule) = s.api.schedule(50, 10_000).await.unwrap();
    let user = UserId::new();
    assert_eq!(s.api.charge(user, 50_000).await.unwrap(), 50_000);

    let held = s.api.reserve(user, schedule, &[1, 2], 10).await.unwrap();
    assert_eq!(held.status, 200, "{:?}", held);
    assert_eq!(held.body["status"], "HELD");
    assert_eq!(held.body["amount"], 20_000);
    let id = id_of(&held).unwrap();

    let paid = s.api.pay(user, id, 10).await.unwrap();
    assert_eq!((paid.status, paid.body["status"].as_str()), (200, Some("CONFIRMED")), "{:?}", paid);
    // The seat service sells on ReservationCompleted, just after the reservation is CONFIRMED.
    s.api
        .eventually("seats 1 and 2 sold", || async {
            let seats = s.api.seats(schedule).await?;
            Ok((seats[&1].as_str(), seats[&2].as_str(), seats[&3].as_str()) == ("SOLD", "SOLD", "AVAILABLE"))
        })
        .await
        .unwrap();
    assert_eq!(s.api.balance(user).await.unwrap(), 30_000);

    // The read side: the user's history and the concert's place in the ranking.
    let token = s.api.token(user);
    s.api
        .eventually("the wallet history", || async {
            let h = s.api.send(Method::GET, "/wallets/me/history", Some(&token), None, &[]).await?;
            let kinds: Vec<(String, i64)> = h.body["data"]
                .as_array()
                .map(|d| {
                    d.iter()
                        .map(|e| {
                            (
                                e["kind"].as_str().unwrap_or("").to_owned(),
                                e["balanceAfter"].as_i64().unwrap_or(-1),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            Ok(kinds == vec![("PAYMENT".to_owned(), 30_000), ("CHARGE".to_owned(), 50_000)])
        })
        .await
        .unwrap();
    s.api
        .eventually("the ranking", || async {
            let r = s.api.send(Method::GET, "/rankings/concerts?window=60m", None, None, &[]).await?;
            Ok(r.body["data"][0]["concertId"] == json!(concert)
                && r.body["data"][0]["confirmedSeats"] == 2
                && r.body["data"][0]["name"] == "E2E")
        })
        .await
        .unwrap();
    let id = id_of(&held).unwrap();
    s.api
        .eventually("the delivery to the external platform", || async {
            Ok(delivered.lock().unwrap().iter().any(|(_, body)| body["reservationId"] == json!(id)))
        })
        .await
        .unwrap();
    let deliveries = delivered.lock().unwrap().clone();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert!(!deliveries[0].0.is_empty(), "each delivery names itself");
    assert_eq!(deliveries[0].1["seatNos"], json!([1, 2]));
    s.check(DeadLetters::None).await;
}

/// Scenario 2: insufficient balance → FAILED(PAYMENT_FAILED) → seats AVAILABLE again.
#[tokio::test]
async fn insufficient_balance() {
    let s = Scenario::start(&[]).await;
    let (_, schedule) = s.api.schedule(50, 10_000).await.unwrap();
    let user = UserId::new();
    s.api.charge(user, 5_000).await.unwrap();
    let held = s.api.reserve(user, schedule, &[3], 10).await.unwrap();
    let id = id_of(&held).unwrap();
    let paid = s.api.pay(user, id, 10).await.unwrap();
    assert_eq!(paid.body["status"], "FAILED", "{:?}", paid);
    assert_eq!(paid.body["failureReason"], "PAYMENT_FAILED");
    s.api
        .eventually("seat 3 released", || async { Ok(s.api.seats(schedule).await?[&3] == "AVAILABLE") })
        .await
        .unwrap();
    assert_eq!(s.api.balance(user).await.unwrap(), 5_000);
    s.check(DeadLetters::None).await;
}
