//! pg-sim: a card payment gateway simulator for development and tests. It stands in for an
//! external gateway (Toss Payments, Stripe) as its own HTTP server: the merchant creates a
//! payment with an API key, the buyer's browser pays or declines on a checkout page, and every
//! status change reaches the merchant as a signed webhook. Knobs make it fail the ways real
//! gateways do (errors, latency, late, duplicate or lost webhooks, declined cards).
//!
//! State lives in memory: it is the simulated external system, gone when the process ends.

mod api;
mod checkout;
mod payment;
mod webhooks;

use axum::Router;
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::{
    collections::HashMap,
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};
use tokio::{net::TcpListener, task::JoinHandle};
use tokio_util::sync::CancellationToken;

pub use payment::{Payment, PaymentId, Status};

/// The API key when `PG_SIM_API_KEY` is not set.
pub const DEV_API_KEY: &str = "sk_test_ticketing";
/// The webhook secret when `PG_SIM_WEBHOOK_SECRET` is not set: 32 bytes, base64, a development
/// value only (anyone can read it here).
pub const DEV_WEBHOOK_SECRET: &str = "whsec_cGctc2ltIGRldmVsb3BtZW50IHdlYmhvb2sga2V5ISE=";

/// The shortest accepted webhook key, in bytes after base64 decoding.
const MIN_SECRET_BYTES: usize = 16;

/// How the simulator misbehaves; set at start and replaced at runtime with `PUT /sim/settings`.
/// Fields left out of a PUT take their defaults.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Settings {
    /// The next this many `/v1/*` calls answer 503 `GATEWAY_UNAVAILABLE` without effect.
    pub fail_next_api_calls: u32,
    /// Every `/v1/*` call waits this long before answering (at most 60 000).
    pub api_latency_ms: u64,
    /// The wait before the first attempt of each webhook (at most 600 000).
    pub webhook_delay_ms: u64,
    /// Each webhook is sent this many times with the same `webhook-id` (1 to 10).
    pub webhook_copies: u32,
    /// No webhook is sent: the merchant has to reconcile with `GET /v1/payments/{id}`.
    pub drop_webhooks: bool,
    /// The checkout's Pay button declines instead of capturing.
    pub decline_all: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fail_next_api_calls: 0,
            api_latency_ms: 0,
            webhook_delay_ms: 0,
            webhook_copies: 1,
            drop_webhooks: false,
            decline_all: false,
        }
    }
}

impl Settings {
    /// Refuses values that would only make the simulator hang or flood the merchant.
    pub fn check(&self) -> Result<(), String> {
        if self.api_latency_ms > 60_000 {
            return Err("apiLatencyMs must be at most 60000".into());
        }
        if self.webhook_delay_ms > 600_000 {
            return Err("webhookDelayMs must be at most 600000".into());
        }
        if !(1..=10).contains(&self.webhook_copies) {
            return Err("webhookCopies must be 1 to 10 (to send none, set dropWebhooks)".into());
        }
        Ok(())
    }
}

/// What the simulator is started with.
#[derive(Clone)]
pub struct Config {
    /// The merchant's `Authorization: Bearer` key (`PG_SIM_API_KEY`).
    pub api_key: String,
    /// The Standard Webhooks secret, `whsec_<base64>` (`PG_SIM_WEBHOOK_SECRET`).
    pub webhook_secret: String,
    /// Where webhooks go, a plain `http://` URL (`PG_SIM_WEBHOOK_URL`); none are sent without it.
    pub webhook_url: Option<String>,
    /// The base of `checkoutUrl` as the buyer's browser reaches it (`PG_SIM_PUBLIC_URL`);
    /// by default `http://<bound address>`.
    pub public_url: Option<String>,
    /// The failure knobs at start.
    pub settings: Settings,
}

impl Default for Config {
    /// The development key and secret, no webhook URL, no failures.
    fn default() -> Self {
        Self {
            api_key: DEV_API_KEY.into(),
            webhook_secret: DEV_WEBHOOK_SECRET.into(),
            webhook_url: None,
            public_url: None,
            settings: Settings::default(),
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("api_key", &"***")
            .field("webhook_secret", &"***")
            .field("webhook_url", &self.webhook_url)
            .field("public_url", &self.public_url)
            .field("settings", &self.settings)
            .finish()
    }
}

/// A configuration value that cannot be used; `var` names the environment variable.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

impl Config {
    /// Reads `PG_SIM_API_KEY`, `PG_SIM_WEBHOOK_SECRET`, `PG_SIM_WEBHOOK_URL` and
    /// `PG_SIM_PUBLIC_URL` (unset or empty: the default) and checks them.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &'static str| match std::env::var(name) {
            Ok(value) if value.trim().is_empty() => Ok(None),
            Ok(value) => Ok(Some(value.trim().to_owned())),
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(invalid(name, "is not valid UTF-8")),
        };
        let config = Self {
            api_key: var("PG_SIM_API_KEY")?.unwrap_or_else(|| DEV_API_KEY.into()),
            webhook_secret: var("PG_SIM_WEBHOOK_SECRET")?.unwrap_or_else(|| DEV_WEBHOOK_SECRET.into()),
            webhook_url: var("PG_SIM_WEBHOOK_URL")?,
            public_url: var("PG_SIM_PUBLIC_URL")?,
            settings: Settings::default(),
        };
        config.check()?;
        Ok(config)
    }

    /// Checks every value; [`start`] does too, so a hand-built config is held to the same rules.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.signer()?;
        self.webhook_url()?;
        if let Some(url) = &self.public_url {
            http_url(url).map_err(|m| invalid("PG_SIM_PUBLIC_URL", m))?;
        }
        if self.api_key.is_empty() || !self.api_key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(invalid("PG_SIM_API_KEY", "must be visible ASCII characters, no spaces"));
        }
        self.settings.check().map_err(|m| invalid("settings", m))
    }

    fn signer(&self) -> Result<standardwebhooks::Webhook, ConfigError> {
        let bad = |m: &str| invalid("PG_SIM_WEBHOOK_SECRET", m);
        let encoded =
            self.webhook_secret.strip_prefix("whsec_").ok_or_else(|| bad("must start with whsec_"))?;
        let key = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| bad("must be base64 after whsec_"))?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(bad("must be at least 16 bytes once base64-decoded"));
        }
        standardwebhooks::Webhook::from_bytes(key).map_err(|e| bad(&e.to_string()))
    }

    fn webhook_url(&self) -> Result<Option<reqwest::Url>, ConfigError> {
        let Some(raw) = &self.webhook_url else { return Ok(None) };
        let url = http_url(raw).map_err(|m| invalid("PG_SIM_WEBHOOK_URL", m))?;
        // Built without TLS: a development simulator talks to a merchant on the same machine
        // or network, and an https URL would only fail on every attempt.
        if url.scheme() != "http" {
            return Err(invalid("PG_SIM_WEBHOOK_URL", "must be a plain http:// URL (pg-sim sends no TLS)"));
        }
        Ok(Some(url))
    }
}

