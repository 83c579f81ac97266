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
