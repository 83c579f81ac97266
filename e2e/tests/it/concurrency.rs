use crate::scenario;
use contracts::UserId;
use e2e::api::id_of;
use reqwest::Method;
use serde_json::json;

/// Scenario 5: 50 users race for the same seat: exactly one CONFIRMED; each of the 49 others is
/// turned away, by the saga (FAILED with SEAT_UNAVAILABLE) or, when the winner's reservation was
/// already live, at once (409 SEAT_UNAVAILABLE, no reservation made).
#[tokio::test]
async fn fifty_users_race_for_one_seat() {
    let Some(s) = scenario(&[]).await else { return };
    let (_, schedule) = s.api.schedule(50, 10_000).await.unwrap();
    let users: Vec<UserId> = (0..50).map(|_| UserId::new()).collect();
    futures::future::try_join_all(users.iter().map(|u| s.api.charge(*u, 10_000))).await.unwrap();

    let answers = futures::future::try_join_all(users.iter().map(|u| s.api.reserve(*u, schedule, &[7], 10)))
        .await
        .unwrap();
    let winners: Vec<usize> = (0..50).filter(|i| answers[*i].body["status"] == "HELD").collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        answers.iter().map(|a| a.body["status"].clone()).collect::<Vec<_>>()
    );
    for (i, a) in answers.iter().enumerate() {
        if i != winners[0] {
            let turned_away = if a.status == 409 {
                (a.body["code"].as_str(), a.body["code"].as_str())
            } else {
                (a.body["status"].as_str(), a.body["failureReason"].as_str())
            };
            assert!(
                [
                    (Some("FAILED"), Some("SEAT_UNAVAILABLE")),
                    (Some("SEAT_UNAVAILABLE"), Some("SEAT_UNAVAILABLE"))
                ]
                .contains(&turned_away),
                "{a:?}"
            );
        }
    }
    let w = winners[0];
    let paid = s.api.pay(users[w], id_of(&answers[w]).unwrap(), 10).await.unwrap();
    assert_eq!(paid.body["status"], "CONFIRMED");
    // Settled first: the seat service sells on ReservationCompleted, after CONFIRMED.
    s.check().await.unwrap();
    let seats = s.api.seats(schedule).await.unwrap();
    assert_eq!(seats.values().filter(|v| *v == "SOLD").count(), 1);
    assert_eq!(seats[&7], "SOLD");
}

/// Scenario 6: two reservations asking for overlapping seat sets: never a partial hold.
#[tokio::test]
async fn overlapping_requests_never_hold_part_of_a_set() {
    let Some(s) = scenario(&[]).await else { return };
    let (_, schedule) = s.api.schedule(50, 1_000).await.unwrap();
    let (a, b) = (UserId::new(), UserId::new());
    for round in 0..6 {
        let base = round * 8;
        let set_a = [base + 1, base + 2, base + 3];
        let set_b = [base + 3, base + 4, base + 5];
        let (ra, rb) =
            tokio::join!(s.api.reserve(a, schedule, &set_a, 10), s.api.reserve(b, schedule, &set_b, 10));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        let held: Vec<_> = [(&ra, &set_a, a), (&rb, &set_b, b)]
            .into_iter()
            .filter(|(r, _, _)| r.body["status"] == "HELD")
            .collect();
        assert_eq!(held.len(), 1, "round {round}: {:?} / {:?}", ra.body, rb.body);
        let (winner, winning_set, owner) = held[0];
        let seats = s.api.seats(schedule).await.unwrap();
        for n in base + 1..=base + 5 {
            let expected = if winning_set.contains(&n) { "HELD" } else { "AVAILABLE" };
            assert_eq!(seats[&i64::from(n)], expected, "round {round} seat {n}");
        }
        let cancel = s
            .api
            .send(
                Method::DELETE,
                &format!("/reservations/{}", id_of(winner).unwrap()),
                Some(&s.api.token(owner)),
                None,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(cancel.body["status"], "CANCELLED");
    }
    s.api
        .eventually("every seat released", || async {
            Ok(s.api.seats(schedule).await?.values().all(|v| v == "AVAILABLE"))
        })
        .await
        .unwrap();
    s.check().await.unwrap();
}

/// Scenario 7: the same POST repeated with one Idempotency-Key: one reservation, one payment, one charge.
#[tokio::test]
async fn repeated_posts_with_one_key_take_effect_once() {
    let Some(s) = scenario(&[]).await else { return };
    let (_, schedule) = s.api.schedule(10, 10_000).await.unwrap();
    let user = UserId::new();
    let token = s.api.token(user);
    let queue = s.api.admitted(user).await.unwrap();
    let post = |path: &'static str, body: Option<serde_json::Value>, key: &'static str| {
        let (token, queue, api) = (token.clone(), queue.clone(), s.api.clone());
        async move {
            let headers =
                [("Idempotency-Key", key), ("Prefer", "wait=10"), ("X-Queue-Token", queue.as_str())];
            api.send(Method::POST, path, Some(&token), body, &headers).await
        }
    };
    for _ in 0..3 {
        let a = post("/wallets/me/charges", Some(json!({"amount": 25_000})), "charge-1").await.unwrap();
        assert_eq!(a.body["balance"], 25_000);
    }
    let mut ids = Vec::new();
    for _ in 0..3 {
        let a = post("/reservations", Some(json!({"scheduleId": schedule, "seatNos": [4, 5]})), "reserve-1")
            .await
            .unwrap();
        ids.push(id_of(&a).unwrap());
    }
    assert!(ids.iter().all(|i| *i == ids[0]));
    let id = ids[0];
    s.api.wait_status(user, id, "HELD").await.unwrap();
    let path: &'static str = Box::leak(format!("/reservations/{id}/payment").into_boxed_str());
    for _ in 0..3 {
        let a = post(path, None, "pay-1").await.unwrap();
        assert!(a.status == 200 || a.status == 202, "{:?}", a);
    }
    s.api.wait_status(user, id, "CONFIRMED").await.unwrap();
    assert_eq!(s.api.balance(user).await.unwrap(), 5_000);
    let list = s.api.send(Method::GET, "/reservations", Some(&token), None, &[]).await.unwrap();
    assert_eq!(list.body["data"].as_array().unwrap().len(), 1);
    s.check().await.unwrap();
}
