//! The user service against real Postgres: accounts, sign-in and the tokens other services take.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod accounts;
mod openapi;

use serde_json::{Value, json};
use testkit::TestEnv;

/// A running user service in its own environment, connected as its own database role.
pub struct Users {
    pub env: TestEnv,
    pub url: String,
    pub http: reqwest::Client,
}

impl Users {
    pub async fn start() -> Self {
        let env = TestEnv::new().await.unwrap();
        let url = env.spawn_service::<user::Users>().await.unwrap();
        Self { env, url, http: reqwest::Client::new() }
    }

    /// POSTs `body` to `path`; answers the status and the body.
    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self.http.post(format!("{}{path}", self.url)).json(&body).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Sends `body` with `method` to `path` with a bearer token.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url)).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// Opens an account; answers it.
    pub async fn sign_up(&self, email: &str, password: &str) -> Value {
        let (status, body) = self.post("/users", json!({"email": email, "password": password})).await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// Signs in; answers the status and the body.
    pub async fn sign_in(&self, email: &str, password: &str) -> (u16, Value) {
        self.post("/sessions", json!({"email": email, "password": password})).await
    }

    /// The `UserStatusChanged` events published, once there are `n` (and a moment later, to
    /// see that no more follow).
    pub async fn status_changes(&self, n: usize) -> Vec<contracts::UserStatusChanged> {
        let env = &self.env;
        testkit::eventually("the status changes", std::time::Duration::from_secs(10), || async move {
            let got = env.events_of::<contracts::UserStatusChanged>().await.ok()?;
            (got.len() >= n).then_some(())
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let got = self.env.events_of::<contracts::UserStatusChanged>().await.unwrap();
        assert_eq!(got.len(), n, "{got:?}");
        got
    }

    /// The number of accounts.
    pub async fn accounts(&self) -> i64 {
        use sea_orm::ConnectionTrait;
        let row = self
            .env
            .db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT count(*) AS n FROM users.accounts",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get("", "n").unwrap()
    }
}
