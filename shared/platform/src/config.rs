//! Typed configuration read from `TICKETING_*` environment variables (DESIGN §8).
//!
//! [`Config`] holds what every process shares: where Postgres, NATS and Redis are, the JWT key,
//! the namespace, the saga's clocks. A service's own settings are its own type ([`Settings`]),
//! read through the same variables with [`Config::settings`].
//!
//! Every variable has a default that reaches the local dev stack, except the keys identity
//! tokens are checked with: a process must never trust tokens signed with a key everyone knows. All problems are reported
//! at once, each naming its variable, so a misconfigured pod says everything in one log line.

use crate::auth::{JwtKeys, PublicKeys, TokenRules};
use contracts::Namespace;
use std::{fmt, net::SocketAddr, path::Path, sync::Arc, time::Duration};

/// A value that must never appear in logs or `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The whole configuration of a `ticketing` process.
#[derive(Clone, Debug)]
pub struct Config {
    /// Postgres URL (one database, one schema per service). May hold a password.
    pub database_url: Secret,
    /// Largest Postgres pool a process opens.
    pub database_max_connections: u32,
    /// How long a request or a consumer waits for a free connection of the pool before it is
    /// told the database is unavailable (a request: 503 with `Retry-After`, nothing done).
    pub database_acquire_timeout: Duration,
    /// One NATS server, or several separated by commas (the members of a cluster).
    pub nats_url: String,
    /// How many JetStream servers keep each stream (1, or 3 on a three-node cluster).
    pub nats_replicas: usize,
    /// The NATS user this process logs in as, if the servers ask for one: each service its own,
    /// allowed to publish its own subjects alone (`ticketing nats auth`).
    pub nats_login: Option<NatsLogin>,
    pub redis_url: Secret,
    /// What identity tokens are checked (and, by `ticketing token`, signed) with: the identity
    /// provider's public keys, and/or a shared secret for development.
    pub jwt: JwtKeys,
    /// Namespace prefix for subjects, streams and Redis keys, and the number of partitions the
    /// events of a schedule are spread over (`TICKETING_PARTITION_COUNT`, the same in every
    /// process; docs/scaling.md §2).
    pub prefix: Namespace,
    /// The partitions whose data this process's partitioned services (seat, reservation) keep
    /// (`TICKETING_PARTITIONS`, e.g. `0,1`); `None`, the default: every partition.
    pub partitions_served: Option<Vec<u16>>,
    pub http_addr: SocketAddr,
    /// Where `/healthz`, `/readyz` and `/metrics` are served instead of beside the API
    /// (`TICKETING_OPS_ADDR`): a port the ingress does not route, for probes and scrapes only.
    /// Unset (development), they are served on `http_addr`.
    pub ops_addr: Option<SocketAddr>,
    /// Where traces go (OTLP/HTTP); none means spans stay in-process.
    pub otlp_endpoint: Option<String>,
    /// How log lines are written (`TICKETING_LOG_FORMAT`: `text`, the default, or `json`).
    pub log_format: crate::telemetry::LogFormat,
    /// The variables this was read from, for each service's own [`Settings`].
    lookup: Lookup,
}

/// A NATS user and its password (`TICKETING_NATS_USER`, `TICKETING_NATS_PASSWORD`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatsLogin {
    pub user: String,
    pub password: Secret,
}

/// A variable's value by its name.
type LookupFn = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Where variables are read from: the environment, or a map in tests.
#[derive(Clone)]
struct Lookup(Arc<LookupFn>);

impl fmt::Debug for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Lookup")
    }
}

/// A service's own settings, read from its variables. Problems go to [`Vars::fail`], each
/// naming its variable; [`Config::settings`] reports them all at once.
pub trait Settings: Sized {
    /// Reads the settings, with a default for every variable that is not set.
    fn read(vars: &mut Vars<'_>) -> Self;
}

/// The reservation saga's clocks: settings of the seat and reservation services that must
/// agree (the seat service holds for `hold`, the reservation service expires at it), and what
/// `ticketing audit` judges a reservation's lateness by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaClocks {
    /// How long seats stay held for an unpaid reservation.
    pub hold: Duration,
    /// How long past `payBy` a PAYING reservation waits for the payment outcome.
    pub pay_grace: Duration,
    /// How long a PENDING reservation waits for the seat service.
    pub request_timeout: Duration,
}

