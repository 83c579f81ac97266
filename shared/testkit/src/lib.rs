//! Test isolation (DESIGN §10): every test gets a fresh migrated database, its own NATS prefix
//! (so its own streams), its own Redis key prefix, and binds port 0. Everything it made is
//! removed when the environment is dropped, and leftovers of crashed runs are swept later, so
//! no test depends on what an earlier run left on the shared servers.

use anyhow::Context as _;
use contracts::{Namespace, Stream};
use messaging::Bus;
use platform::{Config, Secret};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use std::{future::Future, net::SocketAddr, time::Duration};
use tokio_util::sync::CancellationToken;

/// The JWT secret every test environment signs with.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Environments older than this belong to crashed runs and are swept.
const STALE_AFTER: Duration = Duration::from_secs(2 * 3600);

fn server_urls() -> (String, String, String) {
    let var =
        |k: &str, d: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).unwrap_or_else(|| d.to_owned());
    (
        var("TICKETING_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"),
        var("TICKETING_NATS_URL", "nats://127.0.0.1:4222"),
        var("TICKETING_REDIS_URL", "redis://127.0.0.1:6379"),
    )
}

/// The NATS login of the servers the tests use, if they ask for one (`TICKETING_NATS_USER` and
/// `TICKETING_NATS_PASSWORD`: the local topology's admin, which `scripts/cluster-up` exports).
fn nats_login() -> Option<platform::config::NatsLogin> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    Some(platform::config::NatsLogin {
        user: var("TICKETING_NATS_USER")?,
        password: Secret::new(var("TICKETING_NATS_PASSWORD")?),
    })
}

/// One test's private slice of Postgres, NATS and Redis.
pub struct TestEnv {
    /// The test's own database (migrated).
    pub db: DatabaseConnection,
    pub database_url: String,
    pub bus: Bus,
    pub redis: platform::pools::Redis,
    /// The namespace of this test's streams, subjects and Redis keys.
    pub ns: Namespace,
    /// A configuration that points at this environment.
    pub config: Config,
    /// Cancelled on drop: background tasks spawned for the test stop with it.
    pub shutdown: CancellationToken,
    admin_url: String,
    db_name: String,
    nats_url: String,
    redis_url: String,
}

impl TestEnv {
    /// Creates the database (migrated), the streams under a fresh prefix, and the Redis connection.
    pub async fn new() -> anyhow::Result<Self> {
        let _ = platform::telemetry::init("test", None, platform::telemetry::LogFormat::Text);
        let (admin_url, nats_url, redis_url) = server_urls();
        let now = chrono_secs();
        let name = format!("tk_{now}_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let ns = Namespace::new(&name)?;

        let admin = Database::connect(&admin_url)
            .await
            .context("connect to Postgres (is scripts/dev-stack running?)")?;
        sweep_databases(&admin, now).await;
        admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await?;
        admin.close().await?;
        let database_url = replace_database(&admin_url, &name);
        migrations::migrate(&database_url).await.context("migrate the test database")?;
        let db = platform::pools::connect_db(&database_url, 10).await?;

        let bus = Bus::connect_as(&nats_url, ns.clone(), nats_login().as_ref())
            .await
            .context("connect to NATS (is scripts/dev-stack running?)")?;
        sweep_streams(&bus, now).await;
        messaging::definitions::apply(&bus, 1).await?;

        let redis = platform::pools::connect_redis(&redis_url).await?;
        let config = Config::from_vars(vars(&database_url, &nats_url, &redis_url, &name))?;
        Ok(Self {
            db,
            database_url,
            bus,
            redis,
            ns,
            config,
            shutdown: CancellationToken::new(),
            admin_url,
            db_name: name,
            nats_url,
            redis_url,
        })
    }

    /// Creates `schema` with its outbox, inbox and idempotency tables (for tests of shared layers).
    pub async fn messaging_schema(&self, schema: &str) -> anyhow::Result<()> {
        migrations::create_service_schema(&self.db, schema).await?;
        Ok(())
    }

    /// The JWT keys of this environment.
    pub fn jwt(&self) -> platform::auth::JwtKeys {
        platform::auth::JwtKeys::shared_secret(&Secret::new(TEST_JWT_SECRET))
    }

    /// Serves `router` (finished with the shared middleware) on 127.0.0.1:0 until the
    /// environment is dropped; returns its base URL.
    pub async fn spawn_app(&self, router: axum::Router) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        let shutdown = self.shutdown.clone();
        tokio::spawn(platform::http::serve(
            listener,
            platform::http::finish(router, platform::http::HttpLimits::default()),
            shutdown,
        ));
        Ok(format!("http://{addr}"))
    }

