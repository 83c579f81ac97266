//! The external-data service against real Postgres and NATS, delivering to a real HTTP receiver
//! (an axum server on 127.0.0.1:0 that records every request and answers as the test scripts).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod admin;
mod delivery;
mod openapi;
mod tls;

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use contracts::{
    ConcertId, Envelope, ReservationCompleted, ReservationId, ScheduleId, SeatNo, Stream, UserId, Won,
};
use external_data::{DeliverySettings, HEADER_DELIVERY};
use serde_json::Value;
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use testkit::{TestEnv, eventually};

/// The secret the service signs with and the receiver verifies with.
pub const SECRET: &str = "receiver-secret-0123456789";

/// How long the tests wait for a delivery to reach a state.
pub const WAIT: Duration = Duration::from_secs(20);

/// Small delays, so retries happen within a test.
pub fn fast() -> DeliverySettings {
    DeliverySettings {
        max_attempts: 8,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        timeout: Duration::from_secs(2),
        concurrency: 8,
        poll: Duration::from_millis(20),
    }
}

/// One request as the receiver saw it.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The status it was answered with; `None` while (or if) the answer never went out.
    pub answered: Option<u16>,
}

impl Received {
    /// The `X-Ticketing-Delivery` header.
    pub fn delivery(&self) -> String {
        self.headers[HEADER_DELIVERY].to_str().unwrap().to_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// How the receiver answers one request.
pub struct Reply {
    pub status: u16,
    /// Waited before answering (a slow platform).
    pub delay: Duration,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Self { status, delay: Duration::ZERO }
    }
}

/// Decides the answer from the request and how many requests (1-based) its delivery id has had.
type Plan = Arc<dyn Fn(&Received, usize) -> Reply + Send + Sync>;
type Log = Arc<Mutex<Vec<Received>>>;

/// The external platform, played by a local HTTP server.
pub struct Receiver {
    pub url: String,
    log: Log,
}

impl Receiver {
    /// Serves on 127.0.0.1:0 until the test's runtime ends.
    pub async fn start(plan: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> Self {
        let log: Log = Arc::default();
        let plan: Plan = Arc::new(plan);
        let app = Router::new().route("/hooks", post(receive)).with_state((log.clone(), plan));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url: format!("http://{addr}/hooks"), log }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Received> {
        self.log.lock().unwrap().clone()
    }

    /// The requests of one delivery.
    pub fn requests_for(&self, delivery: &str) -> Vec<Received> {
        self.requests().into_iter().filter(|r| r.delivery() == delivery).collect()
    }

    /// The requests whose body is this reservation's.
    pub fn requests_about(&self, reservation: ReservationId) -> Vec<Received> {
        let id = reservation.to_string();
        self.requests().into_iter().filter(|r| r.json()["reservationId"] == id.as_str()).collect()
    }
}

async fn receive(State((log, plan)): State<(Log, Plan)>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let received = Received { headers, body, answered: None };
    let (index, reply) = {
        let mut log = log.lock().unwrap();
        let delivery = received.headers.get(HEADER_DELIVERY).cloned();
        let nth = 1 + log.iter().filter(|r| r.headers.get(HEADER_DELIVERY) == delivery.as_ref()).count();
        let reply = plan(&received, nth);
        log.push(received);
        (log.len() - 1, reply)
    };
    tokio::time::sleep(reply.delay).await;
    log.lock().unwrap()[index].answered = Some(reply.status);
    StatusCode::from_u16(reply.status).unwrap()
}

/// A running external-data service.
pub struct Service {
    pub env: TestEnv,
    pub url: String,
    pub http: reqwest::Client,
}

impl Service {
    /// Delivers to `receiver` (signing with [`SECRET`]) with `settings`.
    pub async fn start(receiver: &Receiver, settings: DeliverySettings) -> Self {
        Self::delivering_to(&receiver.url, settings, &[]).await
    }

    /// Delivers to `url` (signing with [`SECRET`]) with `settings` and the variables `more`.
    pub async fn delivering_to(url: &str, settings: DeliverySettings, more: &[(&str, &str)]) -> Self {
        let env = TestEnv::new().await.unwrap();
        let mut vars = vec![("TICKETING_EXTERNAL_DATA_URL", url), ("TICKETING_EXTERNAL_DATA_SECRET", SECRET)];
        vars.extend_from_slice(more);
        let rt = env.runtime_with(&vars);
        let url = env.spawn_app(external_data::routes_with(&rt, settings).unwrap()).await.unwrap();
        Self { env, url, http: reqwest::Client::new() }
    }

    /// With no platform configured: deliveries are recorded, nothing is sent.
    pub async fn start_unconfigured() -> Self {
        let env = TestEnv::new().await.unwrap();
        let url = env.spawn_service::<external_data::ExternalData>().await.unwrap();
        Self { env, url, http: reqwest::Client::new() }
    }

    /// Publishes a fresh ReservationCompleted; returns it.
    pub async fn complete(&self) -> Envelope<ReservationCompleted> {
        let event = completed();
        self.env.publish(&event).await.unwrap();
        event
    }

    /// An admin call: (status, body).
    pub async fn admin(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let res = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(self.env.admin_token())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// The delivery of a reservation, as the admin list shows it.
    pub async fn delivery_of(&self, reservation: ReservationId) -> Option<Value> {
        let (status, page) = self.admin(reqwest::Method::GET, "/external-data/deliveries?limit=100").await;
        assert_eq!(status, 200, "{page}");
        let id = reservation.to_string();
        page["data"].as_array().unwrap().iter().find(|d| d["reservationId"] == id.as_str()).cloned()
    }

    /// Waits until the reservation's delivery satisfies `check`; returns it.
    pub async fn wait_delivery(
        &self,
        reservation: ReservationId,
        what: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        eventually(what, WAIT, || async { self.delivery_of(reservation).await.filter(|d| check(d)) }).await
    }

    /// Waits until the reservation's delivery is in `status`; returns it.
    pub async fn wait_status(&self, reservation: ReservationId, status: &str) -> Value {
        self.wait_delivery(reservation, &format!("the delivery of {reservation} to be {status}"), |d| {
            d["status"] == status
        })
        .await
    }

    /// Waits until this service's consumer has acked every message its filter passed it.
    pub async fn wait_consumed(&self) {
        self.env.wait_consumed(external_data::NAME, Stream::Reservation).await;
    }
}

/// A ReservationCompleted as the reservation service announces it.
pub fn completed() -> Envelope<ReservationCompleted> {
    let reservation = ReservationId::new();
    Envelope::new(
        "reservation",
        reservation,
        ReservationCompleted {
            reservation_id: reservation,
            user_id: UserId::new(),
            concert_id: ConcertId::new(),
            schedule_id: ScheduleId::new(),
            seat_nos: vec![SeatNo(3), SeatNo(4)],
            amount: Won(180_000),
            queue_token: "qt-test".to_owned(),
        },
    )
}
