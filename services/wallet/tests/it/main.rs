//! The wallet service against real Postgres and NATS: HTTP, and its part of the saga.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod http;
mod least_privilege;
mod openapi;
mod payments;

use contracts::UserId;
use testkit::TestEnv;

/// A running wallet service (routes, relay, consumer) in its own environment.
pub struct Wallet {
    pub env: TestEnv,
    pub url: String,
    pub http: reqwest::Client,
}

impl Wallet {
    pub async fn start() -> Self {
        let env = TestEnv::new().await.unwrap();
        let router = testkit::start::<wallet::Wallet>(&env.runtime()).unwrap();
        let url = env.spawn_app(router).await.unwrap();
        Self { env, url, http: reqwest::Client::new() }
    }

    pub async fn charge(&self, user: UserId, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}/wallets/me/charges", self.url))
            .bearer_auth(self.env.user_token(user))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn balance(&self, user: UserId) -> i64 {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/wallets/me", self.url))
            .bearer_auth(self.env.user_token(user))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(v["userId"], serde_json::json!(user.0));
        v["balance"].as_i64().unwrap()
    }
}
