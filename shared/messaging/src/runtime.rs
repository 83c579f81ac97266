//! What a serving process holds: configuration, pools, the bus, and its named background tasks.
//! Services start their relays, consumers and tickers through it, so every task is named,
//! stops on the one shutdown token, and is waited for before the process exits.

use crate::{Bus, ConsumerSpec, MessagingError, Relay, consumer::Apply, run_consumer};
use futures::FutureExt;
use platform::Config;
use sea_orm::DatabaseConnection;
use std::{future::Future, sync::Arc};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// Shared by every service a process runs.
#[derive(Clone)]
pub struct Runtime {
    pub config: Config,
    pub db: DatabaseConnection,
    pub bus: Bus,
    pub redis: platform::pools::Redis,
    pub shutdown: CancellationToken,
    /// The background tasks that died before shutdown (`/healthz` names them).
    pub liveness: platform::http::Liveness,
    tasks: TaskTracker,
    /// The outboxes and consumers this process runs, for [`crate::gauges`].
    watch: crate::gauges::Watch,
    gauges_started: Arc<std::sync::atomic::AtomicBool>,
}

impl Runtime {
    /// Connects to Postgres, NATS and Redis, and makes the streams match `nats/`; logged in as
    /// a service's NATS user, which may not change them, it only checks they are there (the
    /// admin applies them: `ticketing nats apply`).
    pub async fn connect(config: Config, shutdown: CancellationToken) -> Result<Self, MessagingError> {
        let db = platform::pools::connect_db_from(&config).await.map_err(|e| MessagingError::Connect {
            url: "TICKETING_DATABASE_URL".into(),
            message: format!("cannot reach Postgres ({e}); is scripts/dev-stack running?"),
        })?;
        let bus =
            Bus::connect_as(&config.nats_url, config.prefix.clone(), config.nats_login.as_ref()).await?;
        match config.nats_login {
            None => crate::definitions::apply(&bus, config.nats_replicas).await?,
            Some(_) => crate::definitions::require_streams(&bus).await?,
        }
        let redis = platform::pools::connect_redis(config.redis_url.expose()).await.map_err(|e| {
            MessagingError::Connect { url: "TICKETING_REDIS_URL".into(), message: e.to_string() }
        })?;
        Ok(Self::from_parts(config, db, bus, redis, shutdown))
    }

    /// A runtime over connections that already exist (tests).
    pub fn from_parts(
        config: Config,
        db: DatabaseConnection,
        bus: Bus,
        redis: platform::pools::Redis,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            config,
            db,
            bus,
            redis,
            shutdown,
            liveness: Default::default(),
            tasks: TaskTracker::new(),
            watch: Default::default(),
            gauges_started: Default::default(),
        }
    }

    /// Runs a named background task until it ends; `task` must stop when `shutdown` is cancelled.
    /// Runs `task` in the background until shutdown. A task that ends before shutdown (it
    /// returned, or panicked) cannot be started again here: it is recorded in
    /// [`Runtime::liveness`] (so `/healthz` fails, naming it) and the process shuts down, to be
    /// restarted by whatever supervises it, instead of running on without it.
    pub fn spawn(&self, name: &str, task: impl Future<Output = ()> + Send + 'static) {
        let name = name.to_owned();
        let (shutdown, liveness) = (self.shutdown.clone(), self.liveness.clone());
        self.tasks.spawn(async move {
            tracing::info!(task = %name, "started");
            let ended = std::panic::AssertUnwindSafe(task).catch_unwind().await;
            if shutdown.is_cancelled() {
                tracing::info!(task = %name, "ended");
                return;
            }
            let why = match ended {
                Ok(()) => "ended while the process was running".to_owned(),
                Err(panic) => format!("panicked: {}", platform::http::panic_message(&*panic)),
            };
            tracing::error!(task = %name, %why, "a background task died; the process stops");
            metrics::counter!("background_tasks_died_total", "task" => name.clone()).increment(1);
            liveness.died(&name, &why);
            shutdown.cancel();
        });
    }

    /// Publishes `<schema>.outbox` until shutdown.
    pub fn spawn_relay(&self, schema: &str) {
        let relay = Relay::new(&self.db, self.bus.clone(), schema);
        self.spawn(&format!("relay[{schema}]"), relay.run(self.shutdown.clone()));
        self.watch.schema(schema);
        self.sample_gauges();
    }

    /// Starts sampling the backbone's gauges of what this process runs ([`crate::gauges`]),
    /// once.
    fn sample_gauges(&self) {
        if self.gauges_started.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        let task =
            crate::gauges::run(self.db.clone(), self.bus.clone(), self.watch.clone(), self.shutdown.clone());
        self.spawn("gauges", task);
    }

    /// Prunes `<schema>`'s old inbox and idempotency rows, hourly until shutdown ([`crate::prune`]).
    pub fn spawn_pruner(&self, schema: &str) {
        let task = crate::prune::run(self.db.clone(), schema.to_owned(), self.shutdown.clone());
        self.spawn(&format!("pruner[{schema}]"), task);
    }

    /// The durable consumers of `(service, stream)` this process runs: those `nats/consumers.json`
    /// declares with the deployment's partitions, of the partitions it keeps
    /// (`TICKETING_PARTITIONS`; every one when unset).
    pub fn declared(
        &self,
        service: &str,
        stream: contracts::Stream,
    ) -> Result<Vec<ConsumerSpec>, MessagingError> {
        let specs = ConsumerSpec::declared_in(service, stream, self.config.prefix.partitions())?;
        Ok(specs.into_iter().filter(|s| s.partition.is_none_or(|p| self.config.serves(p))).collect())
    }

    /// Durable consumers, all with one `apply` (the consumers of one stream that
    /// [`ConsumerSpec::declared`] names), checked before anything runs: their filters must give
    /// `apply` exactly the events it handles ([`crate::check_filters`]).
    pub fn consumer<A: Apply>(
        &self,
        specs: Vec<ConsumerSpec>,
        apply: A,
    ) -> Result<Consumer<A>, MessagingError> {
        crate::check_filters(&specs, |kind| apply.handles(kind)).map_err(MessagingError::Filters)?;
        Ok(Consumer { specs, apply: Arc::new(apply) })
    }

    /// [`Runtime::consumer`], run at once until shutdown.
    pub fn spawn_consumer<A: Apply>(&self, specs: Vec<ConsumerSpec>, apply: A) -> Result<(), MessagingError> {
        self.consumer(specs, apply)?.spawn(self);
        Ok(())
    }

    /// Waits for every background task to finish (after shutdown was requested).
    pub async fn drain(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// Durable consumers whose filters fit their handler, ready to run ([`Runtime::consumer`]).
pub struct Consumer<A> {
    specs: Vec<ConsumerSpec>,
    apply: Arc<A>,
}

impl<A: Apply> Consumer<A> {
    /// Runs them on `rt` until its shutdown.
    pub fn spawn(self, rt: &Runtime) {
        for spec in self.specs {
            rt.watch.consumer(rt.bus.ns.stream(spec.stream), spec.name(), &spec.service);
            let name = format!("consumer[{}]", spec.name());
            rt.spawn(&name, run_consumer(rt.bus.clone(), spec, self.apply.clone(), rt.shutdown.clone()));
        }
        rt.sample_gauges();
    }
}
