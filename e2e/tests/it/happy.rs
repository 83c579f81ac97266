use crate::Scenario;
use contracts::UserId;
use e2e::{api::id_of, invariants::DeadLetters};
use reqwest::Method;
use serde_json::json;

/// Scenario 1: charge → hold 2 seats → pay → CONFIRMED; seats SOLD; balance reduced by their price.
#[tokio::test]
async fn happy_path() {
    let s = Scenario::start(&[]).await;
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
