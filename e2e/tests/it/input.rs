use crate::{Scenario, scenario};
use contracts::UserId;
use e2e::api::id_of;
use reqwest::Method;
use serde_json::{Value, json};

/// A request and the status it must get: method, path, bearer token, JSON body, status.
type Case<'a> = (Method, String, Option<&'a str>, Option<Value>, u16);

/// Booking routes also need the caller's ACTIVE queue token.
fn booking(method: &Method, path: &str) -> bool {
    *method == Method::POST && (path == "/reservations" || path.ends_with("/payment"))
}

/// Every concert of the deployment (a shared one has others'), page by page.
async fn concerts(s: &Scenario) -> Vec<Value> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page =
            s.api.send(Method::GET, &format!("/concerts?limit=100{after}"), None, None, &[]).await.unwrap();
        let data = page.body["data"].as_array().unwrap().clone();
        if let Some(last) = data.last() {
            after = format!("&startingAfter={}", last["id"].as_str().unwrap());
        }
        all.extend(data);
        if page.body["hasMore"] != true {
            return all;
        }
    }
}

/// Scenario 10: bad input on every route gets problem+json and changes nothing.
#[tokio::test]
async fn bad_input_on_every_route_changes_nothing() {
    // One user sends every bad request in a row, faster than the per-user rate limit allows:
    // that limit (tested on its own) would answer before the checks this scenario is about.
    let Some(s) = scenario(&[("TICKETING_RATE_PER_USER", "0")]).await else { return };
    let (concert, schedule) = s.api.schedule(10, 10_000).await.unwrap();
    let (user, other) = (UserId::new(), UserId::new());
    s.api.charge(user, 20_000).await.unwrap();
    let held = s.api.reserve(user, schedule, &[1], 10).await.unwrap();
    let id = id_of(&held).unwrap();
    let (token, other_token, admin) = (s.api.token(user), s.api.token(other), s.api.admin());
    let (queue, other_queue) = (s.api.admitted(user).await.unwrap(), s.api.admitted(other).await.unwrap());
    let nobody = uuid::Uuid::now_v7();
    let concerts_before = concerts(&s).await;

    let cases: Vec<Case> = vec![
        // wallet
        (Method::POST, "/wallets/me/charges".into(), Some(&token), Some(json!({"amount": -5})), 400),
        (Method::POST, "/wallets/me/charges".into(), Some(&token), Some(json!({"amount": 0})), 400),
        (Method::POST, "/wallets/me/charges".into(), Some(&token), Some(json!({"amount": 10_000_001})), 400),
        (Method::POST, "/wallets/me/charges".into(), Some(&token), Some(json!({"amount": 9.99})), 400),
        (
            Method::POST,
            "/wallets/me/charges".into(),
            Some(&token),
            Some(json!({"amount": 5, "to": "x"})),
            400,
        ),
        (Method::POST, "/wallets/me/charges".into(), None, Some(json!({"amount": 5})), 401),
        (Method::GET, "/wallets/me".into(), None, None, 401),
        // reservations
        (
            Method::POST,
            "/reservations".into(),
            Some(&token),
            // As documented (1-50), but the schedule has 10 seats.
            Some(json!({"scheduleId": schedule, "seatNos": [11]})),
            422,
        ),
        (
            Method::POST,
            "/reservations".into(),
            Some(&token),
            Some(json!({"scheduleId": schedule, "seatNos": [2, 3, 4, 5, 6]})),
            400,
        ),
        (
            Method::POST,
            "/reservations".into(),
            Some(&token),
            Some(json!({"scheduleId": schedule, "seatNos": []})),
            400,
        ),
        (
            Method::POST,
            "/reservations".into(),
            Some(&token),
            Some(json!({"scheduleId": schedule, "seatNos": [3, 3]})),
            400,
        ),
        (
            Method::POST,
            "/reservations".into(),
            Some(&token),
            Some(json!({"scheduleId": nobody, "seatNos": [1]})),
            404,
        ),
        (
            Method::POST,
            "/reservations".into(),
            None,
            Some(json!({"scheduleId": schedule, "seatNos": [2]})),
            401,
        ),
        (Method::GET, format!("/reservations/{id}"), Some(&other_token), None, 404),
        (Method::POST, format!("/reservations/{id}/payment"), Some(&other_token), None, 404),
        (Method::DELETE, format!("/reservations/{id}"), Some(&other_token), None, 404),
        (Method::GET, "/reservations/not-an-id".into(), Some(&token), None, 400),
        (Method::POST, format!("/reservations/{nobody}/payment"), Some(&token), None, 404),
        (Method::GET, "/reservations?limit=1000".into(), Some(&token), None, 400),
        // catalog and seats
        (Method::POST, "/concerts".into(), Some(&token), Some(json!({"name": "X", "host": "Y"})), 403),
        (Method::POST, "/concerts".into(), Some(&admin), Some(json!({"name": "", "host": "Y"})), 400),
        // A NUL reached Postgres and was answered 500 (found by scripts/fuzz-api).
        (Method::POST, "/concerts".into(), Some(&admin), Some(json!({"name": "a\u{0}b", "host": "Y"})), 400),
        // A window ending in a multi-byte character panicked the handler (scripts/fuzz-api).
        (Method::GET, "/rankings/concerts?window=%C3%8C".into(), None, None, 400),
        (Method::GET, "/rankings/concerts?window=5%C3%8C".into(), None, None, 400),
        (
            Method::PUT,
            format!("/concerts/{concert}"),
            Some(&token),
            Some(json!({"name": "X", "host": "Y"})),
            403,
        ),
        (
            Method::POST,
            format!("/concerts/{concert}/schedules"),
            Some(&admin),
            Some(json!({"startsAt": "2020-01-01T00:00:00Z", "price": 5})),
            422,
        ),
        (Method::GET, format!("/concerts/{nobody}"), None, None, 404),
        (Method::GET, format!("/schedules/{nobody}/seats"), None, None, 404),
        (Method::GET, format!("/schedules/{schedule}/seats?status=FREE"), None, None, 400),
    ];
    for (method, path, token, body, expected) in cases {
        let holder = if token == Some(other_token.as_str()) { &other_queue } else { &queue };
        let headers: Vec<(&str, &str)> =
            if booking(&method, &path) { vec![("X-Queue-Token", holder.as_str())] } else { Vec::new() };
        let a = s.api.send(method.clone(), &path, token, body.clone(), &headers).await.unwrap();
        assert_eq!(a.status, expected, "{method} {path} {body:?}: {:?}", a.body);
        assert_eq!(a.headers["content-type"], "application/problem+json", "{method} {path}");
        assert!(a.body["code"].is_string() && a.body["detail"].is_string(), "{method} {path}: {:?}", a.body);
    }
    // The waiting room's guard on the booking routes.
    let book = json!({"scheduleId": schedule, "seatNos": [2]});
    for (headers, status, code) in [
        (vec![], 401, "QUEUE_TOKEN_REQUIRED"),
        (vec![("X-Queue-Token", other_queue.as_str())], 403, "QUEUE_TOKEN_FOREIGN"),
        (vec![("X-Queue-Token", "0190a0a0-0000-7000-8000-000000000000")], 401, "QUEUE_TOKEN_UNKNOWN"),
    ] {
        let a = s
            .api
            .send(Method::POST, "/reservations", Some(&token), Some(book.clone()), &headers)
            .await
            .unwrap();
        assert_eq!((a.status, a.body["code"].as_str()), (status, Some(code)), "{headers:?}");
    }
    for path in ["/wallets/me/charges", "/reservations", "/concerts"] {
        let t = if path == "/concerts" { &admin } else { &token };
        let headers = [("X-Queue-Token", queue.as_str())];
        let a = s
            .api
            .send_raw(Method::POST, path, t, &headers, "application/json", "{not json".into())
            .await
            .unwrap();
        assert_eq!((a.status, a.body["code"].as_str()), (400, Some("MALFORMED_JSON")), "{path}");
    }

    // Nothing changed.
    assert_eq!(s.api.balance(user).await.unwrap(), 20_000);
    assert_eq!(s.api.balance(other).await.unwrap(), 0);
    assert_eq!(s.api.reservation(user, id).await.unwrap()["status"], "HELD");
    let mine = s.api.send(Method::GET, "/reservations", Some(&token), None, &[]).await.unwrap();
    assert_eq!(mine.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(concerts(&s).await, concerts_before, "no concert was made or changed");
    let seats = s.api.seats(schedule).await.unwrap();
    assert_eq!(seats.values().filter(|v| *v == "AVAILABLE").count(), 9);

    let cancel =
        s.api.send(Method::DELETE, &format!("/reservations/{id}"), Some(&token), None, &[]).await.unwrap();
    assert_eq!(cancel.body["status"], "CANCELLED");
    s.check().await.unwrap();
}
