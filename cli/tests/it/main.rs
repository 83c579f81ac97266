//! The `ticketing` binary as a user runs it.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

use e2e::harness::{Process, command};
use std::{process::Command, time::Duration};
use testkit::{TEST_JWT_SECRET, TestEnv, eventually};

/// The binary with no `TICKETING_*` variables from the caller's environment but
/// `TICKETING_ENV=dev` (the tests' secret is a public one).
fn ticketing() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ticketing"));
    for (k, _) in std::env::vars() {
        if k.starts_with("TICKETING_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("TICKETING_ENV", "dev");
    cmd
}

/// Runs `cmd`, which must stop with exit code 2 (a configuration refused, or a system it cannot
/// reach); what it printed on standard error.
fn refused(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{err}");
    err
}

/// Outside a development machine the tests' secret, public in this repository, stops the
/// process, naming the variable.
#[test]
fn a_public_development_secret_stops_a_production_process() {
    let err = refused(
        ticketing()
            .args(["serve", "concert"])
            .env("TICKETING_ENV", "production")
            .env("TICKETING_JWT_SECRET", TEST_JWT_SECRET),
    );
    assert!(err.contains("TICKETING_JWT_SECRET: is a development secret"), "{err}");
}

/// The binary configured for a test environment.
fn ticketing_for(env: &TestEnv) -> Command {
    command(std::path::Path::new(env!("CARGO_BIN_EXE_ticketing")), env)
}

#[test]
fn a_missing_required_variable_stops_the_process_naming_it() {
    let err = refused(ticketing().arg("migrate"));
    assert!(err.contains("TICKETING_JWT_PUBLIC_KEY: is required"), "{err}");
}

#[test]
fn malformed_variables_are_each_named() {
    let err = refused(
        ticketing()
            .arg("up")
            .env("TICKETING_JWT_SECRET", TEST_JWT_SECRET)
            .env("TICKETING_HTTP_ADDR", "localhost")
            .env("TICKETING_REDIS_URL", "localhost:6379"),
    );
    assert!(err.contains("TICKETING_HTTP_ADDR: expected a socket address"), "{err}");
    assert!(err.contains("TICKETING_REDIS_URL"), "{err}");

    // The services' own settings, the saga's clocks among them, each named too, all at once.
    let err = refused(
        ticketing()
            .arg("up")
            .env("TICKETING_JWT_SECRET", TEST_JWT_SECRET)
            .env("TICKETING_HOLD_SECS", "five")
            .env("TICKETING_QUEUE_TICK_MS", "1"),
    );
    assert!(err.contains("TICKETING_HOLD_SECS: expected a whole number of seconds"), "{err}");
    assert!(err.contains("TICKETING_QUEUE_TICK_MS: must be at least 10"), "{err}");
    assert_eq!(
        err.matches("TICKETING_HOLD_SECS").count(),
        1,
        "named once, though two services read it: {err}"
    );
}

#[test]
fn token_mints_a_verifiable_admin_token() {
    let user = uuid::Uuid::now_v7();
    let out = ticketing()
        .args(["token", "--user", &user.to_string(), "--admin"])
        .env("TICKETING_JWT_SECRET", TEST_JWT_SECRET)
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let keys = platform::auth::JwtKeys::shared_secret(&platform::Secret::new(TEST_JWT_SECRET));
    let claims = keys.verify(token.trim()).unwrap();
    assert_eq!(claims.sub.0, user);
    assert_eq!(claims.role, platform::auth::Role::Admin);
}

/// The repository's development key pair, as `scripts/dev-up` names it.
fn dev_key(file: &str) -> String {
    format!("{}/../shared/platform/dev-keys/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// A service holding only the identity provider's public key takes the tokens `ticketing token`
/// signs with the private key, and refuses shared-secret tokens, tokens of another key, of
/// another audience, or living longer than the maximum.
#[tokio::test]
async fn a_service_with_the_public_key_alone_takes_tokens_signed_with_its_private_key() {
    let env = TestEnv::new().await.unwrap();
    let mut cmd = ticketing_for(&env);
    cmd.env_remove("TICKETING_JWT_SECRET")
        .env("TICKETING_JWT_PUBLIC_KEY", dev_key("jwt-ed25519.pub.pem"))
        .args(["serve", "wallet-history"]);
    let running = Process::spawn(cmd).unwrap();
    let user = uuid::Uuid::now_v7();
    let out = ticketing()
        .env("TICKETING_JWT_PUBLIC_KEY", dev_key("jwt-ed25519.pub.pem"))
        .env("TICKETING_JWT_PRIVATE_KEY", dev_key("jwt-ed25519.pem"))
        .args(["token", "--user", &user.to_string(), "--ttl-secs", "600"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let signed = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    // {"typ":"JWT","alg":"EdDSA"}
    assert!(signed.starts_with("eyJ0eXAiOiJKV1QiLCJhbGciOiJFZERTQSJ9."), "an EdDSA token: {signed}");

    let rules = platform::auth::TokenRules::default();
    let other_key = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIOwTZSZXwnf8ypNDzd0Go/V5FOIJ/1zHRUR9C2sJfm7F\n-----END PRIVATE KEY-----\n";
    let mint = |keys: platform::auth::JwtKeys| {
        keys.mint(user.into(), platform::auth::Role::User, Duration::from_secs(600)).unwrap()
    };
    let shared = mint(platform::auth::JwtKeys::shared_secret(&platform::Secret::new(TEST_JWT_SECRET)));
    let stranger = mint(platform::auth::JwtKeys::signing(other_key, rules.clone()).unwrap());
    let dev_private = std::fs::read_to_string(dev_key("jwt-ed25519.pem")).unwrap();
    let elsewhere = platform::auth::TokenRules { audience: "another-system".into(), ..rules.clone() };
    let other_audience = mint(platform::auth::JwtKeys::signing(&dev_private, elsewhere).unwrap());
    let too_long = ticketing()
        .env("TICKETING_JWT_PUBLIC_KEY", dev_key("jwt-ed25519.pub.pem"))
        .env("TICKETING_JWT_PRIVATE_KEY", dev_key("jwt-ed25519.pem"))
        .args(["token", "--user", &user.to_string(), "--ttl-secs", "86401"])
        .output()
        .unwrap();
    assert!(!too_long.status.success(), "ticketing token refuses a lifetime over the maximum");

    let http = reqwest::Client::new();
    let history =
        |token: String| http.get(format!("{}/wallets/me/history", running.url)).bearer_auth(token).send();
    assert_eq!(history(signed).await.unwrap().status(), 200);
    for (token, why) in
        [(shared, "a shared-secret token"), (stranger, "another key"), (other_audience, "another audience")]
    {
        let answer = history(token).await.unwrap();
        assert_eq!(answer.status(), 401, "{why}");
        assert_eq!(answer.headers()["content-type"], "application/problem+json", "{why}");
    }
}

/// `migrate --role-passwords` gives the roles that have a file their password.
#[tokio::test]
async fn migrate_sets_the_passwords_of_the_service_roles() {
    use sea_orm::ConnectionTrait;
    let env = TestEnv::new().await.unwrap();
    let dir = std::env::temp_dir().join(format!("ticketing-role-passwords-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("wallet-history"), "s3cret-'quoted'\n").unwrap();
    let out = ticketing_for(&env).arg("migrate").arg("--role-passwords").arg(&dir).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("password of ticketing_wallet_history set"), "{said}");
    assert!(!said.contains("password of ticketing_wallet set"), "{said}");
    let row = env
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT rolpassword IS NOT NULL AS set FROM pg_authid WHERE rolname = 'ticketing_wallet_history'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(row.try_get::<bool>("", "set").unwrap());
}

/// Each service's Redis user, as `ticketing redis acl` prints it, reaches its own keys alone:
/// the queue's reads and writes the waiting room's tokens, the reservation's reads them and
/// writes none, the wallet's reads none; none may flush or list the keys.
#[tokio::test]
async fn each_services_redis_user_reaches_its_own_keys_alone() {
    let env = TestEnv::new().await.unwrap();
    let out = ticketing_for(&env).args(["redis", "acl"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let acl = String::from_utf8(out.stdout).unwrap();
    let url = env.config.redis_url.expose().to_owned();
    let connect = |login: Option<&str>| {
        let url = match login {
            Some(user) => url.replacen("://", &format!("://{user}:pw@"), 1),
            None => url.clone(),
        };
        async move { redis::Client::open(url).unwrap().get_multiplexed_async_connection().await }
    };
    let mut admin = connect(None).await.unwrap();
    // ACL users are the server's, not a prefix's: named after this test's prefix, removed below.
    let user = |service: &str| format!("{}-{service}", env.ns.as_str());
    for line in acl.lines() {
        let (service, rules) = line.split_once(' ').unwrap();
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(user(service)).arg("on").arg(">pw").arg(rules.split(' ').collect::<Vec<_>>());
        cmd.query_async::<()>(&mut admin).await.unwrap();
    }
    let token = env.ns.redis_key("queue:token:t1");
    redis::cmd("HSET").arg(&token).arg("status").arg("ACTIVE").query_async::<()>(&mut admin).await.unwrap();

    let mut outcomes = Vec::new();
    for (service, command, allowed) in [
        ("queue", vec!["HSET", &token, "status", "EXPIRED"], true),
        ("reservation", vec!["HGET", &token, "status"], true),
        ("reservation", vec!["HSET", &token, "status", "ACTIVE"], false),
        ("wallet", vec!["HGET", &token, "status"], false),
        ("wallet", vec!["PING"], true),
        ("queue", vec!["FLUSHALL"], false),
        ("queue", vec!["KEYS", "*"], false),
        ("ranking", vec!["HGET", &token, "status"], false),
    ] {
        let mut conn = connect(Some(&user(service))).await.unwrap();
        let mut cmd = redis::cmd(command[0]);
        cmd.arg(&command[1..]);
        let answer = cmd.query_async::<redis::Value>(&mut conn).await;
        outcomes.push((service, command.join(" "), allowed, answer));
    }
    for line in acl.lines() {
        let service = line.split(' ').next().unwrap();
        redis::cmd("ACL").arg("DELUSER").arg(user(service)).query_async::<()>(&mut admin).await.unwrap();
    }
    for (service, command, allowed, answer) in outcomes {
        match answer {
            Ok(_) => assert!(allowed, "{service} may not {command}"),
            Err(e) => assert!(
                !allowed && e.to_string().to_lowercase().contains("noperm"),
                "{service}: {command}: {e}"
            ),
        }
    }
}

#[test]
fn serve_refuses_an_unknown_service_naming_it() {
    let out =
        ticketing().args(["serve", "nope"]).env("TICKETING_JWT_SECRET", TEST_JWT_SECRET).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown service \"nope\""));
}

#[tokio::test]
async fn up_serves_ops_routes_and_stops_cleanly_on_sigterm() {
    let env = TestEnv::new().await.unwrap();
    let mut cmd = ticketing_for(&env);
    cmd.arg("up");
    let mut running = Process::spawn(cmd).unwrap();
    let url = running.url.clone();
    let http = reqwest::Client::new();

    let health = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value =
        http.get(format!("{url}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    for dep in ["postgres", "nats", "redis"] {
        assert_eq!(ready["checks"][dep], "ok", "{ready}");
    }
    let missing = http.get(format!("{url}/nowhere")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    let problem: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(problem["code"], "ROUTE_NOT_FOUND");
    let metrics = http.get(format!("{url}/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/healthz\""), "{metrics}");

    running.terminate().unwrap();
    let status = eventually("the process to exit after SIGTERM", Duration::from_secs(30), || {
        let status = running.child.try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(status.success(), "exit status {status}");
}

/// With `TICKETING_OPS_ADDR`, probes and scrapes have a port of their own, which an ingress
/// does not route: the API's port answers them 404.
#[tokio::test]
async fn the_ops_routes_move_to_their_own_port_off_the_api() {
    let env = TestEnv::new().await.unwrap();
    let ops_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = ticketing_for(&env);
    cmd.env("TICKETING_OPS_ADDR", format!("127.0.0.1:{ops_port}")).args(["serve", "concert"]);
    let running = Process::spawn(cmd).unwrap();
    let (api, ops) = (running.url.clone(), format!("http://127.0.0.1:{ops_port}"));
    let http = reqwest::Client::new();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let public = http.get(format!("{api}{path}")).send().await.unwrap();
        assert_eq!(public.status(), 404, "{path} is not served beside the API");
        assert_eq!(public.headers()["content-type"], "application/problem+json");
        let private = http.get(format!("{ops}{path}")).send().await.unwrap();
        assert_eq!(private.status(), 200, "{path} on the ops port");
    }
    let ready: serde_json::Value =
        http.get(format!("{ops}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(http.get(format!("{api}/concerts")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn up_serves_one_openapi_document_and_a_docs_page() {
    let env = TestEnv::new().await.unwrap();
    let mut cmd = ticketing_for(&env);
    cmd.arg("up");
    let running = Process::spawn(cmd).unwrap();
    let url = running.url.clone();
    let http = reqwest::Client::new();

    let doc: serde_json::Value =
        http.get(format!("{url}/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in ["/reservations", "/wallets/me/charges", "/concerts", "/schedules/{id}/seats"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from {}", doc["paths"]);
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");

    // The event contract, as nats/asyncapi.json has it.
    let events: serde_json::Value =
        http.get(format!("{url}/asyncapi.json")).send().await.unwrap().json().await.unwrap();
    let committed: serde_json::Value =
        serde_json::from_str(include_str!("../../../nats/asyncapi.json")).unwrap();
    assert_eq!(events, committed);

    // `/docs` leads to the page; the page and everything it loads come from this process.
    let docs = http.get(format!("{url}/docs")).send().await.unwrap();
    assert_eq!((docs.status().as_u16(), docs.url().path()), (200, "/docs/"));
    assert!(docs.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let page = docs.text().await.unwrap();
    assert!(page.contains("swagger-ui"), "{page}");
    assert!(!page.contains("http://") && !page.contains("https://") && !page.contains("//cdn"), "{page}");
    for asset in ["swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"] {
        assert!(page.contains(asset), "{asset} not on the page: {page}");
        let got = http.get(format!("{url}/docs/{asset}")).send().await.unwrap();
        assert_eq!(got.status(), 200, "{asset}");
        assert!(got.bytes().await.unwrap().len() > 10_000, "{asset} is not Swagger UI's");
    }
    let init =
        http.get(format!("{url}/docs/swagger-initializer.js")).send().await.unwrap().text().await.unwrap();
    assert!(init.contains("/openapi.json"), "{init}");
}

/// Behind an ingress, `/openapi.json` reaches whichever process the catch-all picks: each one
/// documents every service, not only those it runs.
#[tokio::test]
async fn a_process_serving_one_service_documents_every_service() {
    let env = TestEnv::new().await.unwrap();
    let mut cmd = ticketing_for(&env);
    cmd.args(["serve", "concert"]);
    let running = Process::spawn(cmd).unwrap();
    let http = reqwest::Client::new();
    let doc: serde_json::Value =
        http.get(format!("{}/openapi.json", running.url)).send().await.unwrap().json().await.unwrap();
    for path in ["/concerts", "/reservations", "/wallets/me/history", "/queue/tokens", "/rankings/concerts"] {
        assert!(doc["paths"].get(path).is_some(), "{path} missing from {}", doc["paths"]);
    }
    // The routes themselves stay where they are served.
    let elsewhere = http.get(format!("{}/rankings/concerts", running.url)).send().await.unwrap();
    assert_eq!(elsewhere.status(), 404);
}

#[tokio::test]
async fn nats_apply_and_dlq_list_work_against_a_namespace() {
    let env = TestEnv::new().await.unwrap();
    let mut cmd = ticketing_for(&env);
    let out = cmd.args(["nats", "apply"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("stream {}_DLQ ok replicas=1", env.ns)), "{text}");

    // A replica count the server cannot keep is refused, naming the stream.
    let mut cmd = ticketing_for(&env);
    let out = cmd.args(["nats", "apply"]).env("TICKETING_NATS_REPLICAS", "3").output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("stream"), "{err}");

    let mut cmd = ticketing_for(&env);
    let out = cmd.args(["dlq", "list"]).output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "no dead letters");

    let mut cmd = ticketing_for(&env);
    let out = cmd.args(["dlq", "replay", "99"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("dead letter 99"));
}

/// `ticketing audit` as an operator runs it (`kubectl exec … -- ticketing audit`): the table on
/// stdout, and an exit code a script can act on.
#[tokio::test]
async fn audit_prints_the_table_and_exits_1_on_a_violation_naming_the_check() {
    use sea_orm::ConnectionTrait;
    let env = TestEnv::new().await.unwrap();
    let out = ticketing_for(&env).args(["audit", "--settle-secs", "10"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.starts_with("audit at "), "{text}");
    assert!(text.contains("  grace           0 s\n  settle          quiet after"), "{text}");
    for name in ["settled", "seat-sold-once", "sold-seat-owned", "wallet-balance", "no-dead-letters"] {
        assert!(
            text.lines().any(|l| l.trim_start().starts_with(name) && l.ends_with("  OK")),
            "{name}: {text}"
        );
    }
    assert_eq!(text.lines().last(), Some("audit: clean (11 checks)"), "{text}");

    // A seat SOLD to a reservation that does not exist.
    let (schedule, nobody) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    env.db
        .execute_unprepared(&format!(
            "INSERT INTO seat.schedules (schedule_id, concert_id, seat_count) VALUES ('{schedule}', '{nobody}', 1);
             INSERT INTO seat.seats (schedule_id, seat_no, price, status, reservation_id)
             VALUES ('{schedule}', 1, 1000, 'SOLD', '{nobody}');"
        ))
        .await
        .unwrap();
    let out = ticketing_for(&env).args(["audit", "--grace-secs", "5"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("  grace           5 s\n"), "{text}");
    assert!(text.contains("  sold-seat-owned          1  a SOLD seat"), "{text}");
    assert!(text.contains(&format!("      {schedule}#1  SOLD to {nobody}, which does not exist")), "{text}");
    assert_eq!(text.lines().last(), Some("audit: 1 violation of 1 invariant: sold-seat-owned"), "{text}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// An audit that cannot look is not a clean system, nor a violation: exit 2, naming what it
/// could not reach (and no password).
#[tokio::test]
async fn audit_exits_2_naming_the_postgres_or_nats_it_cannot_reach() {
    let err = refused(
        ticketing()
            .arg("audit")
            .env("TICKETING_JWT_SECRET", TEST_JWT_SECRET)
            .env("TICKETING_DATABASE_URL", "postgres://auditor:hunter2@127.0.0.1:1/ticketing"),
    );
    assert!(err.contains("cannot audit: cannot reach Postgres at 127.0.0.1:1/ticketing"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let env = TestEnv::new().await.unwrap();
    let err = refused(ticketing_for(&env).arg("audit").env("TICKETING_NATS_URL", "nats://127.0.0.1:1"));
    assert!(err.contains("cannot audit: cannot reach NATS at nats://127.0.0.1:1"), "{err}");
}