fn invalid(var: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError { var, message: message.into() }
}

/// An absolute `http(s)://` URL with a host.
pub(crate) fn http_url(raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("must be an absolute URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
        return Err("must be an http:// or https:// URL with a host".into());
    }
    Ok(url)
}

/// Why the simulator did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("building the webhook client: {0}")]
    Client(#[from] reqwest::Error),
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

/// Payments and idempotency keys: the gateway's books.
#[derive(Default)]
struct Ledger {
    payments: HashMap<PaymentId, Payment>,
    /// The first request under each `Idempotency-Key` and the payment it created.
    idempotency: HashMap<String, (api::NewPayment, PaymentId)>,
}

/// What the routes share; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

struct Inner {
    api_key: String,
    /// No trailing slash.
    public_url: String,
    ledger: Mutex<Ledger>,
    settings: Mutex<Settings>,
    webhooks: webhooks::Webhooks,
}

impl AppState {
    /// The state of a simulator bound to `addr`; webhooks in flight stop when `shutdown` is
    /// cancelled.
    pub fn new(config: Config, addr: SocketAddr, shutdown: CancellationToken) -> Result<Self, StartError> {
        config.check()?;
        let webhooks = webhooks::Webhooks::new(config.signer()?, config.webhook_url()?, shutdown)?;
        let public_url = match &config.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => {
                // 0.0.0.0 accepts connections but is no address for a browser to open.
                let mut addr = addr;
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                format!("http://{addr}")
            }
        };
        Ok(Self(Arc::new(Inner {
            api_key: config.api_key,
            public_url,
            ledger: Mutex::default(),
            settings: Mutex::new(config.settings),
            webhooks,
        })))
    }

    /// The base of every `checkoutUrl`.
    pub fn public_url(&self) -> &str {
        &self.0.public_url
    }

    // A panic while holding a lock cannot leave these plain maps half-updated in a way that
    // matters to a simulator, so a poisoned lock is used as it is.
    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.0.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn settings(&self) -> MutexGuard<'_, Settings> {
        self.0.settings.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies `action` to payment `id` and sends its webhook when the status changed: the
    /// payment afterwards, or `Ok(Err(status))` when the action cannot apply to it.
    fn transition(&self, id: &str, action: payment::Action) -> Option<Result<Payment, Status>> {
        let (payment, changed) = {
            let mut ledger = self.ledger();
            let payment = ledger.payments.get_mut(id)?;
            match payment.apply(action, chrono::Utc::now()) {
                Ok(changed) => (payment.clone(), changed),
                Err(status) => return Some(Err(status)),
            }
        };
        if changed {
            tracing::info!(payment = %payment.id, status = payment.status.as_str(), "payment changed");
            let settings = self.settings().clone();
            self.0.webhooks.send(action.event_type(), &payment, &settings);
        }
        Some(Ok(payment))
    }
}

/// All routes: `/v1/*` and `/sim/settings` (API key), `/checkout/*` (the buyer), `/healthz`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(api::routes(state.clone()))
        .merge(checkout::routes())
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(state)
}

/// A running simulator.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The base of its `checkoutUrl`s.
    pub public_url: String,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Waits until the server has stopped (after `shutdown` is cancelled): requests in flight
    /// answered, webhook deliveries abandoned.
    pub async fn stopped(self) -> Result<(), StartError> {
        match self.task.await {
            Ok(result) => Ok(result?),
            Err(join) => Err(std::io::Error::other(join).into()),
        }
    }
}

/// Serves on `listener` (port 0 works) until `shutdown` is cancelled.
pub async fn start(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<Server, StartError> {
    let addr = listener.local_addr()?;
    // Deliveries stop with the server even when it stops on an error, not a cancel.
    let deliveries = shutdown.child_token();
    let state = AppState::new(config.clone(), addr, deliveries.clone())?;
    let public_url = state.public_url().to_owned();
    tracing::info!(%addr, %public_url, webhook_url = ?config.webhook_url, "pg-sim listening");
    let tracker = state.0.webhooks.tracker.clone();
    let app = router(state);
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await;
        deliveries.cancel();
        tracker.close();
        tracker.wait().await;
        tracing::info!(?served, "pg-sim stopped");
        served
    });
    Ok(Server { addr, public_url, task })
}

/// Starts on `listener` and serves until `shutdown` is cancelled: what `ticketing pg-sim` runs.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    start(listener, config, shutdown).await?.stopped().await
}
