//! Typed configuration read once from `TICKETING_*` environment variables (DESIGN §8).
//!
//! Every variable has a default that reaches the local dev stack, except the JWT secret: a
//! process must never start signing tokens with a key everyone knows. All problems are reported
//! at once, each naming its variable, so a misconfigured pod says everything in one log line.

use contracts::Namespace;
use std::{fmt, net::SocketAddr, time::Duration};

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
    /// One NATS server, or several separated by commas (the members of a cluster).
    pub nats_url: String,
    /// How many JetStream servers keep each stream (1, or 3 on a three-node cluster).
    pub nats_replicas: usize,
    pub redis_url: Secret,
    /// HS256 key for identity tokens (at least 32 bytes).
    pub jwt_secret: Secret,
    /// Namespace prefix for subjects, streams and Redis keys.
    pub prefix: Namespace,
    pub http_addr: SocketAddr,
    pub saga: SagaClocks,
    pub queue: QueueSettings,
    pub external_data: ExternalData,
    /// Where traces go (OTLP/HTTP); none means spans stay in-process.
    pub otlp_endpoint: Option<String>,
}

/// The reservation saga's clocks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SagaClocks {
    /// How long seats stay held for an unpaid reservation.
    pub hold: Duration,
    /// How long past `payBy` a PAYING reservation waits for the payment outcome.
    pub pay_grace: Duration,
    /// How long a PENDING reservation waits for the seat service.
    pub request_timeout: Duration,
}

/// The waiting room's admission settings (DESIGN §7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    pub max_active: u32,
    pub admit_per_tick: u32,
    pub tick: Duration,
    pub active_ttl: Duration,
    pub restore_min: Duration,
    /// Development only: booking routes accept requests without an ACTIVE queue token
    /// (`TICKETING_DEV_SKIP_QUEUE_TOKEN=true`). Off unless set.
    pub dev_skip_token: bool,
}

/// The external data platform that completed reservations are delivered to.
#[derive(Clone, Debug)]
pub struct ExternalData {
    /// Where deliveries are POSTed; none means they are recorded but not sent.
    pub url: Option<String>,
    /// The HMAC-SHA256 key deliveries are signed with; always set when `url` is.
    pub secret: Option<Secret>,
}

/// The shortest accepted `TICKETING_EXTERNAL_DATA_SECRET`, in bytes.
pub const MIN_EXTERNAL_DATA_SECRET: usize = 16;

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

/// Reads variables from a lookup function, collecting problems instead of stopping at the first.
struct Reader<F> {
    lookup: F,
    problems: Vec<VarProblem>,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn raw(&self, var: &'static str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    fn fail(&mut self, var: &'static str, problem: impl Into<String>) {
        self.problems.push(VarProblem { var, problem: problem.into() });
    }

    fn string(&mut self, var: &'static str, default: &str) -> String {
        self.raw(var).unwrap_or_else(|| default.to_owned())
    }

    fn required(&mut self, var: &'static str) -> String {
        match self.raw(var) {
            Some(v) => v,
            None => {
                self.fail(var, "is required and not set");
                String::new()
            }
        }
    }

