//! One `ticketing serve <svc>` process per service, behind an in-test ingress that routes by
//! the one route table (`platform::routes`), as nginx in the local topology and the Kubernetes
//! ingress do. Services can be stopped and started again mid-scenario.

use crate::harness::{Process, binary, command};
use axum::{
    body::Body,
    extract::{Request, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};
use testkit::TestEnv;

/// The services a cluster runs: every one, by the list that gives each its database role (so a
/// new service is in the cluster once it has its role).
pub fn services() -> impl Iterator<Item = &'static str> {
    migrations::SERVICE_SCHEMA_OWNERS.iter().map(|(service, _)| *service)
}

/// Settings every in-test cluster starts with (the scenario's win): each process keeps a small
/// Postgres pool, so a cluster stays well inside the server's connection limit.
pub const DEFAULTS: &[(&str, &str)] = &[("TICKETING_DATABASE_MAX_CONNECTIONS", "8")];

type Upstreams = Arc<RwLock<HashMap<&'static str, String>>>;

/// Running services and the ingress in front of them.
pub struct Cluster {
    /// The ingress: `http://127.0.0.1:<port>`.
    pub base_url: String,
    upstreams: Upstreams,
    processes: HashMap<&'static str, Process>,
    overrides: Vec<(String, String)>,
    /// The payment gateway the payment service talks to (`ticketing pg-sim`), its webhooks sent
    /// to the ingress.
    pub gateway: Process,
}

impl Cluster {
    /// Starts every service against `env`, with configuration `overrides` (e.g. short holds).
    pub async fn start(env: &TestEnv, overrides: &[(&str, &str)]) -> anyhow::Result<Self> {
        let upstreams: Upstreams = Arc::default();
        let router =
            axum::Router::new().fallback(forward).with_state((upstreams.clone(), reqwest::Client::new()));
        let base_url = env.spawn_raw(router).await?;
        let gateway = start_gateway(env, &base_url)?;
        let mut cluster = Self {
            upstreams,
            processes: HashMap::new(),
            // Later settings win when the command's environment is built.
            overrides: DEFAULTS
                .iter()
                .chain(overrides)
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            gateway,
            base_url,
        };
        for service in services() {
            cluster.start_service(env, service)?;
        }
        Ok(cluster)
    }

    /// Restarts every service with `overrides` instead of the settings it started with.
    pub async fn reconfigure(&mut self, env: &TestEnv, overrides: &[(&str, &str)]) -> anyhow::Result<()> {
        self.overrides =
            DEFAULTS.iter().chain(overrides).map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        for service in services() {
            self.stop_service(service).await?;
            self.start_service(env, service)?;
        }
        Ok(())
    }

    /// Starts (or restarts) one service, connected to Postgres as its own role, and points the
    /// ingress at it.
    pub fn start_service(&mut self, env: &TestEnv, service: &'static str) -> anyhow::Result<()> {
        let mut cmd = command(&binary(), env);
        cmd.env(
            "TICKETING_DATABASE_URL",
            testkit::with_user(&env.database_url, &migrations::service_role(service)),
        );
        cmd.env("TICKETING_PAYMENT_GATEWAY_URL", &self.gateway.url)
            .env("TICKETING_PAYMENT_RETURN_URL", format!("{}/", self.base_url));
        for (k, v) in &self.overrides {
            cmd.env(k, v);
        }
        cmd.args(["serve", service]);
        let process = Process::spawn(cmd)?;
        self.upstreams.write().map_err(|_| anyhow::anyhow!("poisoned"))?.insert(service, process.url.clone());
        self.processes.insert(service, process);
        Ok(())
    }

    /// Stops one service the way Kubernetes does (SIGTERM), and waits for it to exit.
    pub async fn stop_service(&mut self, service: &'static str) -> anyhow::Result<()> {
        if let Some(mut p) = self.processes.remove(service) {
            p.terminate()?;
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
            while p.child.try_wait()?.is_none() {
                anyhow::ensure!(tokio::time::Instant::now() < deadline, "{service} did not stop within 30 s");
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
        self.upstreams.write().map_err(|_| anyhow::anyhow!("poisoned"))?.remove(service);
        Ok(())
    }
}

/// `ticketing pg-sim` on a port of its own, sending its webhooks to the ingress at `base_url`.
pub fn start_gateway(env: &TestEnv, base_url: &str) -> anyhow::Result<Process> {
    let mut cmd = command(&binary(), env);
    cmd.env("PG_SIM_WEBHOOK_URL", format!("{base_url}/payments/webhooks/pg-sim")).args([
        "pg-sim",
        "--addr",
        "127.0.0.1:0",
    ]);
    Process::spawn(cmd)
}

async fn forward(State((upstreams, http)): State<(Upstreams, reqwest::Client)>, req: Request) -> Response {
    let path = req.uri().path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
    let service = platform::routes::service_for(req.uri().path());
    let upstream = upstreams.read().ok().and_then(|u| u.get(service).cloned());
    let Some(upstream) = upstream else {
        return upstream_down();
    };
    let (parts, body) = req.into_parts();
    let Ok(body) = axum::body::to_bytes(body, 1 << 20).await else {
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let mut out = http.request(parts.method, format!("{upstream}{path}")).body(body);
    for (k, v) in &parts.headers {
        if k != "host" {
            out = out.header(k, v);
        }
    }
    match out.send().await {
        Ok(res) => {
            let mut builder = Response::builder().status(res.status());
            for (k, v) in res.headers() {
                builder = builder.header(k, v);
            }
            // Passed on as it comes, as nginx does: an event stream never ends.
            builder
                .body(Body::from_stream(res.bytes_stream()))
                .unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
        }
        Err(_) => upstream_down(),
    }
}

/// What nginx answers when no replica of a service answers (platform::routes).
fn upstream_down() -> Response {
    let mut res = platform::Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "UPSTREAM_UNAVAILABLE",
        "no replica of the service behind this path answered; retry shortly",
    )
    .into_response();
    res.headers_mut().insert("retry-after", axum::http::HeaderValue::from_static("1"));
    res
}
