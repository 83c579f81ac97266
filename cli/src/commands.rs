//! The subcommands: thin wrappers over the library crates.

use crate::services;
use anyhow::Context as _;
use base64::Engine;
use messaging::{Bus, Runtime};
use platform::{Config, auth::Role, http::Readiness};
use std::{net::SocketAddr, sync::Arc, time::Duration};

/// Runs services on one listener until SIGTERM, then drains requests and background tasks.
pub async fn serve(
    config: Config,
    names: &[String],
    addr: Option<SocketAddr>,
    process: &str,
) -> anyhow::Result<()> {
    let defs = services::resolve(names)?;
    // Every service's own settings, before anything starts: each problem, all at once (once,
    // though services share some: the saga's clocks).
    let limits = config.settings::<platform::http::HttpLimits>();
    let mut problems: Vec<_> = Vec::new();
    for problem in limits
        .as_ref()
        .err()
        .cloned()
        .into_iter()
        .chain(defs.iter().filter_map(|d| (d.settings)(&config).err()))
        .flat_map(|e| e.0)
    {
        if !problems.contains(&problem) {
            problems.push(problem);
        }
    }
    if !problems.is_empty() {
        return Err(platform::ConfigError(problems).into());
    }
    let limits = limits?;
    let telemetry = platform::telemetry::init(process, config.otlp_endpoint.as_deref(), config.log_format)?;
    // The recorder before anything records: a metric set before it would be lost.
    platform::http::metrics_handle();
    let addr = addr.unwrap_or(config.http_addr);
    let ops_addr = config.ops_addr;
    let shutdown = platform::shutdown::on_signal();
    let rt = Runtime::connect(config, shutdown.clone()).await?;

    let mut router = axum::Router::new();
    for def in &defs {
        router = router.merge((def.start)(&rt).with_context(|| format!("starting {}", def.name))?);
    }
    let readiness = Readiness::default()
        .with(Arc::new(rt.db.clone()))
        .with(Arc::new(rt.bus.clone()))
        .with(Arc::new(rt.redis.clone()))
        .watching(rt.liveness.clone());
    // Every process documents the whole API, not only what it runs: behind an ingress,
    // `/openapi.json` reaches whichever process the catch-all route picks.
    let docs = platform::http::docs_router(openapi(&services::SERVICES.iter().collect::<Vec<_>>()))
        .merge(platform::http::json_route("/asyncapi.json", messaging::asyncapi::document()?))
        .merge(crate::web::router());
    let ops = platform::http::ops_router(readiness);
    let app = match ops_addr {
        None => platform::http::finish(router.merge(ops).merge(docs), limits),
        // Probes and scrapes on a port of their own, which the ingress does not route.
        Some(ops_addr) => {
            let listener = tokio::net::TcpListener::bind(ops_addr)
                .await
                .with_context(|| format!("cannot listen on {ops_addr} (TICKETING_OPS_ADDR)"))?;
            println!("ticketing ops listening on http://{}", listener.local_addr()?);
            let ops = platform::http::finish(ops, platform::http::HttpLimits::default());
            tokio::spawn(platform::http::serve(listener, ops, shutdown.clone()));
            platform::http::finish(router.merge(docs), limits)
        }
    };

    let listener = platform::http::listen(addr).with_context(|| format!("cannot listen on {addr}"))?;
    let bound = listener.local_addr()?;
    let names: Vec<_> = defs.iter().map(|d| d.name).collect();
    // Printed (not only logged) so scripts and the e2e harness can find a port-0 listener.
    println!("ticketing listening on http://{bound} services={}", names.join(","));
    tracing::info!(%bound, services = ?names, "serving");
    platform::http::serve(listener, app, shutdown.clone()).await?;
    shutdown.cancel();
    if tokio::time::timeout(Duration::from_secs(25), rt.drain()).await.is_err() {
        tracing::warn!("background tasks did not stop within 25 s; exiting anyway");
    }
    telemetry.shutdown();
    // Stopped because a background task died: a failure, for whatever restarts the process.
    let dead = rt.liveness.dead();
    anyhow::ensure!(dead.is_empty(), "a background task died: {}", dead.join("; "));
    Ok(())
}

/// One OpenAPI document for `defs`: each service's paths and schemas.
fn openapi(defs: &[&services::ServiceDef]) -> utoipa::openapi::OpenApi {
    let names: Vec<_> = defs.iter().map(|d| d.name).collect();
    let info = utoipa::openapi::InfoBuilder::new()
        .title("ticketing")
        .version(env!("CARGO_PKG_VERSION"))
        .description(Some(format!(
            "The HTTP API of the services {}, as one process or behind the ingress. Errors are `application/problem+json`.",
            names.join(", ")
        )))
        .build();
    defs.iter().fold(utoipa::openapi::OpenApiBuilder::new().info(info).build(), |mut doc, def| {
        doc.merge((def.openapi)());
        doc
    })
}