impl Settings for SagaClocks {
    fn read(vars: &mut Vars<'_>) -> Self {
        let clocks = SagaClocks {
            hold: vars.secs("TICKETING_HOLD_SECS", 300),
            pay_grace: vars.secs("TICKETING_PAY_GRACE_SECS", 30),
            request_timeout: vars.secs("TICKETING_REQUEST_TIMEOUT_SECS", 30),
        };
        if clocks.hold.is_zero() {
            vars.fail("TICKETING_HOLD_SECS", "must be at least 1");
        }
        clocks
    }
}

/// One variable that is missing or malformed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VarProblem {
    pub var: &'static str,
    pub problem: String,
}

/// Every problem found in the environment, each naming its variable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError(pub Vec<VarProblem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid configuration:")?;
        for p in &self.0 {
            write!(f, " {}: {};", p.var, p.problem)?;
        }
        Ok(())
    }
}

impl ConfigError {
    /// Whether `var` is one of the variables at fault.
    pub fn names(&self, var: &str) -> bool {
        self.0.iter().any(|p| p.var == var)
    }
}

/// Reads variables, collecting problems instead of stopping at the first.
pub struct Vars<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
    problems: Vec<VarProblem>,
}

/// Secrets that are public, being in this repository (the dev stack's, the tests', the local
/// Kubernetes clusters'): a process refuses one unless `TICKETING_ENV=dev`
/// ([`Vars::secret_allowed`]). So is any secret that says it is one (`dev-only-…`).
pub const DEVELOPMENT_SECRETS: &[&str] = &[
    "dev-only-secret-change-me-0123456789abcdef",
    "dev-only-jwt-secret-for-local-clusters-0001",
    "dev-only-external-data-signing-key",
    "test-secret-test-secret-test-secret-0123",
];

