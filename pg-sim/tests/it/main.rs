//! pg-sim over HTTP: each test starts its own simulator and its own webhook receiver on port 0.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

use axum::{
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use pg_sim::{Config, DEV_API_KEY, DEV_WEBHOOK_SECRET, Settings};
use reqwest::Method;
use serde_json::{Value, json};
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One webhook as the receiver got it.
#[derive(Clone, Debug)]
struct Hook {
    headers: HeaderMap,
    body: Bytes,
}

impl Hook {
    fn id(&self) -> &str {
        self.headers["webhook-id"].to_str().unwrap()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Clone, Default)]
struct Receiver {
    hooks: Arc<Mutex<Vec<Hook>>>,
    /// Attempts still to answer 500, to make the simulator retry.
    fail_next: Arc<AtomicU32>,
}

/// A simulator with a webhook receiver, stopped when dropped.
struct Sim {
    base: String,
    http: reqwest::Client,
    receiver: Receiver,
    shutdown: CancellationToken,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn spawn_sim(settings: Settings) -> Sim {
    let shutdown = CancellationToken::new();
    let receiver = Receiver::default();
    let hooks = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hooks_addr = hooks.local_addr().unwrap();
    let app = axum::Router::new()
        .route(
            "/hooks",
            post(|State(r): State<Receiver>, headers: HeaderMap, body: Bytes| async move {
                r.hooks.lock().unwrap().push(Hook { headers, body });
                let failing =
                    r.fail_next.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                if failing.is_ok() { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::NO_CONTENT }
            }),
        )
        .with_state(receiver.clone());
    let stop = shutdown.clone();
    tokio::spawn(async move { axum::serve(hooks, app).with_graceful_shutdown(stop.cancelled_owned()).await });

    let config =
        Config { webhook_url: Some(format!("http://{hooks_addr}/hooks")), settings, ..Config::default() };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = pg_sim::start(listener, config, shutdown.clone()).await.unwrap();
    assert_eq!(server.public_url, format!("http://{}", server.addr));
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    Sim { base: server.public_url, http, receiver, shutdown }
}

impl Sim {
    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).bearer_auth(DEV_API_KEY)
    }

    async fn create(&self, key: &str, body: Value) -> reqwest::Response {
        self.request(Method::POST, "/v1/payments")
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// A new READY payment's JSON.
    async fn new_payment(&self, body: Value) -> Value {
        let answer = self.create(&uuid::Uuid::new_v4().to_string(), body).await;
        assert_eq!(answer.status(), 201);
        answer.json().await.unwrap()
    }

    async fn post_json(&self, path: &str) -> (u16, Value) {
        let answer = self.request(Method::POST, path).send().await.unwrap();
        (answer.status().as_u16(), answer.json().await.unwrap())
    }

    async fn checkout(&self, id: &Value, button: &str) -> reqwest::Response {
        let id = id.as_str().unwrap();
        self.http.post(format!("{}/checkout/{id}/{button}", self.base)).send().await.unwrap()
    }

    async fn put_settings(&self, settings: Value) {
        let answer = self.request(Method::PUT, "/sim/settings").json(&settings).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    }

    /// Waits until at least `n` webhooks arrived; all that arrived so far.
    async fn hooks(&self, n: usize) -> Vec<Hook> {
        eventually(&format!("{n} webhooks"), || {
            let hooks = self.receiver.hooks.lock().unwrap();
            (hooks.len() >= n).then(|| hooks.clone())
        })
        .await
    }
}

/// Polls `check` until it answers, for at most 10 seconds.
async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn verify(hook: &Hook) {
    standardwebhooks::Webhook::new(DEV_WEBHOOK_SECRET)
        .unwrap()
        .verify(&hook.body, &hook.headers)
        .expect("the webhook verifies with the shared secret");
}

async fn problem(answer: reqwest::Response, status: u16, code: &str) {
    assert_eq!(answer.status(), status);
    assert_eq!(answer.headers()["content-type"], "application/problem+json");
    let body: Value = answer.json().await.unwrap();
    assert_eq!((body["status"].as_u64(), body["code"].as_str()), (Some(status.into()), Some(code)), "{body}");
    assert!(!body["detail"].as_str().unwrap().is_empty());
}

fn order(id: &str) -> Value {
    json!({"orderId": id, "amount": 50000})
}

#[tokio::test]
async fn payments_are_created_once_per_idempotency_key() {
    let sim = spawn_sim(Settings::default()).await;

    let first = sim.create("key-1", order("order-1")).await;
    assert_eq!(first.status(), 201);
    let payment: Value = first.json().await.unwrap();
    let id = payment["id"].as_str().unwrap();
    assert!(id.starts_with("pay_") && id.len() == 36, "{id}");
    assert_eq!(payment["status"], "READY");
    assert_eq!(payment["currency"], "KRW");
    assert_eq!(payment["amount"], 50000);
    assert_eq!(payment["checkoutUrl"], format!("{}/checkout/{id}", sim.base));
    assert!(payment.get("capturedAt").is_none() && payment.get("returnUrl").is_none());

    let replay = sim.create("key-1", order("order-1")).await;
    assert_eq!(replay.status(), 200);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    assert_eq!(replay.json::<Value>().await.unwrap()["id"], id);

    problem(sim.create("key-1", order("order-2")).await, 422, "IDEMPOTENCY_KEY_REUSED").await;
    let no_key = sim.request(Method::POST, "/v1/payments").json(&order("order-3")).send().await.unwrap();
    problem(no_key, 400, "IDEMPOTENCY_KEY_REQUIRED").await;
    let no_auth = sim.http.post(format!("{}/v1/payments", sim.base)).json(&order("o")).send().await.unwrap();
    problem(no_auth, 401, "UNAUTHORIZED").await;
    let wrong_key =
        sim.http.get(format!("{}/v1/payments/{id}", sim.base)).bearer_auth("sk_wrong").send().await;
    problem(wrong_key.unwrap(), 401, "UNAUTHORIZED").await;

    for bad in [
        json!({"orderId": "o", "amount": 0}),
        json!({"orderId": "o", "amount": -5}),
        json!({"orderId": "", "amount": 1}),
        json!({"orderId": "o", "amount": 1, "currency": "USD"}),
        json!({"orderId": "o", "amount": 1, "returnUrl": "/relative"}),
        json!({"orderId": "o", "amount": 1, "returnUrl": "javascript:alert(1)"}),
        json!({"orderId": "o"}),
    ] {
        problem(sim.create("key-bad", bad).await, 422, "VALIDATION_FAILED").await;
    }
    let garbled = sim.request(Method::POST, "/v1/payments").header("idempotency-key", "k");
    let garbled = garbled.header("content-type", "application/json").body("{").send().await.unwrap();
    problem(garbled, 400, "INVALID_REQUEST").await;

    let fetched: Value =
        sim.request(Method::GET, &format!("/v1/payments/{id}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(fetched, payment);
    problem(
        sim.request(Method::GET, "/v1/payments/pay_nope").send().await.unwrap(),
        404,
        "PAYMENT_NOT_FOUND",
    )
    .await;
    assert_eq!(sim.http.get(format!("{}/healthz", sim.base)).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_checkout_page_offers_pay_and_decline() {
    let sim = spawn_sim(Settings::default()).await;
    let payment = sim.new_payment(json!({"orderId": "<b>order</b>", "amount": 1234567})).await;

    let page = sim.http.get(payment["checkoutUrl"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(
        page.headers()["content-security-policy"],
        "default-src 'none'; style-src 'unsafe-inline'; form-action *"
    );
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"id="confirm""#) && html.contains(r#"id="decline""#), "{html}");
    assert!(
        html.contains("&lt;b&gt;order&lt;/b&gt;") && !html.contains("<b>order"),
        "the order id is escaped"
    );
    assert!(html.contains("1,234,567 KRW") && !html.contains("<script"));

    let missing = sim.http.get(format!("{}/checkout/pay_nope", sim.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn capture_and_refund_each_send_one_signed_webhook() {
    let sim = spawn_sim(Settings::default()).await;
    let payment = sim.new_payment(order("order-1")).await;
    let id = &payment["id"];

    let paid = sim.checkout(id, "confirm").await;
    assert_eq!(paid.status(), 200);
    assert!(paid.text().await.unwrap().contains(r#"id="result" data-status="CAPTURED""#));
    let (_, fetched) = sim.post_json(&format!("/v1/payments/{}/refund", id.as_str().unwrap())).await;
    assert_eq!(fetched["status"], "REFUNDED");
    assert!(fetched["capturedAt"].is_string() && fetched["refundedAt"].is_string());

    let hooks = sim.hooks(2).await;
    let mut kinds: Vec<_> = hooks.iter().map(|h| h.json()["type"].as_str().unwrap().to_owned()).collect();
    kinds.sort();
    assert_eq!(kinds, ["payment.captured", "payment.refunded"]);
    assert_ne!(hooks[0].id(), hooks[1].id(), "one id per event");
    for hook in &hooks {
        verify(hook);
        assert_eq!(hook.json()["data"]["id"], *id);
        assert_eq!(hook.headers["content-type"], "application/json");
    }
    let captured = hooks.iter().find(|h| h.json()["type"] == "payment.captured").unwrap();
    assert_eq!(captured.json()["data"]["status"], "CAPTURED");

    // A tampered body does not verify.
    let mut forged = captured.clone();
    forged.body =
        Bytes::from(captured.body.iter().map(|&b| if b == b'5' { b'9' } else { b }).collect::<Vec<_>>());
    assert!(
        standardwebhooks::Webhook::new(DEV_WEBHOOK_SECRET)
            .unwrap()
            .verify(&forged.body, &forged.headers)
            .is_err()
    );

    let (status, again) = sim.post_json(&format!("/v1/payments/{}/refund", id.as_str().unwrap())).await;
    assert_eq!(
        (status, &again["status"]),
        (200, &json!("REFUNDED")),
        "a repeated refund is answered as it is"
    );
}

#[tokio::test]
async fn webhook_copies_repeat_the_same_webhook_id() {
    let sim = spawn_sim(Settings::default()).await;
    sim.put_settings(json!({"webhookCopies": 2})).await;
    let settings: Value =
        sim.request(Method::GET, "/sim/settings").send().await.unwrap().json().await.unwrap();
    assert_eq!(settings["webhookCopies"], 2);
    assert_eq!(settings["failNextApiCalls"], 0);

    let payment = sim.new_payment(order("order-1")).await;
    assert_eq!(sim.checkout(&payment["id"], "confirm").await.status(), 200);
    let hooks = sim.hooks(2).await;
    assert_eq!(hooks[0].id(), hooks[1].id());
    assert_eq!(hooks[0].body, hooks[1].body);
    hooks.iter().for_each(verify);
}

#[tokio::test]
async fn failed_webhook_attempts_are_retried_with_the_same_id() {
    let sim = spawn_sim(Settings::default()).await;
    sim.receiver.fail_next.store(2, Ordering::SeqCst);
    let payment = sim.new_payment(order("order-1")).await;
    assert_eq!(sim.checkout(&payment["id"], "decline").await.status(), 200);

    let hooks = sim.hooks(3).await;
    assert!(hooks.iter().all(|h| h.id() == hooks[0].id()));
    assert_eq!(hooks[2].json()["type"], "payment.declined");
    hooks.iter().for_each(verify);
}

#[tokio::test]
async fn dropped_webhooks_are_never_sent() {
    let sim = spawn_sim(Settings { drop_webhooks: true, ..Settings::default() }).await;
    let payment = sim.new_payment(order("order-1")).await;
    assert_eq!(sim.checkout(&payment["id"], "confirm").await.status(), 200);
    sim.put_settings(json!({})).await;
    let (status, _) =
        sim.post_json(&format!("/v1/payments/{}/refund", payment["id"].as_str().unwrap())).await;
    assert_eq!(status, 200);

    // The drop is decided when the status changes, so once the refund's webhook is in, the
    // capture's would have been sent already had it not been dropped.
    let hooks = sim.hooks(1).await;
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].json()["type"], "payment.refunded");
}

#[tokio::test]
async fn cancel_takes_ready_payments_only() {
    let sim = spawn_sim(Settings::default()).await;
    let ready = sim.new_payment(order("order-1")).await;
    let cancel = format!("/v1/payments/{}/cancel", ready["id"].as_str().unwrap());
    let (status, cancelled) = sim.post_json(&cancel).await;
    assert_eq!((status, &cancelled["status"]), (200, &json!("CANCELLED")));
    assert!(cancelled["cancelledAt"].is_string());
    let (status, again) = sim.post_json(&cancel).await;
    assert_eq!((status, again), (200, cancelled), "a repeated cancel changes nothing");
    let hooks = sim.hooks(1).await;
    assert_eq!(hooks[0].json()["type"], "payment.cancelled");

    let late = sim.checkout(&ready["id"], "confirm").await;
    assert_eq!(late.status(), 409);
    assert!(late.text().await.unwrap().contains("CANCELLED"));

    let captured = sim.new_payment(order("order-2")).await;
    let id = captured["id"].as_str().unwrap();
    problem(
        sim.request(Method::POST, &format!("/v1/payments/{id}/refund")).send().await.unwrap(),
        409,
        "NOT_CAPTURED",
    )
    .await;
    assert_eq!(sim.checkout(&captured["id"], "confirm").await.status(), 200);
    problem(
        sim.request(Method::POST, &format!("/v1/payments/{id}/cancel")).send().await.unwrap(),
        409,
        "ALREADY_CAPTURED",
    )
    .await;
    problem(
        sim.request(Method::POST, "/v1/payments/pay_nope/cancel").send().await.unwrap(),
        404,
        "PAYMENT_NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn fail_next_api_calls_answers_503_without_effect() {
    let sim = spawn_sim(Settings::default()).await;
    sim.put_settings(json!({"failNextApiCalls": 1})).await;

    problem(sim.create("key-1", order("order-1")).await, 503, "GATEWAY_UNAVAILABLE").await;
    let settings: Value =
        sim.request(Method::GET, "/sim/settings").send().await.unwrap().json().await.unwrap();
    assert_eq!(settings["failNextApiCalls"], 0, "counted down");
    let retried = sim.create("key-1", order("order-1")).await;
    assert_eq!(retried.status(), 201, "the failed call created nothing under the key");

    let refused =
        sim.request(Method::PUT, "/sim/settings").json(&json!({"webhookCopies": 0})).send().await.unwrap();
    problem(refused, 422, "VALIDATION_FAILED").await;
    let unknown =
        sim.request(Method::PUT, "/sim/settings").json(&json!({"failNext": 1})).send().await.unwrap();
    problem(unknown, 422, "VALIDATION_FAILED").await;
    let no_auth = sim.http.get(format!("{}/sim/settings", sim.base)).send().await.unwrap();
    problem(no_auth, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn checkout_returns_the_buyer_to_the_merchant() {
    let sim = spawn_sim(Settings::default()).await;
    let back = "http://shop.test/orders/1?lang=ko#top";
    let payment = sim.new_payment(json!({"orderId": "order-1", "amount": 1000, "returnUrl": back})).await;
    assert_eq!(payment["returnUrl"], back);

    let answer = sim.checkout(&payment["id"], "confirm").await;
    assert_eq!(answer.status(), 303);
    let location = reqwest::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    assert_eq!(
        (location.host_str(), location.path(), location.fragment()),
        (Some("shop.test"), "/orders/1", Some("top"))
    );
    let query: Vec<(String, String)> = location.query_pairs().into_owned().collect();
    let expected = [("lang", "ko"), ("paymentId", payment["id"].as_str().unwrap()), ("status", "CAPTURED")];
    assert_eq!(query, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));

    // declineAll turns Pay into a decline.
    sim.put_settings(json!({"declineAll": true})).await;
    let payment = sim
        .new_payment(json!({"orderId": "order-2", "amount": 1000, "returnUrl": "http://shop.test/r"}))
        .await;
    let answer = sim.checkout(&payment["id"], "confirm").await;
    assert_eq!(answer.status(), 303);
    let location = answer.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("http://shop.test/r?paymentId=pay_") && location.ends_with("&status=DECLINED"),
        "{location}"
    );
}

#[tokio::test]
async fn api_latency_delays_answers() {
    let sim = spawn_sim(Settings { api_latency_ms: 300, ..Settings::default() }).await;
    let started = std::time::Instant::now();
    let answer = sim.request(Method::GET, "/v1/payments/pay_nope").send().await.unwrap();
    assert_eq!(answer.status(), 404);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn bad_configuration_is_refused_at_start() {
    for config in [
        Config { webhook_secret: "not-whsec".into(), ..Config::default() },
        Config { webhook_secret: "whsec_c2hvcnQ=".into(), ..Config::default() },
        Config { webhook_url: Some("https://merchant.test/hooks".into()), ..Config::default() },
        Config { public_url: Some("localhost:9000".into()), ..Config::default() },
        Config { api_key: "has space".into(), ..Config::default() },
        Config { settings: Settings { webhook_copies: 0, ..Settings::default() }, ..Config::default() },
    ] {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = pg_sim::start(listener, config.clone(), CancellationToken::new()).await;
        assert!(matches!(refused, Err(pg_sim::StartError::Config(_))), "{config:?}");
    }
    assert!(!format!("{:?}", Config::default()).contains(DEV_API_KEY), "secrets never print");
}

#[tokio::test]
async fn the_server_stops_when_cancelled() {
    let shutdown = CancellationToken::new();
    let config = Config { public_url: Some("http://pay.test/".into()), ..Config::default() };
    let server = pg_sim::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), config, shutdown.clone())
        .await
        .unwrap();
    assert_eq!(server.public_url, "http://pay.test");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), server.stopped()).await.unwrap().unwrap();
}
