use crate::Service;
use contracts::UserId;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn booking_routes_need_an_active_queue_token() {
    let s = Service::start_with(&[("TICKETING_DEV_SKIP_QUEUE_TOKEN", "false")]).await;
    let user = UserId::new();
    let body = json!({"scheduleId": s.schedule, "seatNos": [1]});
    let (status, problem) = s.call(Method::POST, "/reservations", user, Some(body.clone())).await;
    assert_eq!((status, problem["code"].as_str()), (401, Some("QUEUE_TOKEN_REQUIRED")));
    let unknown = uuid::Uuid::new_v4().to_string();
    let (status, problem) = s
        .call_with(Method::POST, "/reservations", user, Some(body), &[("X-Queue-Token", unknown.as_str())])
        .await;
    assert_eq!((status, problem["code"].as_str()), (401, Some("QUEUE_TOKEN_UNKNOWN")));
    let id = uuid::Uuid::now_v7();
    let (status, problem) = s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    assert_eq!((status, problem["code"].as_str()), (401, Some("QUEUE_TOKEN_REQUIRED")));
    // Reading and cancelling need no token.
    let (status, _) = s.call(Method::GET, "/reservations", user, None).await;
    assert_eq!(status, 200);
    assert!(s.requested().await.is_empty());
}

/// The guard reads the waiting room as the reservation service's own Redis user, as in the
/// deployed shape: that user may only read the queue's keys, and its script must run read-only.
#[tokio::test]
async fn the_guard_admits_with_the_read_only_rights_of_the_services_redis_user() {
    let env = testkit::TestEnv::new().await.unwrap();
    let acl = env
        .redis_as(reservation::NAME, &<reservation::Reservations as servicekit::Service>::REDIS)
        .await
        .unwrap();
    let mut admin = env.redis.clone();

    // An admitted token, as the queue service writes it.
    let user = UserId::new();
    let token = uuid::Uuid::new_v4().to_string();
    let keys = platform::queue_guard::QueueKeys::new(&env.config.prefix);
    let until = (chrono::Utc::now() + chrono::Duration::minutes(5)).timestamp_millis();
    let fields =
        [("user", user.to_string()), ("status", "ACTIVE".into()), ("activeUntil", until.to_string())];
    let () = redis::cmd("HSET").arg(keys.token(&token)).arg(&fields).query_async(&mut admin).await.unwrap();

    let s = Service::start_in(env, acl, &[("TICKETING_DEV_SKIP_QUEUE_TOKEN", "false")]).await;
    let body = json!({"scheduleId": s.schedule, "seatNos": [1]});
    let headers = [("X-Queue-Token", token.as_str())];
    let (status, answer) = s.call_with(Method::POST, "/reservations", user, Some(body), &headers).await;
    assert!(matches!(status, 200 | 202), "{status} {answer}");
    let requested = testkit::eventually(
        "the request to the seat service",
        std::time::Duration::from_secs(10),
        || async { s.requested().await.pop() },
    )
    .await;
    assert_eq!(requested.user_id, user);
}
