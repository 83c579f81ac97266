//! What `/readyz` asks: each dependency of a process, checked with a deadline. Kept apart from
//! the HTTP side so that crates with dependencies to report (the NATS bus) need no HTTP.

use futures::future::BoxFuture;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use std::{sync::Arc, time::Duration};

/// One dependency `/readyz` checks.
pub trait ReadinessCheck: Send + Sync {
    /// Short name shown in the `/readyz` answer.
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency answers.
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

impl ReadinessCheck for DatabaseConnection {
    fn name(&self) -> &'static str {
        "postgres"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(
            async move { self.execute_unprepared("SELECT 1").await.map(|_| ()).map_err(|e| e.to_string()) },
        )
    }
}

impl ReadinessCheck for crate::pools::Redis {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            let mut conn = self.clone();
            redis::cmd("PING").query_async::<String>(&mut conn).await.map(|_| ()).map_err(|e| e.to_string())
        })
    }
}

/// The background tasks of a process that ended while it was meant to run (`/healthz` names
/// them): a process missing one relays, consumes or sweeps no more, and must be replaced.
#[derive(Clone, Default)]
pub struct Liveness(Arc<std::sync::Mutex<Vec<String>>>);

impl Liveness {
    /// Records that the task `name` ended before shutdown, and why.
    pub fn died(&self, name: &str, why: &str) {
        if let Ok(mut dead) = self.0.lock() {
            dead.push(format!("{name}: {why}"));
        }
    }

    /// The tasks that died, each with why.
    pub fn dead(&self) -> Vec<String> {
        self.0.lock().map(|d| d.clone()).unwrap_or_default()
    }
}

/// The dependencies of a process; each is checked at most once per `/readyz` call, with a
/// deadline. And whether its background tasks all still run ([`Liveness`], for `/healthz`).
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<Arc<dyn ReadinessCheck>>,
    pub liveness: Liveness,
}

impl Readiness {
    /// Adds a dependency (the first of each name wins, so shared pools are checked once).
    pub fn with(mut self, check: Arc<dyn ReadinessCheck>) -> Self {
        if !self.checks.iter().any(|c| c.name() == check.name()) {
            self.checks.push(check);
        }
        self
    }

    /// Reports the tasks `liveness` records as dead on `/healthz`.
    pub fn watching(mut self, liveness: Liveness) -> Self {
        self.liveness = liveness;
        self
    }

    /// Runs every check concurrently, 2 s each.
    pub async fn run(&self) -> Vec<(&'static str, Result<(), String>)> {
        futures::future::join_all(self.checks.iter().map(|c| async move {
            let outcome = match tokio::time::timeout(Duration::from_secs(2), c.check()).await {
                Ok(r) => r,
                Err(_) => Err("no answer within 2 s".to_owned()),
            };
            (c.name(), outcome)
        }))
        .await
    }
}