    /// Starts the service `S` on this environment ([`servicekit::start`]), connected to
    /// Postgres as its own role as it is deployed, and serves its routes; answers their base URL.
    pub async fn spawn_service<S: servicekit::Service>(&self) -> anyhow::Result<String> {
        self.spawn_app(servicekit::start::<S>(&self.runtime_as::<S>(&[]).await?)?).await
    }

    /// A runtime of the service `S` as it is deployed: its database connections are its own
    /// role ([`migrations::service_role`]: its schema and nothing else), its Redis connection
    /// its own ACL user ([`TestEnv::redis_as`]); with some configuration overridden.
    pub async fn runtime_as<S: servicekit::Service>(
        &self,
        overrides: &[(&str, &str)],
    ) -> anyhow::Result<messaging::Runtime> {
        let url = with_user(&self.database_url, &migrations::service_role(S::NAME));
        let db =
            platform::pools::connect_db(&url, 5).await.with_context(|| format!("connect as {}", S::NAME))?;
        let redis = self.redis_as(S::NAME, &S::REDIS).await?;
        let mut overrides = overrides.to_vec();
        overrides.push(("TICKETING_DATABASE_URL", &url));
        Ok(messaging::Runtime::from_parts(
            self.config_with(&overrides),
            db,
            self.bus.clone(),
            redis,
            self.shutdown.clone(),
        ))
    }

    /// A Redis connection as `service`'s own ACL user, allowed `keys` under this environment's
    /// prefix and nothing else ([`platform::redis_acl`]), as the service runs deployed. The
    /// user is removed with the environment.
    pub async fn redis_as(
        &self,
        service: &str,
        keys: &platform::redis_acl::RedisKeys,
    ) -> anyhow::Result<platform::pools::Redis> {
        let user = format!("{}-{service}", self.db_name);
        let password = uuid::Uuid::new_v4().simple().to_string();
        let rules = platform::redis_acl::rules(&self.config.prefix, keys);
        let mut setuser = redis::cmd("ACL");
        setuser.arg("SETUSER").arg(&user).arg("reset").arg("on").arg(format!(">{password}"));
        setuser.arg(rules.split_whitespace().collect::<Vec<_>>());
        let () = setuser
            .query_async(&mut self.redis.clone())
            .await
            .with_context(|| format!("ACL SETUSER {user}"))?;
        let url = with_user(&self.redis_url, &format!("{user}:{password}"));
        platform::pools::connect_redis(&url).await.with_context(|| format!("connect to Redis as {user}"))
    }

    /// A service runtime over this environment's connections (its tasks stop on drop).
    pub fn runtime(&self) -> messaging::Runtime {
        self.runtime_with(&[])
    }

    /// This environment's configuration with some variables overridden (e.g. short holds).
    pub fn config_with(&self, overrides: &[(&str, &str)]) -> Config {
        let mut vars = vars(&self.database_url, &self.nats_url, &self.redis_url, &self.db_name);
        // The first override of a variable wins: later entries win in the map, so they go in reversed.
        vars.extend(overrides.iter().rev().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        Config::from_vars(vars).unwrap_or_else(|e| panic!("test configuration: {e}"))
    }

    /// A service runtime with some configuration overridden.
    pub fn runtime_with(&self, overrides: &[(&str, &str)]) -> messaging::Runtime {
        messaging::Runtime::from_parts(
            self.config_with(overrides),
            self.db.clone(),
            self.bus.clone(),
            self.redis.clone(),
            self.shutdown.clone(),
        )
    }

    /// Publishes raw bytes to an (unprefixed) subject with the given `Nats-Msg-Id`.
    pub async fn publish_raw(&self, subject: &str, msg_id: &str, body: Vec<u8>) -> anyhow::Result<()> {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(contracts::HEADER_MSG_ID, msg_id);
        self.bus
            .js
            .send_publish(
                self.ns.subject(subject),
                async_nats::jetstream::message::PublishMessage::build().payload(body.into()).headers(headers),
            )
            .await?
            .await?;
        Ok(())
    }

    /// Publishes an event on its subject as another service would (message id = event id).
    pub async fn publish<E: contracts::Event>(&self, event: &contracts::Envelope<E>) -> anyhow::Result<()> {
        self.publish_raw(
            &self.ns.partitions().subject(&event.payload),
            &event.id.to_string(),
            serde_json::to_vec(event)?,
        )
        .await
    }

    /// Every event stored in one of this environment's streams, oldest first.
    pub async fn events(
        &self,
        stream: Stream,
    ) -> anyhow::Result<Vec<contracts::Envelope<serde_json::Value>>> {
        let mut s = self.bus.js.get_stream(self.ns.stream(stream)).await?;
        let state = s.info().await?.state.clone();
        let mut out = Vec::new();
        if state.messages == 0 {
            return Ok(out);
        }
        for seq in state.first_sequence..=state.last_sequence {
            if let Ok(m) = s.get_raw_message(seq).await {
                out.push(serde_json::from_slice(&m.payload)?);
            }
        }
        Ok(out)
    }

    /// The payloads of every distinct `E` in its stream, oldest first; a copy published again
    /// with the same event id is the same event and counts once.
    pub async fn events_of<E: contracts::Event>(&self) -> anyhow::Result<Vec<E>> {
        let mut seen = std::collections::HashSet::new();
        let events = self.events(E::STREAM).await?;
        events
            .into_iter()
            .filter(|e| e.kind == E::TYPE && seen.insert(e.id))
            .map(|e| Ok(e.decode::<E>()?.payload))
            .collect()
    }

    /// The envelopes waiting in `<schema>.outbox`, in the order they were written: for tests
    /// that run handlers without a relay.
    pub async fn outbox_envelopes(&self, schema: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let sql = format!("SELECT convert_from(body, 'UTF8')::jsonb AS e FROM {schema}.outbox ORDER BY seq");
        let rows =
            self.db.query_all_raw(sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql)).await?;
        Ok(rows.iter().map(|r| r.try_get("", "e")).collect::<Result<_, _>>()?)
    }

