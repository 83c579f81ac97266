//! End-to-end scenarios over HTTP, against one process per service behind an in-test ingress
//! or against any deployment named by `E2E_BASE_URL` (see `e2e::deployment`). Every scenario
//! ends with `ticketing audit`'s checks (DESIGN §10) once the system has settled.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod compensations;
mod concurrency;
mod faults;
mod happy;
mod input;
mod topology;
mod waiting_room;

use e2e::{
    deployment::{Deployment, Need},
    harness::System,
};
use testkit::TestEnv;

/// The system a scenario runs on: the in-test processes, or the deployment at `E2E_BASE_URL`.
pub type Scenario = Deployment;

/// A scenario's system with its own settings, or `None` when the deployment cannot take them
/// (the reason is printed and the scenario does not run).
pub async fn scenario(settings: &[(&str, &str)]) -> Option<Scenario> {
    Deployment::start(settings, &[]).await.unwrap()
}

/// A scenario's system that must also offer `needs` (stopping services, faults).
pub async fn scenario_needing(settings: &[(&str, &str)], needs: &[Need]) -> Option<Scenario> {
    Deployment::start(settings, needs).await.unwrap()
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