    fn parsed<T: std::str::FromStr>(&mut self, var: &'static str, default: T, what: &str) -> T {
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
    fn positive(&mut self, var: &'static str, default: u32) -> u32 {
        let n = self.parsed(var, default, "a whole number");
        if n == 0 {
            self.fail(var, "must be at least 1");
        }
        n
    }

    fn secs(&mut self, var: &'static str, default: u64) -> Duration {
        Duration::from_secs(self.parsed(var, default, "a whole number of seconds"))
    }

    fn millis(&mut self, var: &'static str, default: u64) -> Duration {
        Duration::from_millis(self.parsed(var, default, "a whole number of milliseconds"))
    }

    fn url(&mut self, var: &'static str, default: &str, schemes: &[&str]) -> String {
        self.urls(var, default, schemes, false)
    }

    /// A URL, or with `several` a comma-separated list of them, each with one of `schemes`.
    fn urls(&mut self, var: &'static str, default: &str, schemes: &[&str], several: bool) -> String {
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

    /// Reads configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut r = Reader { lookup, problems: Vec::new() };

        let database_url = r.url(
            "TICKETING_DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/ticketing?sslmode=disable",
            &["postgres", "postgresql"],
        );
        let database_max_connections = r.positive("TICKETING_DATABASE_MAX_CONNECTIONS", 20);
        let nats_url = r.urls("TICKETING_NATS_URL", "nats://127.0.0.1:4222", &["nats", "tls"], true);
        let nats_replicas = r.parsed("TICKETING_NATS_REPLICAS", 1_usize, "a whole number");
        if !(1..=5).contains(&nats_replicas) {
            // JetStream keeps a stream on at most five servers.
            r.fail("TICKETING_NATS_REPLICAS", "must be between 1 and 5");
        }
        let redis_url = r.url("TICKETING_REDIS_URL", "redis://127.0.0.1:6379", &["redis", "rediss"]);
        let jwt_secret = r.required("TICKETING_JWT_SECRET");
        if !jwt_secret.is_empty() && jwt_secret.len() < 32 {
            r.fail("TICKETING_JWT_SECRET", "must be at least 32 bytes");
        }
        let prefix_raw = r.string("TICKETING_PREFIX", "");
        let prefix = Namespace::new(&prefix_raw).unwrap_or_else(|e| {
            r.fail("TICKETING_PREFIX", e.to_string());
            Namespace::default()
        });
        let http_addr = r.parsed(
            "TICKETING_HTTP_ADDR",
            SocketAddr::from(([0, 0, 0, 0], 8080)),
            "a socket address such as 0.0.0.0:8080",
        );
        let saga = SagaClocks {
            hold: r.secs("TICKETING_HOLD_SECS", 300),
            pay_grace: r.secs("TICKETING_PAY_GRACE_SECS", 30),
            request_timeout: r.secs("TICKETING_REQUEST_TIMEOUT_SECS", 30),
        };
        if saga.hold.is_zero() {
            r.fail("TICKETING_HOLD_SECS", "must be at least 1");
        }
        let queue = QueueSettings {
            max_active: r.positive("TICKETING_QUEUE_MAX_ACTIVE", 1000),
            admit_per_tick: r.positive("TICKETING_QUEUE_ADMIT_PER_TICK", 100),
            tick: r.millis("TICKETING_QUEUE_TICK_MS", 1000),
            active_ttl: r.secs("TICKETING_QUEUE_ACTIVE_TTL_SECS", 600),
            restore_min: r.secs("TICKETING_QUEUE_RESTORE_MIN_SECS", 60),
            dev_skip_token: r.parsed("TICKETING_DEV_SKIP_QUEUE_TOKEN", false, "true or false"),
        };
        if queue.tick < Duration::from_millis(10) {
            r.fail("TICKETING_QUEUE_TICK_MS", "must be at least 10");
        }
        let external_url = r.raw("TICKETING_EXTERNAL_DATA_URL");
        if let Some(u) = &external_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            r.fail("TICKETING_EXTERNAL_DATA_URL", "expected an http:// or https:// URL");
        }
        let external_secret = r.raw("TICKETING_EXTERNAL_DATA_SECRET");
        match &external_secret {
            // Unsigned deliveries would let anyone who finds the platform's endpoint forge them.
            None if external_url.is_some() => r.fail(
                "TICKETING_EXTERNAL_DATA_SECRET",
                "is required when TICKETING_EXTERNAL_DATA_URL is set (every delivery is signed with it)",
            ),
            Some(s) if s.len() < MIN_EXTERNAL_DATA_SECRET => r.fail(
                "TICKETING_EXTERNAL_DATA_SECRET",
                format!("must be at least {MIN_EXTERNAL_DATA_SECRET} bytes"),
            ),
            _ => {}
        }
        let external_data = ExternalData { url: external_url, secret: external_secret.map(Secret) };
        let otlp_endpoint = r.raw("OTEL_EXPORTER_OTLP_ENDPOINT");

        if !r.problems.is_empty() {
            return Err(ConfigError(r.problems));
        }
        Ok(Config {
            database_url: Secret(database_url),
            database_max_connections,
            nats_url,
            nats_replicas,
            redis_url: Secret(redis_url),
            jwt_secret: Secret(jwt_secret),
            prefix,
            http_addr,
            saga,
            queue,
            external_data,
            otlp_endpoint,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn read(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_reach_the_local_stack() {
        let c = read(&[("TICKETING_JWT_SECRET", SECRET)]).unwrap();
        assert_eq!(c.nats_url, "nats://127.0.0.1:4222");
        assert_eq!(c.nats_replicas, 1);
        assert_eq!(c.http_addr.port(), 8080);
        assert_eq!(c.saga.hold, Duration::from_secs(300));
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
    fn missing_jwt_secret_is_named() {
        let e = read(&[]).unwrap_err();
        assert!(e.names("TICKETING_JWT_SECRET"));
        assert!(e.to_string().contains("TICKETING_JWT_SECRET: is required"));
    }

    #[test]
    fn every_malformed_variable_is_named() {
        let e = read(&[
            ("TICKETING_JWT_SECRET", "short"),
            ("TICKETING_HOLD_SECS", "five minutes"),
            ("TICKETING_HTTP_ADDR", "localhost"),
            ("TICKETING_NATS_URL", "127.0.0.1:4222"),
            ("TICKETING_PREFIX", "a.b"),
            ("TICKETING_QUEUE_MAX_ACTIVE", "0"),
        ])
        .unwrap_err();
        for var in [
            "TICKETING_JWT_SECRET",
            "TICKETING_HOLD_SECS",
            "TICKETING_HTTP_ADDR",
            "TICKETING_NATS_URL",
            "TICKETING_PREFIX",
            "TICKETING_QUEUE_MAX_ACTIVE",
        ] {
            assert!(e.names(var), "{var} not named in {e}");
        }
    }

    #[test]
    fn the_queue_token_bypass_is_off_unless_asked_for() {
        assert!(!read(&[("TICKETING_JWT_SECRET", SECRET)]).unwrap().queue.dev_skip_token);
        let on =
            read(&[("TICKETING_JWT_SECRET", SECRET), ("TICKETING_DEV_SKIP_QUEUE_TOKEN", "true")]).unwrap();
        assert!(on.queue.dev_skip_token);
        let bad =
            read(&[("TICKETING_JWT_SECRET", SECRET), ("TICKETING_DEV_SKIP_QUEUE_TOKEN", "yes")]).unwrap_err();
        assert!(bad.names("TICKETING_DEV_SKIP_QUEUE_TOKEN"));
    }

    #[test]
    fn an_external_data_url_needs_a_long_enough_secret() {
        let url = ("TICKETING_EXTERNAL_DATA_URL", "http://127.0.0.1:9000/hooks");
        let unsigned = read(&[("TICKETING_JWT_SECRET", SECRET), url]).unwrap_err();
        assert!(unsigned.names("TICKETING_EXTERNAL_DATA_SECRET"), "{unsigned}");
        assert!(unsigned.to_string().contains("required when TICKETING_EXTERNAL_DATA_URL is set"));

        let short =
            read(&[("TICKETING_JWT_SECRET", SECRET), url, ("TICKETING_EXTERNAL_DATA_SECRET", "short")])
                .unwrap_err();
        assert!(short.names("TICKETING_EXTERNAL_DATA_SECRET"), "{short}");
        assert!(short.to_string().contains("at least 16 bytes"));

        let bad_url = read(&[
            ("TICKETING_JWT_SECRET", SECRET),
            ("TICKETING_EXTERNAL_DATA_URL", "ftp://example.com"),
            ("TICKETING_EXTERNAL_DATA_SECRET", "0123456789abcdef"),
        ])
        .unwrap_err();
        assert!(bad_url.names("TICKETING_EXTERNAL_DATA_URL"), "{bad_url}");

        let ok = read(&[
            ("TICKETING_JWT_SECRET", SECRET),
            url,
            ("TICKETING_EXTERNAL_DATA_SECRET", "0123456789abcdef"),
        ])
        .unwrap();
        assert_eq!(ok.external_data.url.as_deref(), Some(url.1));
        assert_eq!(ok.external_data.secret.as_ref().map(Secret::expose), Some("0123456789abcdef"));
        assert!(!format!("{ok:?}").contains("0123456789abcdef"));

        let off = read(&[("TICKETING_JWT_SECRET", SECRET)]).unwrap();
        assert!(off.external_data.url.is_none() && off.external_data.secret.is_none());
    }

    #[test]
    fn secrets_never_print() {
        let c = read(&[("TICKETING_JWT_SECRET", SECRET)]).unwrap();
        assert!(!format!("{c:?}").contains(SECRET));
    }
}