    /// Waits (bounded) until the consumers of `schema` have handled event `id` and everything
    /// its handling announced has left the outbox: the sync point for asserting that an event
    /// changed nothing (or what it published).
    pub async fn wait_handled(&self, schema: &str, id: contracts::EventId) {
        let handled = format!("SELECT 1 AS one FROM {schema}.inbox WHERE event_id = $1");
        let pending = format!("SELECT count(*) AS n FROM {schema}.outbox");
        eventually(
            &format!("{schema} to handle event {id} and publish its effects"),
            Duration::from_secs(15),
            || {
                let handled = sea_orm::Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    handled.clone(),
                    [id.0.into()],
                );
                let pending = sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, pending.clone());
                async move {
                    self.db.query_one_raw(handled).await.ok().flatten()?;
                    let n: i64 =
                        self.db.query_one_raw(pending).await.ok().flatten()?.try_get("", "n").ok()?;
                    (n == 0).then_some(())
                }
            },
        )
        .await;
    }

    /// Waits (bounded) until every durable consumer of `stream` that `service` declares has
    /// been given every message its filter passes and has acked each: the sync point after
    /// publishing a message that leaves no trace (a repeat, one outside the service's interest).
    pub async fn wait_consumed(&self, service: &str, stream: Stream) {
        let specs = messaging::ConsumerSpec::declared(service, stream)
            .unwrap_or_else(|e| panic!("declared consumers of {service}: {e}"));
        for name in specs.iter().map(messaging::ConsumerSpec::name) {
            eventually(&format!("{name} to handle every message"), Duration::from_secs(15), || async {
                let stream = self.bus.js.get_stream(self.ns.stream(stream)).await.ok()?;
                let info = stream.consumer_info(&name).await.ok()?;
                (info.num_pending == 0
                    && info.num_ack_pending == 0
                    && info.ack_floor.consumer_sequence >= info.delivered.consumer_sequence)
                    .then_some(())
            })
            .await;
        }
    }

    /// Waits (bounded) until the Redis consumer `consumer` (`<service>__<STREAM>`) has applied
    /// event `id`: its inbox key exists.
    pub async fn wait_redis_handled(&self, consumer: &str, id: contracts::EventId) {
        let key = self.ns.redis_key(&format!("inbox:{consumer}:{id}"));
        eventually(&format!("{consumer} to handle event {id}"), Duration::from_secs(15), || {
            let (redis, key) = (self.redis.clone(), key.clone());
            async move {
                let mut conn = redis.clone();
                let n: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut conn).await.ok()?;
                (n == 1).then_some(())
            }
        })
        .await;
    }

    /// A bearer token for `user` (role user).
    pub fn user_token(&self, user: contracts::UserId) -> String {
        self.jwt().mint(user, platform::auth::Role::User, Duration::from_secs(3600)).unwrap_or_default()
    }

    /// A bearer token with role admin.
    pub fn admin_token(&self) -> String {
        self.jwt()
            .mint(contracts::UserId::new(), platform::auth::Role::Admin, Duration::from_secs(3600))
            .unwrap_or_default()
    }

    /// Serves `router` as it is (no shared middleware) on 127.0.0.1:0; returns its base URL.
    pub async fn spawn_raw(&self, router: axum::Router) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr: SocketAddr = listener.local_addr()?;
        tokio::spawn(platform::http::serve(listener, router, self.shutdown.clone()));
        Ok(format!("http://{addr}"))
    }

    /// Counts the messages stored in one of this environment's streams.
    pub async fn stream_messages(&self, stream: Stream) -> anyhow::Result<u64> {
        let mut s = self.bus.js.get_stream(self.ns.stream(stream)).await?;
        Ok(s.info().await?.state.messages)
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let (admin_url, name, nats_url, redis_url) =
            (self.admin_url.clone(), self.db_name.clone(), self.nats_url.clone(), self.redis_url.clone());
        // Drop runs inside the test's runtime; clean up on a thread of our own and wait for it,
        // so the test process does not exit before its database and streams are gone.
        let cleanup = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async move {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                        .await;
                }
                if let Ok(ns) = Namespace::new(&name)
                    && let Ok(bus) = Bus::connect_as(&nats_url, ns.clone(), nats_login().as_ref()).await
                {
                    for stream in Stream::ALL {
                        let _ = bus.js.delete_stream(ns.stream(stream)).await;
                    }
                }
                if let Ok(redis) = platform::pools::connect_redis(&redis_url).await {
                    delete_redis_prefix(&redis, &name).await;
                    delete_redis_users(&redis, &name).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

/// Polls `check` every 20 ms until it yields a value or `timeout` passes; then panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a service on a runtime ([`servicekit::start`]), for tests that configure their own.
pub use servicekit::start;

/// A Server-Sent Events response read event by event.
pub struct Events {
    res: reqwest::Response,
    buffer: String,
}

impl Events {
    /// Reads `res`, which must be a `text/event-stream`.
    pub fn of(res: reqwest::Response) -> Self {
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        Self { res, buffer: String::new() }
    }

    /// The `data` of the next event named `kind` (JSON), skipping others and comments; `None`
    /// once the stream ends. Panics when none comes within 15 s.
    #[allow(clippy::expect_used, reason = "a test's helper: a broken stream fails the test")]
    pub async fn next(&mut self, kind: &str) -> Option<serde_json::Value> {
        let name = format!("event: {kind}");
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                if event.lines().any(|l| l == name) {
                    let data = event.lines().find_map(|l| l.strip_prefix("data: ")).expect("an event's data");
                    return Some(serde_json::from_str(data).expect("an event's data is JSON"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.res.chunk())
                .await
                .expect("an event within 15 s")
                .expect("the stream to be read")?;
            self.buffer.push_str(std::str::from_utf8(&chunk).expect("UTF-8 events"));
        }
    }
}

/// Whether `S`'s document and routes agree, on a service started in a fresh environment (see
/// [`openapi_drift`]). Empty when they do.
pub async fn openapi_drift_of<S: servicekit::Service>() -> anyhow::Result<Vec<String>> {
    let env = TestEnv::new().await?;
    let url = env.spawn_service::<S>().await?;
    openapi_drift(&url, &format!("/openapi/{}.json", S::NAME), &servicekit::openapi::<S>()).await
}

/// What the app at `url` contradicts in its OpenAPI document `doc`: every documented operation
/// must be routed (a request to it, with a fresh UUID for each path parameter and no credentials
/// or body, is answered with anything but `404 ROUTE_NOT_FOUND` or `405`), and `served_at` must
/// serve `doc` itself. Empty when they agree.
pub async fn openapi_drift(
    url: &str,
    served_at: &str,
    doc: &utoipa::openapi::OpenApi,
) -> anyhow::Result<Vec<String>> {
    use reqwest::Method;
    let http = reqwest::Client::new();
    let mut drift = Vec::new();
    if doc.paths.paths.is_empty() {
        drift.push("the document lists no paths".to_owned());
    }
    for (path, item) in &doc.paths.paths {
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg.starts_with('{') && seg.ends_with('}') {
                    uuid::Uuid::new_v4().to_string()
                } else {
                    seg.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
            (Method::HEAD, &item.head),
            (Method::OPTIONS, &item.options),
            (Method::TRACE, &item.trace),
        ];
        for (method, _) in operations.into_iter().filter(|(_, op)| op.is_some()) {
            let res = http.request(method.clone(), format!("{url}{concrete}")).send().await?;
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            if status == 405 || body["code"] == "ROUTE_NOT_FOUND" {
                drift
                    .push(format!("{method} {path} is documented but not routed (answered {status} {body})"));
            }
        }
    }
    let served: serde_json::Value = http.get(format!("{url}{served_at}")).send().await?.json().await?;
    if served != serde_json::to_value(doc)? {
        drift.push(format!("{served_at} does not serve the document"));
    }
    Ok(drift)
}

fn chrono_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The creation time encoded in a `tk_<secs>_<rand>` name.
fn created_at(name: &str) -> Option<u64> {
    name.strip_prefix("tk_")?.split('_').next()?.parse().ok()
}

fn is_stale(name: &str, now: u64) -> bool {
    created_at(name).is_some_and(|t| now.saturating_sub(t) > STALE_AFTER.as_secs())
}

/// The value of the series `series` (its name and labels, as Prometheus text renders them, e.g.
/// `dlq_messages{service="seat"}`) in the rendered `metrics`; `None` when it is not there.
pub fn metric(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `url` with its user (and password) replaced by `user`.
pub fn with_user(url: &str, user: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let host = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
    format!("{scheme}://{user}@{host}")
}

fn replace_database(url: &str, name: &str) -> String {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let server = head.rsplit_once('/').map_or(head, |(s, _)| s);
    match query {
        Some(q) => format!("{server}/{name}?{q}"),
        None => format!("{server}/{name}"),
    }
}

async fn sweep_databases(admin: &DatabaseConnection, now: u64) {
    let Ok(rows) = admin
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT datname FROM pg_database WHERE datname LIKE 'tk\\_%'",
        ))
        .await
    else {
        return;
    };
    for row in rows {
        if let Ok(name) = row.try_get::<String>("", "datname")
            && is_stale(&name, now)
        {
            let _ =
                admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        }
    }
}

async fn sweep_streams(bus: &Bus, now: u64) {
    use futures::StreamExt;
    let names: Vec<String> = bus.js.stream_names().filter_map(|n| async move { n.ok() }).collect().await;
    for name in names.into_iter().filter(|n| is_stale(n, now)) {
        let _ = bus.js.delete_stream(&name).await;
    }
}

/// Removes the ACL users [`TestEnv::redis_as`] made for the environment `name`.
async fn delete_redis_users(redis: &platform::pools::Redis, name: &str) {
    let mut conn = redis.clone();
    let Ok(users): Result<Vec<String>, _> = redis::cmd("ACL").arg("USERS").query_async(&mut conn).await
    else {
        return;
    };
    let ours: Vec<&String> = users.iter().filter(|u| u.starts_with(&format!("{name}-"))).collect();
    if !ours.is_empty() {
        let _: Result<i64, _> = redis::cmd("ACL").arg("DELUSER").arg(ours).query_async(&mut conn).await;
    }
}

async fn delete_redis_prefix(redis: &platform::pools::Redis, prefix: &str) {
    let mut conn = redis.clone();
    let pattern = format!("{prefix}:*");
    let mut cursor: u64 = 0;
    loop {
        let Ok((next, keys)): Result<(u64, Vec<String>), _> = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
        else {
            return;
        };
        if !keys.is_empty() {
            let _: Result<i64, _> = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await;
        }
        if next == 0 {
            return;
        }
        cursor = next;
    }
}

/// The variables of a test's configuration: its own database, servers and prefix, port 0.
fn vars(database_url: &str, nats_url: &str, redis_url: &str, prefix: &str) -> Vec<(String, String)> {
    let login = nats_login().map(|l| {
        [
            ("TICKETING_NATS_USER".to_owned(), l.user),
            ("TICKETING_NATS_PASSWORD".to_owned(), l.password.expose().to_owned()),
        ]
    });
    [
        ("TICKETING_DATABASE_URL", database_url),
        ("TICKETING_NATS_URL", nats_url),
        ("TICKETING_REDIS_URL", redis_url),
        ("TICKETING_JWT_SECRET", TEST_JWT_SECRET),
        // The tests' secret is public: a process accepts it only on a development machine.
        ("TICKETING_ENV", "dev"),
        ("TICKETING_PREFIX", prefix),
        ("TICKETING_HTTP_ADDR", "127.0.0.1:0"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain(login.into_iter().flatten())
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_names_are_recognised() {
        assert!(is_stale("tk_100_abcd", 100 + 3 * 3600));
        assert!(!is_stale("tk_100_abcd", 200));
        assert!(!is_stale("ticketing", 10_000_000));
        assert!(!is_stale("SEAT", 10_000_000));
    }

    #[test]
    fn database_is_replaced_in_the_url() {
        assert_eq!(replace_database("postgres://u@h/postgres?x=1", "tk"), "postgres://u@h/tk?x=1");
        assert_eq!(replace_database("postgres://u@h/postgres", "tk"), "postgres://u@h/tk");
    }
}
