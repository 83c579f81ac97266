//! End-to-end scenarios over HTTP only, one process per service behind an in-test ingress.
//! Every scenario ends with the shared invariant checker (DESIGN §10).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod compensations;
mod concurrency;
mod faults;
mod happy;
mod input;
mod waiting_room;

use e2e::{
    api::Api,
    cluster::Cluster,
    harness::System,
    invariants::{self, DeadLetters},
};
use testkit::TestEnv;

/// A running system for one scenario.
pub struct Scenario {
    pub env: TestEnv,
    pub cluster: Cluster,
    pub api: Api,
}

impl Scenario {
    pub async fn start(overrides: &[(&str, &str)]) -> Self {
        Self::start_in(TestEnv::new().await.unwrap(), overrides).await
    }

    /// Starts the cluster in an environment the scenario prepared (e.g. with a receiver in it).
    pub async fn start_in(env: TestEnv, overrides: &[(&str, &str)]) -> Self {
        let cluster = Cluster::start(&env, overrides).await.unwrap();
        let api = Api::new(&cluster.base_url, env.jwt());
        Self { env, cluster, api }
    }

    /// The invariants hold once the system has settled.
    pub async fn check(&self, dead_letters: DeadLetters) {
        invariants::check(&self.env.db, &self.env.bus, dead_letters).await.unwrap();
    }
}

#[tokio::test]
async fn the_system_is_ready_and_answers_unknown_routes_with_problems() {
    let env = TestEnv::new().await.unwrap();
    let system = System::start(&env).unwrap();
    let http = reqwest::Client::new();

    let ready: serde_json::Value =
        http.get(format!("{}/readyz", system.base_url)).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");

    let res = http.post(format!("{}/no/such/route", system.base_url)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["code"], "ROUTE_NOT_FOUND");
    assert!(problem["detail"].as_str().unwrap().contains("/no/such/route"));
}
