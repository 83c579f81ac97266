//! A live system: every service running in this process, as `ticketing up` runs them, and a
//! saga driven through their HTTP API.

use crate::clocks;
use audit::{Invariant, Options, Settle};
use reqwest::Method;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::{TestEnv, eventually};

struct System {
    env: TestEnv,
    url: String,
    http: reqwest::Client,
}

impl System {
    /// Every service with declared consumers runs (or a consumer nobody runs would never
    /// settle); booking skips the waiting room, which has tests of its own.
    async fn start() -> Self {
        let env = TestEnv::new().await.unwrap();
        let rt = env.runtime_with(&[("TICKETING_DEV_SKIP_QUEUE_TOKEN", "true")]);
        let router = axum_router(&rt);
        let url = env.spawn_app(router).await.unwrap();
        Self { env, url, http: reqwest::Client::new() }
    }

    async fn call(&self, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("Prefer", "wait=5");
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn wait_status(&self, token: &str, id: &str, status: &str) {
        eventually(&format!("reservation {id} to be {status}"), Duration::from_secs(20), || async {
            let (_, r) = self.call(Method::GET, &format!("/reservations/{id}"), token, None).await;
            (r["status"] == status).then_some(())
        })
        .await;
    }

    async fn audit(&self, settle: Duration) -> audit::Report {
        let opts = Options { settle: Some(settle), ..Options::new(clocks()) };
        audit::audit(&self.env.db, &self.env.bus, &opts).await.unwrap()
    }
}

fn axum_router(rt: &messaging::Runtime) -> axum::Router {
    axum::Router::new()
        .merge(testkit::start::<queue::Queue>(rt).unwrap())
        .merge(testkit::start::<concert::Catalog>(rt).unwrap())
        .merge(testkit::start::<reservation::Reservations>(rt).unwrap())
        .merge(testkit::start::<seat::Seats>(rt).unwrap())
        .merge(testkit::start::<wallet::Wallet>(rt).unwrap())
        .merge(testkit::start::<ranking::Ranking>(rt).unwrap())
        .merge(testkit::start::<wallet_history::WalletHistory>(rt).unwrap())
        .merge(testkit::start::<external_data::ExternalData>(rt).unwrap())
}

#[tokio::test]
async fn a_system_after_a_real_saga_settles_clean_and_a_pending_payment_keeps_it_busy() {
    let system = System::start().await;
    let env = &system.env;
    let (admin, user) = (env.admin_token(), contracts::UserId::new());
    let token = env.user_token(user);

    let (status, concert) =
        system.call(Method::POST, "/concerts", &admin, Some(json!({"name": "Audit", "host": "it"}))).await;
    assert_eq!(status, 201, "{concert}");
    let starts = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let (status, schedule) = system
        .call(
            Method::POST,
            &format!("/concerts/{}/schedules", concert["id"].as_str().unwrap()),
            &admin,
            Some(json!({"startsAt": starts, "seatCount": 3, "price": 5000})),
        )
        .await;
    assert_eq!(status, 201, "{schedule}");
    let schedule = schedule["id"].as_str().unwrap().to_owned();
    eventually("the seat and reservation services to know the schedule", Duration::from_secs(20), || async {
        let (_, seats) =
            system.call(Method::GET, &format!("/schedules/{schedule}/seats"), &token, None).await;
        let known = env
            .db
            .query_one_raw(Statement::from_string(
                DbBackend::Postgres,
                "SELECT count(*) AS n FROM reservation.schedules",
            ))
            .await
            .ok()??
            .try_get::<i64>("", "n")
            .ok()?;
        (seats["seats"].as_array().is_some_and(|s| s.len() == 3) && known == 1).then_some(())
    })
    .await;

    let (status, charged) =
        system.call(Method::POST, "/wallets/me/charges", &token, Some(json!({"amount": 10_000}))).await;
    assert_eq!(status, 200, "{charged}");
    let reserve = json!({"scheduleId": schedule, "seatNos": [1]});
    let (_, reservation) = system.call(Method::POST, "/reservations", &token, Some(reserve)).await;
    let id = reservation["id"].as_str().unwrap().to_owned();
    system.wait_status(&token, &id, "HELD").await;
    system.call(Method::POST, &format!("/reservations/{id}/payment"), &token, None).await;
    system.wait_status(&token, &id, "CONFIRMED").await;

    // The seat sells, the history records, the queue, ranking and external-data consume: the
    // settle waits for all of it, then nothing gets any grace.
    let report = system.audit(Duration::from_secs(30)).await;
    assert!(report.is_clean(), "{report}");
    assert!(matches!(report.settle, Some(Settle::Quiet { .. })), "{report}");
    assert_eq!(report.grace, Duration::ZERO);
    assert_eq!(report.reservations, [("CONFIRMED".to_owned(), 1)]);
    assert!(report.consumers.consumers > 0 && report.consumers.missing.is_empty(), "{report}");

    // A hold waiting for its payment keeps the system busy, and is no violation in itself.
    let reserve = json!({"scheduleId": schedule, "seatNos": [2]});
    let (_, held) = system.call(Method::POST, "/reservations", &token, Some(reserve)).await;
    let held = held["id"].as_str().unwrap().to_owned();
    system.wait_status(&token, &held, "HELD").await;
    let report = system.audit(Duration::from_millis(300)).await;
    assert_eq!(crate::failing(&report), ["settled"], "{report}");
    let busy = &report.check(Invariant::Settled).unwrap().examples;
    assert!(busy.iter().any(|e| e.id == held && e.detail == "HELD (open)"), "{report}");
}
