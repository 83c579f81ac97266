//! The reservation saga against real Postgres and NATS. The seat service and the wallet are
//! played by publishing their events, so each reaction of the state machine is seen alone.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod cancellation;
mod compensations;
mod guard;
mod http;
mod limits;
mod migration;
mod openapi;
mod saga;

use chrono::{DateTime, Duration as Span, Utc};
use contracts::{
    ConcertId, Envelope, PaymentCompleted, PaymentFailed, PaymentFailureReason, PaymentId, ReservationFailed,
    ReservationFailureReason, ReservationId, ReservationRequested, ScheduleCreated, ScheduleId, SeatNo,
    SeatPrice, SeatRejectReason, SeatReservationRejected, SeatReserved, UserId, UserStatus,
    UserStatusChanged, Won,
};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use testkit::{TestEnv, eventually};

pub struct Service {
    pub env: TestEnv,
    pub url: String,
    pub http: reqwest::Client,
    pub schedule: ScheduleId,
    pub concert: ConcertId,
}

impl Service {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts the service with configuration overrides, and announces a 50-seat schedule. These
    /// tests play the saga, so the waiting-room guard is bypassed unless an override says
    /// otherwise (the guard has tests of its own, and `guard.rs` checks it is wired).
    pub async fn start_with(overrides: &[(&str, &str)]) -> Self {
        let env = TestEnv::new().await.unwrap();
        let redis = env.redis.clone();
        Self::start_in(env, redis, overrides).await
    }

    /// [`Service::start_with`] in `env`, reaching Redis through `redis` (such as a connection
    /// as the service's own ACL user).
    pub async fn start_in(env: TestEnv, redis: platform::pools::Redis, overrides: &[(&str, &str)]) -> Self {
        Self::start_for(env, redis, overrides, ScheduleId::new()).await
    }

    /// [`Service::start_in`], announcing `schedule`.
    pub async fn start_for(
        env: TestEnv,
        redis: platform::pools::Redis,
        overrides: &[(&str, &str)],
        schedule: ScheduleId,
    ) -> Self {
        // The first setting of a variable wins, so overrides go first.
        let mut all = overrides.to_vec();
        all.push(("TICKETING_DEV_SKIP_QUEUE_TOKEN", "true"));
        let runtime = messaging::Runtime::from_parts(
            env.config_with(&all),
            env.db.clone(),
            env.bus.clone(),
            redis,
            env.shutdown.clone(),
        );
        let url =
            env.spawn_app(testkit::start::<reservation::Reservations>(&runtime).unwrap()).await.unwrap();
        let concert = ConcertId::new();
        let seats = (1..=50).map(|n| SeatPrice { seat_no: SeatNo(n), price: Won(1000) }).collect();
        let created = Envelope::new(
            "concert",
            schedule,
            ScheduleCreated {
                schedule_id: schedule,
                concert_id: concert,
                starts_at: Utc::now() + Span::days(1),
                seats,
                sales_open_at: None,
            },
        );
        env.publish(&created).await.unwrap();
        env.wait_handled("reservation", created.id).await;
        Self { env, url, http: reqwest::Client::new(), schedule, concert }
    }

    pub async fn call(&self, method: Method, path: &str, user: UserId, body: Option<Value>) -> (u16, Value) {
        self.call_with(method, path, user, body, &[]).await
    }

    pub async fn call_with(
        &self,
        method: Method,
        path: &str,
        user: UserId,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req =
            self.http.request(method, format!("{}{path}", self.url)).bearer_auth(self.env.user_token(user));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
    }

    /// Creates a reservation for `seats`; returns its id.
    pub async fn reserve(&self, user: UserId, seats: &[i32]) -> ReservationId {
        let (status, body) = self
            .call(
                Method::POST,
                "/reservations",
                user,
                Some(json!({"scheduleId": self.schedule, "seatNos": seats})),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn get(&self, user: UserId, id: ReservationId) -> Value {
        let (status, body) = self.call(Method::GET, &format!("/reservations/{id}"), user, None).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    pub async fn wait_status(&self, user: UserId, id: ReservationId, status: &str) -> Value {
        eventually(&format!("reservation {id} to be {status}"), Duration::from_secs(15), || async {
            let r = self.get(user, id).await;
            (r["status"] == status).then_some(r)
        })
        .await
    }

    /// Plays the seat service: the seats are held until `held_until`.
    pub async fn seats_held(
        &self,
        id: ReservationId,
        seats: &[i32],
        held_until: DateTime<Utc>,
    ) -> Envelope<SeatReserved> {
        let e = Envelope::new(
            "seat",
            id,
            SeatReserved {
                reservation_id: id,
                concert_id: self.concert,
                schedule_id: self.schedule,
                seat_nos: seats.iter().copied().map(SeatNo).collect(),
                amount: Won(1000 * seats.len() as i64),
                held_until,
            },
        );
        self.env.publish(&e).await.unwrap();
        e
    }

    pub async fn seats_rejected(&self, id: ReservationId) {
        let e = Envelope::new(
            "seat",
            id,
            SeatReservationRejected {
                reservation_id: id,
                schedule_id: self.schedule,
                seat_nos: vec![SeatNo(1)],
                reason: SeatRejectReason::Taken,
            },
        );
        self.env.publish(&e).await.unwrap();
    }

    /// Plays the wallet: the payment went through.
    pub async fn paid(&self, id: ReservationId, user: UserId) -> Envelope<PaymentCompleted> {
        let e = Envelope::new(
            "wallet",
            id,
            PaymentCompleted {
                payment_id: PaymentId::new(),
                reservation_id: id,
                user_id: user,
                amount: Won(1000),
                balance: Won(0),
            },
        );
        self.env.publish(&e).await.unwrap();
        e
    }

    /// Plays the wallet: the payment was refused for `reason`.
    pub async fn payment_failed(&self, id: ReservationId, user: UserId, reason: PaymentFailureReason) {
        let e = Envelope::new(
            "wallet",
            id,
            PaymentFailed { reservation_id: id, user_id: user, amount: Won(1000), reason },
        );
        self.env.publish(&e).await.unwrap();
    }

    /// A reservation of one seat, held for `hold` from now.
    pub async fn held(&self, user: UserId, seat: i32, hold: Span) -> ReservationId {
        let id = self.reserve(user, &[seat]).await;
        self.seats_held(id, &[seat], Utc::now() + hold).await;
        self.wait_status(user, id, "HELD").await;
        id
    }

    pub async fn requested(&self) -> Vec<ReservationRequested> {
        self.env.events_of::<ReservationRequested>().await.unwrap()
    }
}
