//! The payment service against Postgres (as its own role), NATS and the gateway simulator's real
//! HTTP server: the webhook route's checks (signature, timestamp, replay, what it is about), and
//! requests the saga sends that no payment can come of.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod openapi;

use chrono::{Duration as Span, Utc};
use contracts::{CardPaymentCompleted, CardPaymentRequested, Envelope, ReservationId, UserId, Won};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::{TestEnv, eventually};
use tokio_util::sync::CancellationToken;

/// A payment service and the gateway it talks to.
struct Card {
    env: TestEnv,
    url: String,
    http: reqwest::Client,
    _gateway: CancellationToken,
}

impl Card {
    async fn start() -> Self {
        let env = TestEnv::new().await.unwrap();
        let stop = CancellationToken::new();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // No webhook URL: the tests sign the gateway's webhooks themselves.
        let gateway = pg_sim::start(listener, pg_sim::Config::default(), stop.clone()).await.unwrap();
        let rt = env
            .runtime_as::<payment::Payments>(&[("TICKETING_PAYMENT_GATEWAY_URL", &gateway.public_url)])
            .await
            .unwrap();
        let url = env.spawn_app(servicekit::start::<payment::Payments>(&rt).unwrap()).await.unwrap();
        Self { env, url, http: reqwest::Client::new(), _gateway: stop }
    }

    /// The saga asks for a card payment of `amount`; answers the reservation and its user.
    async fn request(&self, amount: i64) -> (ReservationId, UserId) {
        let (reservation, user) = (ReservationId::new(), UserId::new());
        let asked = CardPaymentRequested {
            reservation_id: reservation,
            user_id: user,
            amount: Won(amount),
            pay_by: Utc::now() + Span::minutes(5),
        };
        self.env.publish(&Envelope::new("reservation", reservation, asked)).await.unwrap();
        (reservation, user)
    }

    /// The reservation's card payments as its buyer sees them.
    async fn payments(&self, reservation: ReservationId, user: UserId) -> Vec<Value> {
        let res = self
            .http
            .get(format!("{}/payments?reservationId={reservation}", self.url))
            .bearer_auth(self.env.user_token(user))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.json().await.unwrap()
    }

    /// Waits for the reservation's payment to be created on the gateway; answers it.
    async fn ready(&self, reservation: ReservationId, user: UserId) -> Value {
        eventually("the payment to be created on the gateway", Duration::from_secs(10), || async {
            let p = self.payments(reservation, user).await.into_iter().next()?;
            (p["status"] == "READY").then_some(p)
        })
        .await
    }

    /// POSTs a webhook signed with `secret` at `timestamp`; answers the status and the body.
    async fn webhook(
        &self,
        gateway: &str,
        id: &str,
        body: &Value,
        secret: &str,
        timestamp: i64,
    ) -> (u16, Value) {
        let payload = serde_json::to_vec(body).unwrap();
        let signature =
            standardwebhooks::Webhook::new(secret).unwrap().sign(id, timestamp, &payload).unwrap();
        let res = self
            .http
            .post(format!("{}/payments/webhooks/{gateway}", self.url))
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .header("content-type", "application/json")
            .body(payload)
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }
}

/// A gateway's `payment.captured` webhook body about `payment` (as `GET /payments` shows it).
fn captured(payment: &Value, amount: i64) -> Value {
    let gateway_id = payment["checkoutUrl"].as_str().unwrap().rsplit('/').next().unwrap();
    json!({
        "type": "payment.captured",
        "data": {
            "id": gateway_id,
            "orderId": payment["id"],
            "amount": amount,
            "currency": "KRW",
            "status": "CAPTURED",
            "capturedAt": Utc::now(),
        }
    })
}

#[tokio::test]
async fn a_signed_webhook_settles_a_payment_once_and_forged_late_or_replayed_ones_change_nothing() {
    let c = Card::start().await;
    let (reservation, user) = c.request(9_000).await;
    let payment = c.ready(reservation, user).await;
    assert!(payment["checkoutUrl"].as_str().unwrap().contains("/checkout/"), "{payment}");
    let body = captured(&payment, 9_000);
    let (secret, now) = (payment::DEV_WEBHOOK_SECRET, Utc::now().timestamp());
    let forged = "whsec_bm90LXRoZS1nYXRld2F5cy1zZWNyZXQtYXQtYWxs";

    let (status, problem) = c.webhook("pg-sim", "msg_forged", &body, forged, now).await;
    assert_eq!((status, problem["code"].as_str()), (401, Some("INVALID_SIGNATURE")), "{problem}");
    let (status, _) = c.webhook("pg-sim", "msg_old", &body, secret, now - 3_600).await;
    assert_eq!(status, 401, "a webhook signed an hour ago is a replay");
    let (status, problem) = c.webhook("other-gateway", "msg_x", &body, secret, now).await;
    assert_eq!((status, problem["code"].as_str()), (404, Some("UNKNOWN_GATEWAY")));
    let mut unknown = body.clone();
    unknown["data"]["orderId"] = json!(uuid::Uuid::now_v7());
    let (status, problem) = c.webhook("pg-sim", "msg_unknown", &unknown, secret, now).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("UNKNOWN_PAYMENT")), "{problem}");
    let (status, _) = c.webhook("pg-sim", "msg_amount", &captured(&payment, 1), secret, now).await;
    assert_eq!(status, 422, "a capture of another amount");
    let (status, problem) = c.webhook("pg-sim", "msg_garbage", &json!({"type": 1}), secret, now).await;
    assert_eq!((status, problem["code"].as_str()), (400, Some("VALIDATION_FAILED")));
    assert_eq!(c.payments(reservation, user).await[0]["status"], "READY", "nothing above changed it");

    let (status, taken) = c.webhook("pg-sim", "msg_1", &body, secret, now).await;
    assert_eq!((status, taken), (200, json!({"duplicate": false, "status": "CAPTURED"})));
    // The same webhook again (a copy or a replay within the tolerance): taken once.
    let (status, taken) = c.webhook("pg-sim", "msg_1", &body, secret, now).await;
    assert_eq!((status, taken), (200, json!({"duplicate": true})));
    // Another webhook saying the same: nothing more happens.
    let (status, _) = c.webhook("pg-sim", "msg_2", &body, secret, now).await;
    assert_eq!(status, 200);
    eventually("the completion to be published", Duration::from_secs(10), || async {
        (!c.env.events_of::<CardPaymentCompleted>().await.unwrap().is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let completed = c.env.events_of::<CardPaymentCompleted>().await.unwrap();
    assert_eq!(completed.len(), 1, "{completed:?}");
    assert_eq!((completed[0].reservation_id, completed[0].amount), (reservation, Won(9_000)));
    assert_eq!(c.payments(reservation, user).await[0]["status"], "CAPTURED");
}

#[tokio::test]
async fn a_card_payment_of_nothing_is_dead_lettered_and_creates_nothing() {
    let c = Card::start().await;
    let (reservation, user) = c.request(0).await;
    eventually("the request in the dead-letter stream", Duration::from_secs(10), || async {
        (c.env.stream_messages(contracts::Stream::Dlq).await.unwrap() == 1).then_some(())
    })
    .await;
    assert!(c.payments(reservation, user).await.is_empty());
}

#[test]
fn the_development_gateway_and_the_service_share_their_development_secrets() {
    assert_eq!(payment::DEV_API_KEY, pg_sim::DEV_API_KEY);
    assert_eq!(payment::DEV_WEBHOOK_SECRET, pg_sim::DEV_WEBHOOK_SECRET);
}
