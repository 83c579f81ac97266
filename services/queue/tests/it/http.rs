use contracts::UserId;
use reqwest::Method;
use serde_json::Value;
use testkit::TestEnv;

async fn call(url: &str, env: &TestEnv, method: Method, path: &str, user: UserId) -> (u16, Value) {
    let res = reqwest::Client::new()
        .request(method, format!("{url}{path}"))
        .bearer_auth(env.user_token(user))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn users_join_poll_and_leave_over_http() {
    let env = TestEnv::new().await.unwrap();
    let rt = env.runtime_with(&[("TICKETING_QUEUE_MAX_ACTIVE", "1"), ("TICKETING_QUEUE_TICK_MS", "100")]);
    let url = env.spawn_app(testkit::start::<queue::Queue>(&rt).unwrap()).await.unwrap();
    let (alice, bob) = (UserId::new(), UserId::new());

    let (status, a) = call(&url, &env, Method::POST, "/queue/tokens", alice).await;
    assert_eq!((status, a["status"].as_str(), a["position"].as_u64()), (201, Some("WAITING"), Some(1)));
    let token = a["token"].as_str().unwrap().to_owned();
    let (status, again) = call(&url, &env, Method::POST, "/queue/tokens", alice).await;
    assert_eq!((status, again["token"].as_str()), (200, Some(token.as_str())));

    let admitted = testkit::eventually("alice admitted", std::time::Duration::from_secs(10), || async {
        let (_, t) = call(&url, &env, Method::GET, &format!("/queue/tokens/{token}"), alice).await;
        (t["status"] == "ACTIVE").then_some(t)
    })
    .await;
    assert_eq!((admitted["position"].as_u64(), admitted["etaSeconds"].as_u64()), (Some(0), Some(0)));
    assert!(admitted["activeUntil"].is_string());

    let (_, b) = call(&url, &env, Method::POST, "/queue/tokens", bob).await;
    assert_eq!(
        (b["status"].as_str(), b["position"].as_u64(), b["etaSeconds"].as_u64()),
        (Some("WAITING"), Some(1), Some(1))
    );
    // Bob cannot see or drop alice's token.
    assert_eq!(call(&url, &env, Method::GET, &format!("/queue/tokens/{token}"), bob).await.0, 404);
    assert_eq!(call(&url, &env, Method::DELETE, &format!("/queue/tokens/{token}"), bob).await.0, 404);
    assert_eq!(call(&url, &env, Method::GET, "/queue/tokens/nope", bob).await.0, 400);

    let (_, st) = call(&url, &env, Method::GET, "/queue/status", bob).await;
    assert_eq!(
        (st["waiting"].as_u64(), st["active"].as_u64(), st["maxActive"].as_u64()),
        (Some(1), Some(1), Some(1))
    );

    // Alice leaves: her slot goes to bob.
    assert_eq!(call(&url, &env, Method::DELETE, &format!("/queue/tokens/{token}"), alice).await.0, 204);
    let (_, gone) = call(&url, &env, Method::GET, &format!("/queue/tokens/{token}"), alice).await;
    assert_eq!(gone["status"], "EXPIRED");
    let bob_token = b["token"].as_str().unwrap().to_owned();
    testkit::eventually("bob admitted", std::time::Duration::from_secs(10), || async {
        let (_, t) = call(&url, &env, Method::GET, &format!("/queue/tokens/{bob_token}"), bob).await;
        (t["status"] == "ACTIVE").then_some(())
    })
    .await;
}

#[tokio::test]
async fn joining_faster_than_a_person_is_rate_limited_but_polling_is_not() {
    let env = TestEnv::new().await.unwrap();
    let rt = env.runtime_with(&[("TICKETING_RATE_PER_USER", "1")]);
    let url = env.spawn_app(testkit::start::<queue::Queue>(&rt).unwrap()).await.unwrap();
    let alice = UserId::new();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(call(&url, &env, Method::POST, "/queue/tokens", alice).await);
    }
    // A burst of two joins (the second answers the same token), then 429.
    let token = statuses[0].1["token"].as_str().unwrap().to_owned();
    assert_eq!((statuses[0].0, statuses[1].0), (201, 200), "{statuses:?}");
    for (status, body) in &statuses[2..] {
        assert_eq!((*status, body["code"].as_str()), (429, Some("RATE_LIMITED")), "{body}");
    }
    for _ in 0..5 {
        let (status, _) = call(&url, &env, Method::GET, &format!("/queue/tokens/{token}"), alice).await;
        assert_eq!(status, 200);
    }
    let (status, _) = call(&url, &env, Method::POST, "/queue/tokens", UserId::new()).await;
    assert_eq!(status, 201, "another user joins");
}
