//! End-to-end scenarios over HTTP, against one process per service behind an in-test ingress
//! or against any deployment named by `E2E_BASE_URL` (see `e2e::deployment`). Every scenario
//! ends with `ticketing audit`'s checks (DESIGN §10) once the system has settled.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod accounts;
mod browser;
mod cards;
mod compensations;
mod concurrency;
mod dead_letters;
mod faults;
mod happy;
mod input;
mod partitions;
mod topology;
mod traces;
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

    if std::env::var("E2E_BASE_URL").is_ok_and(|u| !u.is_empty()) {
        // Behind the ingress the ops routes are not public (each process serves them on
        // TICKETING_OPS_ADDR, for probes and scrapes).
        for path in ["/readyz", "/metrics", "/healthz"] {
            let res = http.get(format!("{}{path}", system.base_url)).send().await.unwrap();
            assert_eq!(res.status(), 404, "{path} through the ingress");
        }
    } else {
        let ready: serde_json::Value =
            http.get(format!("{}/readyz", system.base_url)).send().await.unwrap().json().await.unwrap();
        assert_eq!(ready["status"], "ready", "{ready}");
    }

    let res = http.post(format!("{}/no/such/route", system.base_url)).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = res.json().await.unwrap();
    assert_eq!(problem["status"], 404);
    assert_eq!(problem["code"], "ROUTE_NOT_FOUND");
    assert!(problem["detail"].as_str().unwrap().contains("/no/such/route"));
}

/// `scripts/cluster-up` refuses a port another process holds, naming it, and starts nothing.
#[test]
fn cluster_up_refuses_a_taken_port_and_starts_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("ticketing-cluster-{}", uuid::Uuid::now_v7()));
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cluster-up");
    let out = std::process::Command::new(script)
        .env("TICKETING_CLUSTER_DIR", &dir)
        .env("CLUSTER_INGRESS_PORT", port.to_string())
        // Every other port of this topology is free: a base no other test or topology uses.
        .env("CLUSTER_PORT_BASE", "41000")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("port {port} (for ingress)")), "{err}");
    assert!(err.contains("nothing was started"), "{err}");
    assert!(out.stdout.is_empty(), "no exports: {}", String::from_utf8_lossy(&out.stdout));
    let supervised = std::fs::read_dir(dir.join("run"))
        .map(|d| {
            d.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".sup")).count()
        })
        .unwrap_or(0);
    assert_eq!(supervised, 0, "a process of the topology was started");
    let _ = std::fs::remove_dir_all(&dir);
    drop(taken);
}