/// Creates the database if missing and applies migrations.
pub async fn migrate(config: &Config, role_passwords: Option<&std::path::Path>) -> anyhow::Result<()> {
    migrations::migrate(config.database_url.expose()).await.context("migrating the database")?;
    println!("database migrated");
    let Some(dir) = role_passwords else { return Ok(()) };
    let db = platform::pools::connect_db(config.database_url.expose(), 1)
        .await
        .context("cannot reach Postgres")?;
    for (service, _) in migrations::SERVICE_SCHEMA_OWNERS {
        let path = dir.join(service);
        let Ok(password) = std::fs::read_to_string(&path) else { continue };
        let password = password.trim_end_matches(['\n', '\r']);
        anyhow::ensure!(!password.is_empty(), "{}: the password is empty", path.display());
        migrations::set_role_password(&db, service, password)
            .await
            .with_context(|| format!("setting the password of {}", migrations::service_role(service)))?;
        println!("password of {} set", migrations::service_role(service));
    }
    Ok(())
}

/// Creates the demo concert through the concert service's own code (its outbox announces it).
pub async fn seed(config: &Config) -> anyhow::Result<()> {
    let db = platform::pools::connect_db_from(config).await.context("cannot reach Postgres")?;
    let outbox = messaging::Outbox::new(concert::SCHEMA, config.prefix.clone());
    let (concert, schedules) = concert::seed_demo(&db, &outbox).await.map_err(|p| anyhow::anyhow!("{p}"))?;
    println!("concert  {concert}");
    for s in schedules {
        println!("schedule {s}");
    }
    println!("(the concert service's relay publishes them when it runs; seats appear soon after)");
    Ok(())
}

async fn bus(config: &Config) -> anyhow::Result<Bus> {
    Ok(Bus::connect_as(&config.nats_url, config.prefix.clone(), config.nats_login.as_ref()).await?)
}

/// Prints each service's Redis ACL user: `<service> <rules>` (`platform::redis_acl`).
pub fn redis_acl(config: &Config) -> anyhow::Result<()> {
    for s in crate::services::SERVICES {
        println!("{} {}", s.name, platform::redis_acl::rules(&config.prefix, &s.redis));
    }
    Ok(())
}

/// Prints the nats-server `authorization` block: a user per service, allowed its own subjects
/// under this configuration's prefix (`messaging::permissions`).
pub fn nats_auth(config: &Config) -> anyhow::Result<()> {
    let services: Vec<&str> = crate::services::SERVICES.iter().map(|s| s.name).collect();
    print!("{}", messaging::permissions::authorization(&config.prefix, &services)?);
    Ok(())
}

/// Prints the event contract's AsyncAPI document.
pub fn nats_asyncapi() -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(&messaging::asyncapi::document()?)?);
    Ok(())
}

/// Creates or updates streams and consumers.
pub async fn nats_apply(config: &Config) -> anyhow::Result<()> {
    let bus = bus(config).await?;
    messaging::definitions::apply(&bus, config.nats_replicas).await?;
    for stream in contracts::Stream::ALL {
        println!("stream {} ok replicas={}", bus.ns.stream(stream), config.nats_replicas);
    }
    for spec in messaging::definitions::declared_consumers(bus.ns.partitions())? {
        println!("consumer {} ok", spec.name());
    }
    Ok(())
}

/// Prints dead letters.
pub async fn dlq_list(config: &Config, limit: usize) -> anyhow::Result<()> {
    let bus = bus(config).await?;
    let letters = messaging::dlq::list(&bus, limit).await?;
    if letters.is_empty() {
        println!("no dead letters");
        return Ok(());
    }
    for (seq, l) in letters {
        let body = base64::engine::general_purpose::STANDARD
            .decode(&l.original_body)
            .map(|b| String::from_utf8_lossy(&b).chars().take(200).collect::<String>())
            .unwrap_or_else(|_| "<unreadable>".into());
        println!(
            "#{seq} {} consumer={} subject={} seq={} type={} id={} deliveries={}\n    reason: {}\n    body: {body}",
            l.failed_at.to_rfc3339(),
            l.consumer,
            l.original_subject,
            l.stream_sequence,
            l.event_type.as_deref().unwrap_or("-"),
            l.event_id.as_deref().unwrap_or("-"),
            l.deliveries,
            l.reason,
        );
    }
    Ok(())
}

/// Republishes one dead letter.
pub async fn dlq_replay(config: &Config, seq: u64) -> anyhow::Result<()> {
    let bus = bus(config).await?;
    let letter = messaging::dlq::replay(&bus, seq).await?;
    println!("replayed dead letter #{seq} to {}", letter.original_subject);
    Ok(())
}

/// Prints the route table: `<prefix> <service>` lines, the catch-all last as `/`.
pub fn routes() {
    for (prefix, service) in platform::routes::ROUTES {
        println!("{prefix} {service}");
    }
    println!("/ {}", platform::routes::CATCH_ALL);
}