impl Vars<'_> {
    /// Whether this is a development machine (`TICKETING_ENV=dev`; `production` when unset).
    pub fn development(&self) -> bool {
        self.raw("TICKETING_ENV").is_some_and(|v| v.trim() == "dev")
    }

    /// Refuses `secret` (the value of `var`) if it is a known development secret and this is
    /// not a development machine.
    pub fn secret_allowed(&mut self, var: &'static str, secret: &str) {
        self.public_refused(var, DEVELOPMENT_SECRETS.contains(&secret) || secret.starts_with("dev-only-"));
    }

    /// Refuses `var` if its key is `public` (in this repository) and this is not a development
    /// machine.
    pub fn public_refused(&mut self, var: &'static str, public: bool) {
        if public && !self.development() {
            self.fail(
                var,
                "is a development secret, public in the ticketing repository: set one of your own (or \
                 TICKETING_ENV=dev on a development machine)",
            );
        }
    }

    /// The variable's value, if it is set and not blank.
    pub fn raw(&self, var: &'static str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    /// Records that `var` is wrong, and why.
    pub fn fail(&mut self, var: &'static str, problem: impl Into<String>) {
        self.problems.push(VarProblem { var, problem: problem.into() });
    }

    /// The value, or `default` when unset.
    pub fn string(&mut self, var: &'static str, default: &str) -> String {
        self.raw(var).unwrap_or_else(|| default.to_owned())
    }

    /// The value; unset is a problem.
    pub fn required(&mut self, var: &'static str) -> String {
        match self.raw(var) {
            Some(v) => v,
            None => {
                self.fail(var, "is required and not set");
                String::new()
            }
        }
    }

    /// The value parsed as `what`, or `default` when unset (or malformed, which is a problem).
    pub fn parsed<T: std::str::FromStr>(&mut self, var: &'static str, default: T, what: &str) -> T {
        match self.raw(var) {
            None => default,
            Some(v) => match v.trim().parse() {
                Ok(x) => x,
                Err(_) => {
                    self.fail(var, format!("expected {what}, got {v:?}"));
                    default
                }
            },
        }
    }

    /// A count that must be at least 1.
    pub fn positive(&mut self, var: &'static str, default: u32) -> u32 {
        let n = self.parsed(var, default, "a whole number");
        if n == 0 {
            self.fail(var, "must be at least 1");
        }
        n
    }

    /// A whole number of seconds.
    pub fn secs(&mut self, var: &'static str, default: u64) -> Duration {
        Duration::from_secs(self.parsed(var, default, "a whole number of seconds"))
    }

    /// A whole number of milliseconds.
    pub fn millis(&mut self, var: &'static str, default: u64) -> Duration {
        Duration::from_millis(self.parsed(var, default, "a whole number of milliseconds"))
    }

    /// A URL with one of `schemes`.
    pub fn url(&mut self, var: &'static str, default: &str, schemes: &[&str]) -> String {
        self.urls(var, default, schemes, false)
    }

    /// A URL, or with `several` a comma-separated list of them, each with one of `schemes`.
    pub fn urls(&mut self, var: &'static str, default: &str, schemes: &[&str], several: bool) -> String {
        let v = self.string(var, default);
        let scheme_ok =
            |u: &str| u.split_once("://").is_some_and(|(s, rest)| schemes.contains(&s) && !rest.is_empty());
        let ok = if several { v.split(',').all(|u| scheme_ok(u.trim())) } else { scheme_ok(&v) };
        if !ok {
            self.fail(var, format!("expected a URL starting with {}://", schemes.join("://, ")));
        }
        v
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads configuration from `vars` alone (tests, or a deployment described by a list).
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, ConfigError> {
        let vars: std::collections::HashMap<String, String> =
            vars.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        Self::from_lookup(move |k| vars.get(k).cloned())
    }

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Result<Self, ConfigError> {
        let lookup = Lookup(Arc::new(lookup));
        let mut r = Vars { lookup: &*lookup.0, problems: Vec::new() };

        let database_url = r.url(
            "TICKETING_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/ticketing?sslmode=disable",
            &["postgres", "postgresql"],
        );
        let database_max_connections = r.positive("TICKETING_DATABASE_MAX_CONNECTIONS", 20);
        let database_acquire_timeout =
            r.millis("TICKETING_DATABASE_ACQUIRE_TIMEOUT_MS", crate::pools::ACQUIRE_TIMEOUT_MS);
        if database_acquire_timeout.is_zero() {
            r.fail("TICKETING_DATABASE_ACQUIRE_TIMEOUT_MS", "must be at least 1");
        }
        let nats_url = r.urls("TICKETING_NATS_URL", "nats://127.0.0.1:4222", &["nats", "tls"], true);
        let nats_replicas = r.parsed("TICKETING_NATS_REPLICAS", 1_usize, "a whole number");
        if !(1..=5).contains(&nats_replicas) {
            // JetStream keeps a stream on at most five servers.
            r.fail("TICKETING_NATS_REPLICAS", "must be between 1 and 5");
        }
        let nats_login = match (r.raw("TICKETING_NATS_USER"), r.raw("TICKETING_NATS_PASSWORD")) {
            (Some(user), Some(password)) => {
                Some(NatsLogin { user: user.trim().to_owned(), password: Secret(password) })
            }
            (None, None) => None,
            (Some(_), None) => {
                r.fail("TICKETING_NATS_PASSWORD", "is required with TICKETING_NATS_USER");
                None
            }
            (None, Some(_)) => {
                r.fail("TICKETING_NATS_USER", "is required with TICKETING_NATS_PASSWORD");
                None
            }
        };
        let redis_url = r.url("TICKETING_REDIS_URL", "redis://127.0.0.1:6379", &["redis", "rediss"]);
        match r.raw("TICKETING_ENV").as_deref().map(str::trim) {
            None | Some("dev" | "production") => {}
            Some(_) => r.fail("TICKETING_ENV", "expected dev or production"),
        }
        let jwt = read_token_keys(&mut r);
        let prefix_raw = r.string("TICKETING_PREFIX", "");
        let prefix = Namespace::new(&prefix_raw).unwrap_or_else(|e| {
            r.fail("TICKETING_PREFIX", e.to_string());
            Namespace::default()
        });
        let partitions = r.parsed("TICKETING_PARTITION_COUNT", 1_u32, "a whole number");
        let prefix = prefix.with_partitions(contracts::Partitions::new(partitions).unwrap_or_else(|e| {
            r.fail("TICKETING_PARTITION_COUNT", e.to_string());
            contracts::Partitions::ONE
        }));
        let partitions_served = read_served(&mut r, prefix.partitions());
        let http_addr = r.parsed(
            "TICKETING_HTTP_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 8080)),
            "a socket address such as 0.0.0.0:8080",
        );
        let ops_addr = r.raw("TICKETING_OPS_ADDR").filter(|v| !v.is_empty()).and_then(|v| {
            v.parse::<SocketAddr>()
                .map_err(|_| r.fail("TICKETING_OPS_ADDR", "expected a socket address such as 0.0.0.0:9090"))
                .ok()
        });
        let otlp_endpoint = r.raw("OTEL_EXPORTER_OTLP_ENDPOINT");
        let log_format = match r.string("TICKETING_LOG_FORMAT", "text").as_str() {
            "text" => crate::telemetry::LogFormat::Text,
            "json" => crate::telemetry::LogFormat::Json,
            _ => {
                r.fail("TICKETING_LOG_FORMAT", "must be text or json");
                crate::telemetry::LogFormat::Text
            }
        };

        let Some(jwt) = jwt.filter(|_| r.problems.is_empty()) else {
            return Err(ConfigError(r.problems));
        };
        Ok(Config {
            database_url: Secret(database_url),
            database_max_connections,
            database_acquire_timeout,
            nats_url,
            nats_replicas,
            nats_login,
            redis_url: Secret(redis_url),
            jwt,
            prefix,
            partitions_served,
            http_addr,
            ops_addr,
            otlp_endpoint,
            log_format,
            lookup,
        })
    }

    /// A service's own settings, read from the variables this configuration was read from.
    pub fn settings<S: Settings>(&self) -> Result<S, ConfigError> {
        read_settings(&*self.lookup.0)
    }

    /// The partitions this process keeps ([`Config::partitions_served`]).
    pub fn kept(&self) -> crate::partition::Kept {
        crate::partition::Kept::new(self.prefix.partitions(), self.partitions_served.clone())
    }

    /// Whether this process keeps partition `p`'s data.
    pub fn serves(&self, p: u16) -> bool {
        self.kept().serves(p)
    }
}

/// `TICKETING_PARTITIONS`: distinct partitions below the count, separated by commas.
fn read_served(r: &mut Vars<'_>, partitions: contracts::Partitions) -> Option<Vec<u16>> {
    let raw = r.raw("TICKETING_PARTITIONS").filter(|v| !v.trim().is_empty())?;
    let mut served = Vec::new();
    for part in raw.split(',').map(str::trim) {
        match part.parse::<u16>() {
            Ok(p) if p < partitions.count() && !served.contains(&p) => served.push(p),
            _ => {
                r.fail(
                    "TICKETING_PARTITIONS",
                    format!(
                        "expected distinct partitions from 0 to {} (TICKETING_PARTITION_COUNT is {}) separated by commas, got {raw:?}",
                        partitions.count() - 1,
                        partitions.count()
                    ),
                );
                return None;
            }
        }
    }
    Some(served)
}

/// The keys identity tokens are checked with: the identity provider's public keys
/// (`TICKETING_JWT_PUBLIC_KEY`, a PEM or JWKS file), and/or a shared HS256 secret
/// (`TICKETING_JWT_SECRET`, development and tests); one of them is required. A private key
/// (`TICKETING_JWT_PRIVATE_KEY`) is for `ticketing token` alone. None when something is wrong.
fn read_token_keys(r: &mut Vars<'_>) -> Option<JwtKeys> {
    let rules = TokenRules {
        issuer: r.string("TICKETING_JWT_ISSUER", "ticketing"),
        audience: r.string("TICKETING_JWT_AUDIENCE", "ticketing"),
        max_lifetime: r.secs("TICKETING_JWT_MAX_LIFETIME_SECS", crate::auth::DEFAULT_MAX_LIFETIME_SECS),
    };
    if rules.max_lifetime.is_zero() {
        r.fail("TICKETING_JWT_MAX_LIFETIME_SECS", "must be at least 1");
    }
    let secret = r.raw("TICKETING_JWT_SECRET").map(Secret);
    if let Some(s) = &secret {
        if s.expose().len() < 32 {
            r.fail("TICKETING_JWT_SECRET", "must be at least 32 bytes");
        }
        r.secret_allowed("TICKETING_JWT_SECRET", s.expose());
    }
    let public_path = r.raw("TICKETING_JWT_PUBLIC_KEY");
    let public = public_path.as_deref().and_then(|path| match PublicKeys::load(Path::new(path.trim())) {
        Ok(keys) => {
            r.public_refused("TICKETING_JWT_PUBLIC_KEY", keys.holds_development_key());
            Some(keys)
        }
        Err(e) => {
            r.fail("TICKETING_JWT_PUBLIC_KEY", e.to_string());
            None
        }
    });
    if secret.is_none() && public_path.is_none() {
        r.fail(
            "TICKETING_JWT_PUBLIC_KEY",
            "is required and not set: the identity provider's public key (a PEM or JWKS file), or \
             TICKETING_JWT_SECRET, a shared secret, for development",
        );
    }
    let private =
        r.raw("TICKETING_JWT_PRIVATE_KEY").and_then(|path| match std::fs::read_to_string(path.trim()) {
            Ok(pem) => {
                r.public_refused("TICKETING_JWT_PRIVATE_KEY", crate::auth::is_development_private_key(&pem));
                Some(pem)
            }
            Err(e) => {
                r.fail("TICKETING_JWT_PRIVATE_KEY", format!("cannot read {path}: {e}"));
                None
            }
        });
    match JwtKeys::new(rules, secret.as_ref(), public, private.as_deref()) {
        Ok(keys) => Some(keys),
        Err(e) => {
            r.fail("TICKETING_JWT_PRIVATE_KEY", e.to_string());
            None
        }
    }
}

/// Reads `S` through `lookup`, every problem at once.
pub fn read_settings<S: Settings>(lookup: &dyn Fn(&str) -> Option<String>) -> Result<S, ConfigError> {
    let mut vars = Vars { lookup, problems: Vec::new() };
    let settings = S::read(&mut vars);
    if vars.problems.is_empty() { Ok(settings) } else { Err(ConfigError(vars.problems)) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn a_development_secret_is_refused_unless_this_is_a_development_machine() {
        for secret in [DEVELOPMENT_SECRETS[1], "dev-only-made-up-for-a-demo-0123456789abcdef"] {
            let err = read(&[("TICKETING_JWT_SECRET", secret)]).unwrap_err();
            assert!(
                err.names("TICKETING_JWT_SECRET") && err.to_string().contains("development secret"),
                "{err}"
            );
            read(&[("TICKETING_JWT_SECRET", secret), ("TICKETING_ENV", "dev")]).unwrap();
        }
        let err = read(&[("TICKETING_JWT_SECRET", SECRET), ("TICKETING_ENV", "staging")]).unwrap_err();
        assert!(err.names("TICKETING_ENV"), "{err}");
        read(&[("TICKETING_JWT_SECRET", SECRET), ("TICKETING_ENV", "production")]).unwrap();
    }

    #[test]
    fn defaults_reach_the_local_stack() {
        let c = read(&[("TICKETING_JWT_SECRET", SECRET)]).unwrap();
        assert_eq!(c.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(c.nats_replicas, 1);
        assert_eq!(c.http_addr.port(), 8080);
        let clocks: SagaClocks = c.settings().unwrap();
        assert_eq!(clocks.hold, Duration::from_secs(300));
        assert_eq!(c.prefix, Namespace::default());
        assert!(c.otlp_endpoint.is_none());
    }

    #[test]
    fn a_nats_cluster_is_a_list_of_urls_and_its_streams_keep_up_to_five_replicas() {
        let cluster = read(&[
            ("TICKETING_JWT_SECRET", SECRET),
            ("TICKETING_NATS_URL", "nats://127.0.0.1:4301,nats://127.0.0.1:4302"),
            ("TICKETING_NATS_REPLICAS", "3"),
        ])
        .unwrap();
        assert_eq!(
            (cluster.nats_url.as_str(), cluster.nats_replicas),
            ("nats://127.0.0.1:4301,nats://127.0.0.1:4302", 3)
        );
        for (url, replicas) in [("nats://127.0.0.1:4301,127.0.0.1:4302", "1"), ("nats://127.0.0.1:4222", "6")]
        {
            let e = read(&[
                ("TICKETING_JWT_SECRET", SECRET),
                ("TICKETING_NATS_URL", url),
                ("TICKETING_NATS_REPLICAS", replicas),
            ])
            .unwrap_err();
            let at_fault = if replicas == "6" { "TICKETING_NATS_REPLICAS" } else { "TICKETING_NATS_URL" };
            assert!(e.names(at_fault), "{e}");
        }
    }

    #[test]
    fn missing_token_keys_are_named() {
        let e = read(&[]).unwrap_err();
        assert!(e.names("TICKETING_JWT_PUBLIC_KEY"));
        assert!(e.to_string().contains("TICKETING_JWT_PUBLIC_KEY: is required"), "{e}");
    }

    /// `text` in a file of its own.
    fn file(text: &str) -> String {
        let path = std::env::temp_dir().join(format!("ticketing-config-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    }

    #[test]
    fn the_development_key_pair_is_refused_unless_this_is_a_development_machine() {
        use crate::auth::{DEVELOPMENT_PRIVATE_KEY, DEVELOPMENT_PUBLIC_KEY};
        let public = file(DEVELOPMENT_PUBLIC_KEY);
        let private = file(DEVELOPMENT_PRIVATE_KEY);
        for var in ["TICKETING_JWT_PUBLIC_KEY", "TICKETING_JWT_PRIVATE_KEY"] {
            let vars = [
                ("TICKETING_JWT_PUBLIC_KEY", public.as_str()),
                ("TICKETING_JWT_PRIVATE_KEY", private.as_str()),
            ];
            let err = read(&vars).unwrap_err();
            assert!(err.names(var) && err.to_string().contains("development secret"), "{err}");
        }
        let dev = read(&[
            ("TICKETING_JWT_PUBLIC_KEY", public.as_str()),
            ("TICKETING_JWT_PRIVATE_KEY", private.as_str()),
            ("TICKETING_ENV", "dev"),
        ])
        .unwrap();
        let token =
            dev.jwt.mint(contracts::UserId::new(), crate::auth::Role::User, Duration::from_secs(60)).unwrap();
        dev.jwt.verify(&token).unwrap();
        for (var, value) in [
            ("TICKETING_JWT_PUBLIC_KEY", "/nonexistent/jwt.pem"),
            ("TICKETING_JWT_PUBLIC_KEY", private.as_str()),
            ("TICKETING_JWT_MAX_LIFETIME_SECS", "0"),
        ] {
            let err = read(&[("TICKETING_JWT_SECRET", SECRET), (var, value), ("TICKETING_ENV", "dev")])
                .unwrap_err();
            assert!(err.names(var), "{err}");
        }
    }

    #[test]
    fn every_malformed_variable_is_named() {
        let e = read(&[
            ("TICKETING_JWT_SECRET", "short"),
            ("TICKETING_HTTP_ADDR", "localhost"),
            ("TICKETING_NATS_URL", "127.0.0.1:4222"),
            ("TICKETING_PREFIX", "a.b"),
            ("TICKETING_PARTITION_COUNT", "0"),
            ("TICKETING_PARTITIONS", "0,x"),
        ])
        .unwrap_err();
        for var in [
            "TICKETING_JWT_SECRET",
            "TICKETING_HTTP_ADDR",
            "TICKETING_NATS_URL",
            "TICKETING_PREFIX",
            "TICKETING_PARTITION_COUNT",
            "TICKETING_PARTITIONS",
        ] {
            assert!(e.names(var), "{var} not named in {e}");
        }
    }

    #[test]
    fn a_process_serves_the_partitions_it_is_given_or_every_one() {
        let with = |vars: &[(&str, &str)]| {
            let mut all = vec![("TICKETING_JWT_SECRET", SECRET), ("TICKETING_ENV", "dev")];
            all.extend_from_slice(vars);
            read(&all)
        };
        let every = with(&[("TICKETING_PARTITION_COUNT", "4")]).unwrap();
        assert_eq!(every.partitions_served, None);
        assert!((0..4).all(|p| every.serves(p)));
        let two = with(&[("TICKETING_PARTITION_COUNT", "4"), ("TICKETING_PARTITIONS", " 3, 1 ")]).unwrap();
        assert_eq!(two.partitions_served, Some(vec![3, 1]));
        assert!(two.serves(1) && two.serves(3) && !two.serves(0) && !two.serves(2));
        for bad in ["4", "1,1", "-1", "one"] {
            let e = with(&[("TICKETING_PARTITION_COUNT", "4"), ("TICKETING_PARTITIONS", bad)]).unwrap_err();
            assert!(e.names("TICKETING_PARTITIONS"), "{bad}: {e}");
        }
        let e = with(&[("TICKETING_PARTITIONS", "1")]).unwrap_err();
        assert!(e.to_string().contains("TICKETING_PARTITION_COUNT is 1"), "{e}");
    }

    #[test]
    fn the_saga_clocks_hold_for_at_least_a_second() {
        let read = |vars: &[(&str, &str)]| {
            let map: HashMap<String, String> =
                vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            read_settings::<SagaClocks>(&|k: &str| map.get(k).cloned())
        };
        let clocks = read(&[]).unwrap();
        assert_eq!(
            (clocks.hold, clocks.pay_grace, clocks.request_timeout),
            (Duration::from_secs(300), Duration::from_secs(30), Duration::from_secs(30))
        );
        for hold in ["five minutes", "0"] {
            let e = read(&[("TICKETING_HOLD_SECS", hold)]).unwrap_err();
            assert!(e.names("TICKETING_HOLD_SECS"), "{e}");
        }
    }

    /// A service's settings, as a service declares them.
    #[derive(Debug)]
    struct Probe {
        every: Duration,
        at_most: u32,
    }

    impl Settings for Probe {
        fn read(vars: &mut Vars<'_>) -> Self {
            Self {
                every: vars.millis("TICKETING_PROBE_MS", 250),
                at_most: vars.positive("TICKETING_PROBE_MAX", 3),
            }
        }
    }

    #[test]
    fn a_service_reads_its_own_settings_from_the_same_variables_every_problem_at_once() {
        let c = read(&[("TICKETING_JWT_SECRET", SECRET), ("TICKETING_PROBE_MS", "40")]).unwrap();
        let probe: Probe = c.settings().unwrap();
        assert_eq!((probe.every, probe.at_most), (Duration::from_millis(40), 3));
        let c = read(&[
            ("TICKETING_JWT_SECRET", SECRET),
            ("TICKETING_PROBE_MS", "soon"),
            ("TICKETING_PROBE_MAX", "0"),
        ])
        .unwrap();
        let e = c.settings::<Probe>().unwrap_err();
        assert!(e.names("TICKETING_PROBE_MS") && e.names("TICKETING_PROBE_MAX"), "{e}");
    }

    #[test]
    fn secrets_never_print() {
        let c = read(&[("TICKETING_JWT_SECRET", SECRET)]).unwrap();
        assert!(!format!("{c:?}").contains(SECRET));
    }
}
