//! The admin routes: who may call them, filters, pagination, retry rules. With no platform
//! configured, deliveries are recorded and stay PENDING.

use crate::{Service, WAIT};
use contracts::UserId;
use reqwest::Method;
use serde_json::Value;
use std::collections::HashSet;
use testkit::eventually;

#[tokio::test]
async fn only_admins_see_and_retry_deliveries() {
    let svc = Service::start_unconfigured().await;
    let list = format!("{}/external-data/deliveries", svc.url);
    let retry = format!("{}/external-data/deliveries/{}/retry", svc.url, uuid::Uuid::now_v7());

    let anonymous = svc.http.get(&list).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["content-type"], "application/problem+json");
    let user = svc.env.user_token(UserId::new());
    let forbidden = svc.http.get(&list).bearer_auth(&user).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);
    assert_eq!(forbidden.json::<Value>().await.unwrap()["code"], "FORBIDDEN");
    assert_eq!(svc.http.post(&retry).send().await.unwrap().status(), 401);
    assert_eq!(svc.http.post(&retry).bearer_auth(&user).send().await.unwrap().status(), 403);
}

#[tokio::test]
async fn bad_queries_and_unknown_or_unretryable_deliveries_get_problems() {
    let svc = Service::start_unconfigured().await;
    for query in ["status=LOST", "status=pending", "limit=0", "limit=101", "startingAfter=nope", "colour=red"]
    {
        let (status, problem) = svc.admin(Method::GET, &format!("/external-data/deliveries?{query}")).await;
        assert_eq!(status, 400, "{query}: {problem}");
        assert_eq!(problem["code"], "VALIDATION_FAILED", "{query}: {problem}");
    }
    let (status, problem) =
        svc.admin(Method::POST, &format!("/external-data/deliveries/{}/retry", uuid::Uuid::now_v7())).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("NOT_FOUND")), "{problem}");
    let (status, problem) = svc.admin(Method::POST, "/external-data/deliveries/not-a-uuid/retry").await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("INVALID_PATH")), "{problem}");

    let reservation = svc.complete().await.payload.reservation_id;
    let pending = svc.wait_status(reservation, "PENDING").await;
    let (status, problem) = svc
        .admin(Method::POST, &format!("/external-data/deliveries/{}/retry", pending["id"].as_str().unwrap()))
        .await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("NOT_RETRYABLE")), "{problem}");
}

#[tokio::test]
async fn deliveries_are_recorded_without_a_platform_and_paged_newest_first() {
    let svc = Service::start_unconfigured().await;
    let mut reservations = Vec::new();
    for _ in 0..5 {
        reservations.push(svc.complete().await.payload.reservation_id.to_string());
    }
    eventually("five deliveries recorded", WAIT, || async {
        let (_, page) = svc.admin(Method::GET, "/external-data/deliveries?limit=100").await;
        (page["data"].as_array()?.len() == 5).then_some(())
    })
    .await;

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let after = cursor.as_ref().map(|c| format!("&startingAfter={c}")).unwrap_or_default();
        let (status, page) =
            svc.admin(Method::GET, &format!("/external-data/deliveries?status=PENDING&limit=2{after}")).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        let data = page["data"].as_array().unwrap();
        for d in data {
            assert_eq!(d["status"], "PENDING", "no platform, so nothing is sent: {d}");
            assert_eq!(d["attempts"], 0, "{d}");
            assert!(d["nextAttemptAt"].is_string() && d["createdAt"].is_string(), "{d}");
            seen.push(d.clone());
        }
        if !page["hasMore"].as_bool().unwrap() {
            break;
        }
        cursor = Some(data.last().unwrap()["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(pages, 3);
    let ids: Vec<&str> = seen.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5, "every delivery once: {ids:?}");
    let mut newest_first = ids.clone();
    newest_first.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, newest_first);
    let listed: HashSet<&str> = seen.iter().map(|d| d["reservationId"].as_str().unwrap()).collect();
    assert_eq!(listed, reservations.iter().map(String::as_str).collect());

    for (status, expected) in [("DELIVERED", 0), ("FAILED", 0), ("PENDING", 5)] {
        let (_, page) = svc.admin(Method::GET, &format!("/external-data/deliveries?status={status}")).await;
        assert_eq!(page["data"].as_array().unwrap().len(), expected, "{status}: {page}");
    }
}