/// Prints an nginx configuration for the route table and the given replicas.
pub fn routes_nginx(listen: String, prefix: String, upstreams: &[String]) -> anyhow::Result<()> {
    let upstreams = upstreams
        .iter()
        .map(|u| {
            let (service, servers) = u
                .split_once('=')
                .with_context(|| format!("--upstream {u:?}: expected service=host:port,..."))?;
            services::resolve(&[service.to_owned()])?;
            let servers: Vec<String> =
                servers.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            Ok(platform::routes::Upstream { service: service.to_owned(), servers })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let conf =
        platform::routes::NginxSite { listen, prefix, upstreams }.render().map_err(anyhow::Error::msg)?;
    print!("{conf}");
    Ok(())
}

/// Prints an identity token, signed with `TICKETING_JWT_PRIVATE_KEY` (or the shared secret).
pub fn token(config: &Config, user: uuid::Uuid, admin: bool, ttl_secs: u64) -> anyhow::Result<()> {
    let role = if admin { Role::Admin } else { Role::User };
    let token = config.jwt.mint(user.into(), role, Duration::from_secs(ttl_secs))?;
    println!("{token}");
    Ok(())
}

/// `ticketing audit` found violations; the report it printed says which (exit code 1).
#[derive(Debug)]
pub struct Violations;

impl std::fmt::Display for Violations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the audit found violations")
    }
}

impl std::error::Error for Violations {}

/// `ticketing audit` could not look (exit code 2): told apart from a violation, so a script
/// does not take an unreachable database for a double sale, or for a clean system.
#[derive(Debug)]
pub struct CouldNotAudit;

impl std::fmt::Display for CouldNotAudit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cannot audit")
    }
}

/// Checks the live system's invariants and prints the report; [`Violations`] when one fails.
pub async fn audit(config: &Config, grace_secs: u64, settle_secs: Option<u64>) -> anyhow::Result<()> {
    let url = config.database_url.expose();
    let report = async {
        // Two connections: the checks run one at a time, and the services' pools keep theirs.
        let db = platform::pools::connect_db(url, 2)
            .await
            .with_context(|| format!("cannot reach Postgres at {}", without_credentials(url)))?;
        // Only reads: the streams and consumers are the deployment's, not the audit's to apply.
        let bus = bus(config).await?;
        let opts = ::audit::Options {
            grace: Duration::from_secs(grace_secs),
            settle: settle_secs.map(Duration::from_secs),
            clocks: config.settings()?,
        };
        anyhow::Ok(::audit::audit(&db, &bus, &opts).await?)
    }
    .await
    .context(CouldNotAudit)?;
    print!("{report}");
    println!();
    println!("{}", report.verdict());
    if report.is_clean() { Ok(()) } else { Err(Violations.into()) }
}

/// `postgres://user:secret@host:5432/db?x` as `host:5432/db`: what to name in an error.
fn without_credentials(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let rest = rest.split_once('?').map_or(rest, |(head, _)| head);
    rest.rsplit_once('@').map_or(rest, |(_, host)| host)
}

/// `ticketing pg-sim`: the payment gateway simulator on `addr`, until a signal.
pub async fn pg_sim(addr: std::net::SocketAddr) -> std::process::ExitCode {
    use std::process::ExitCode;
    let config = match pg_sim::Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ticketing pg-sim: {}: {}", e.var, e.message);
            return ExitCode::from(2);
        }
    };
    let ran = async move {
        let _telemetry = platform::telemetry::init("pg-sim", None, platform::telemetry::LogFormat::Text)?;
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
        let shutdown = platform::shutdown::on_signal();
        let server = pg_sim::start(listener, config, shutdown).await?;
        // Printed as every process prints its listener, so scripts and the e2e harness find it.
        println!("ticketing listening on http://{} services=pg-sim", server.addr);
        server.stopped().await?;
        anyhow::Ok(())
    }
    .await;
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ticketing pg-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_merged_document_has_every_service_and_unique_operation_ids() {
        let defs: Vec<_> = services::SERVICES.iter().collect();
        let doc = serde_json::to_value(openapi(&defs)).unwrap();
        let tags: Vec<_> = doc["tags"].as_array().unwrap().iter().map(|t| t["name"].clone()).collect();
        for def in &defs {
            assert!(tags.contains(&serde_json::json!(def.name)), "{} has no tag", def.name);
        }
        let mut ids: Vec<_> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|item| item.as_object().unwrap().values().map(|op| op["operationId"].to_string()))
            .collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "operation ids repeat: {ids:?}");
    }

    #[test]
    fn an_audit_names_the_database_without_its_credentials() {
        assert_eq!(
            without_credentials("postgres://app:s3cret@db.internal:5432/ticketing?sslmode=require"),
            "db.internal:5432/ticketing"
        );
        assert_eq!(without_credentials("postgres://127.0.0.1:5432/ticketing"), "127.0.0.1:5432/ticketing");
    }
}
