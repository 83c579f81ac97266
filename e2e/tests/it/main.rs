//! End-to-end scenarios over HTTP only.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

use e2e::harness::System;
use testkit::TestEnv;

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
