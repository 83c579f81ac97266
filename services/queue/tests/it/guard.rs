use crate::{base_ms, conn, keys, settings};
use axum::{Json, Router, extract::FromRef, routing::post};
use contracts::UserId;
use platform::{
    auth::JwtKeys,
    queue_guard::{Admitted, QueueGate},
};
use queue::store;
use testkit::TestEnv;

#[derive(Clone)]
struct Booking {
    gate: QueueGate,
    jwt: JwtKeys,
}

impl FromRef<Booking> for QueueGate {
    fn from_ref(s: &Booking) -> Self {
        s.gate.clone()
    }
}

impl FromRef<Booking> for JwtKeys {
    fn from_ref(s: &Booking) -> Self {
        s.jwt.clone()
    }
}

async fn book(admitted: Admitted) -> Json<serde_json::Value> {
    Json(serde_json::json!({"user": admitted.identity.user_id, "token": admitted.token}))
}

async fn app(env: &TestEnv, required: bool) -> String {
    let state = Booking { gate: QueueGate::new(env.redis.clone(), &env.ns, required), jwt: env.jwt() };
    env.spawn_app(Router::new().route("/book", post(book)).with_state(state)).await.unwrap()
}

async fn call(url: &str, env: &TestEnv, user: UserId, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut req = reqwest::Client::new().post(format!("{url}/book")).bearer_auth(env.user_token(user));
    if let Some(t) = token {
        req = req.header("X-Queue-Token", t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    if status >= 400 {
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn only_an_active_token_of_the_caller_passes() {
    let env = TestEnv::new().await.unwrap();
    let url = app(&env, true).await;
    let (keys, s) = (keys(&env), settings(1, 1));
    let mut c = conn(&env).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let active = store::join(&mut c, &keys, alice, base_ms()).await.unwrap().token;
    let waiting = store::join(&mut c, &keys, bob, base_ms()).await.unwrap().token;
    store::tick(&mut c, &keys, &s, base_ms() + 1000).await.unwrap();

    let unknown = uuid::Uuid::new_v4().to_string();
    for (user, token, status, code) in [
        (alice, None, 401, "QUEUE_TOKEN_REQUIRED"),
        (alice, Some(unknown.as_str()), 401, "QUEUE_TOKEN_UNKNOWN"),
        (alice, Some("not-a-token"), 401, "QUEUE_TOKEN_UNKNOWN"),
        (bob, Some(waiting.as_str()), 403, "QUEUE_NOT_ADMITTED"),
        (bob, Some(active.as_str()), 403, "QUEUE_TOKEN_FOREIGN"),
    ] {
        let (got, problem) = call(&url, &env, user, token).await;
        assert_eq!((got, problem["code"].as_str()), (status, Some(code)), "{token:?}");
    }
    let (ok, body) = call(&url, &env, alice, Some(&active)).await;
    assert_eq!((ok, body["token"].as_str()), (200, Some(active.as_str())));

    // Past its active time (the ticker has not run yet): expired.
    let late = base_ms() + 1000 + 601_000;
    redis::cmd("HSET")
        .arg(keys.token(&active))
        .arg("activeUntil")
        .arg(base_ms() - 1)
        .query_async::<()>(&mut c)
        .await
        .unwrap();
    let (got, problem) = call(&url, &env, alice, Some(&active)).await;
    assert_eq!((got, problem["code"].as_str()), (403, Some("QUEUE_TOKEN_EXPIRED")));
    store::tick(&mut c, &keys, &s, late).await.unwrap();
    let (got, problem) = call(&url, &env, alice, Some(&active)).await;
    assert_eq!((got, problem["code"].as_str()), (403, Some("QUEUE_TOKEN_EXPIRED")));
    let anonymous = reqwest::Client::new()
        .post(format!("{url}/book"))
        .header("X-Queue-Token", &active)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn the_development_bypass_lets_requests_through_without_a_token() {
    let env = TestEnv::new().await.unwrap();
    let url = app(&env, false).await;
    let (status, body) = call(&url, &env, UserId::new(), None).await;
    assert_eq!((status, body["token"].is_null()), (200, true));
}
