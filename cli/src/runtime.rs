//! What a serving process holds: configuration, pools, the bus, and its named background tasks.

use anyhow::Context as _;
use messaging::Bus;
use platform::Config;
use sea_orm::DatabaseConnection;
use std::future::Future;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Shared by every service a process runs.
#[derive(Clone)]
#[allow(dead_code, reason = "config and shutdown are read by services' start functions")]
pub struct Runtime {
    pub config: Config,
    pub db: DatabaseConnection,
    pub bus: Bus,
    pub redis: deadpool_redis::Pool,
    pub shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Runtime {
    /// Connects to Postgres, NATS and Redis, and makes the streams match `nats/`.
    pub async fn connect(config: Config, shutdown: CancellationToken) -> anyhow::Result<Self> {
        let db = platform::pools::connect_db_from(&config).await.with_context(
            || "cannot reach Postgres (TICKETING_DATABASE_URL); is scripts/dev-stack running?",
        )?;
        let bus = Bus::connect(&config.nats_url, config.prefix.clone())
            .await
            .context("cannot reach NATS (TICKETING_NATS_URL)")?;
        messaging::definitions::apply(&bus).await.context("applying the stream definitions")?;
        let redis = platform::pools::connect_redis(config.redis_url.expose())
            .await
            .context("cannot reach Redis (TICKETING_REDIS_URL)")?;
        Ok(Self { config, db, bus, redis, shutdown, tasks: TaskTracker::new() })
    }

    /// Runs a named background task until it ends; `task` must stop when `shutdown` is cancelled.
    #[allow(dead_code, reason = "called by services' start functions")]
    pub fn spawn(&self, name: &str, task: impl Future<Output = ()> + Send + 'static) {
        let name = name.to_owned();
        self.tasks.spawn(async move {
            tracing::info!(task = %name, "started");
            task.await;
            tracing::info!(task = %name, "ended");
        });
    }

    /// Waits for every background task to finish (after shutdown was requested).
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}
