//! The external payment gateway's API, as the payment service calls it: create a payment (keyed
//! by our payment's id, so a retry never creates two), look one up, cancel it, refund it. The
//! gateway in development and tests is `ticketing pg-sim`, a real HTTP server with this API.

use crate::domain::{GatewayStatus, Payment};
use chrono::{DateTime, Utc};
use platform::config::{Secret, Vars};
use reqwest::{StatusCode, Url};
use std::time::Duration;

const URL: &str = "TICKETING_PAYMENT_GATEWAY_URL";
const KEY: &str = "TICKETING_PAYMENT_GATEWAY_KEY";
const WEBHOOK_SECRET: &str = "TICKETING_PAYMENT_WEBHOOK_SECRET";
const RETURN_URL: &str = "TICKETING_PAYMENT_RETURN_URL";

/// The development gateway's API key (`ticketing pg-sim`'s default): public, so refused outside
/// development.
pub const DEV_API_KEY: &str = "sk_test_ticketing";
/// The development gateway's webhook signing secret (`ticketing pg-sim`'s default): public, so
/// refused outside development.
pub const DEV_WEBHOOK_SECRET: &str = "whsec_cGctc2ltIGRldmVsb3BtZW50IHdlYmhvb2sga2V5ISE=";

/// How long one gateway call may take before it counts as unanswered.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The gateway the service talks to, and the secret its webhooks are signed with.
#[derive(Clone)]
pub struct Gateway {
    client: reqwest::Client,
    /// None only in a configuration that fails to start.
    base: Option<Url>,
    key: Secret,
    /// Where the gateway sends the buyer back after its checkout page.
    return_url: Option<String>,
    /// Verifies the gateway's webhooks (none only in a configuration that fails to start).
    webhooks: Option<std::sync::Arc<standardwebhooks::Webhook>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("base", &self.base.as_ref().map(Url::as_str)).finish_non_exhaustive()
    }
}

impl platform::config::Settings for Gateway {
    fn read(vars: &mut Vars<'_>) -> Self {
        let raw = vars.url(URL, "http://127.0.0.1:8090", &["http", "https"]);
        // Paths join under it, so it names a directory.
        let dir = if raw.ends_with('/') { raw } else { format!("{raw}/") };
        let base = Url::parse(&dir).ok();
        let key = vars.string(KEY, DEV_API_KEY);
        vars.public_refused(KEY, key == DEV_API_KEY);
        let secret = vars.string(WEBHOOK_SECRET, DEV_WEBHOOK_SECRET);
        vars.public_refused(WEBHOOK_SECRET, secret == DEV_WEBHOOK_SECRET);
        let webhooks = match standardwebhooks::Webhook::new(&secret) {
            Ok(w) => Some(std::sync::Arc::new(w)),
            Err(e) => {
                vars.fail(WEBHOOK_SECRET, format!("not a Standard Webhooks secret (whsec_<base64>): {e}"));
                None
            }
        };
        let return_url = vars.raw(RETURN_URL);
        let client = reqwest::Client::builder().timeout(TIMEOUT).build().unwrap_or_default();
        Self { client, base, key: Secret::new(key), return_url, webhooks }
    }
}

/// A payment as the gateway shows it.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remote {
    pub id: String,
    /// Our payment's id.
    pub order_id: String,
    pub amount: i64,
    pub status: GatewayStatus,
    #[serde(default)]
    pub checkout_url: Option<String>,
    #[serde(default)]
    pub captured_at: Option<DateTime<Utc>>,
}

/// Why a call did not give an answer to act on.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// No answer, a timeout, or a 5xx: worth trying again.
    #[error("the gateway did not answer: {0}")]
    Unavailable(String),
    /// The gateway refused the call as made (4xx): trying again gives the same answer.
    #[error("the gateway refused the call: {status} {body}")]
    Refused { status: StatusCode, body: String },
}

impl Gateway {
    /// Checks a webhook's signature and timestamp (Standard Webhooks: within five minutes).
    pub fn verify(&self, body: &[u8], headers: &axum::http::HeaderMap) -> Result<(), String> {
        let webhooks = self.webhooks.as_ref().ok_or("no webhook secret is configured")?;
        webhooks.verify(body, headers).map_err(|e| e.to_string())
    }

    /// Creates `p` on the gateway; the same payment asked again answers the same one.
    pub async fn create(&self, p: &Payment) -> Result<Remote, CallError> {
        let mut body =
            serde_json::json!({ "orderId": p.id.0.to_string(), "amount": p.amount.0, "currency": "KRW" });
        if let Some(back) = &self.return_url {
            let sep = if back.contains('?') { '&' } else { '?' };
            body["returnUrl"] = format!("{back}{sep}reservation={}", p.reservation_id).into();
        }
        self.call(reqwest::Method::POST, "v1/payments", Some(&p.id.0.to_string()), Some(body)).await
    }

    /// The payment as the gateway has it now.
    pub async fn get(&self, gateway_id: &str) -> Result<Remote, CallError> {
        self.call(reqwest::Method::GET, &format!("v1/payments/{gateway_id}"), None, None).await
    }

    /// Cancels a payment not captured yet; a captured one is answered as it stands, to refund.
    pub async fn cancel(&self, gateway_id: &str) -> Result<Remote, CallError> {
        let path = format!("v1/payments/{gateway_id}/cancel");
        match self.call(reqwest::Method::POST, &path, Some(&format!("cancel-{gateway_id}")), None).await {
            Err(CallError::Refused { status: StatusCode::CONFLICT, .. }) => self.get(gateway_id).await,
            other => other,
        }
    }

    /// Refunds a captured payment.
    pub async fn refund(&self, gateway_id: &str) -> Result<Remote, CallError> {
        let path = format!("v1/payments/{gateway_id}/refund");
        self.call(reqwest::Method::POST, &path, Some(&format!("refund-{gateway_id}")), None).await
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Result<Remote, CallError> {
        let base = self.base.as_ref().ok_or_else(|| CallError::Unavailable("no gateway URL".into()))?;
        let url = base.join(path).map_err(|e| CallError::Unavailable(format!("bad URL {path}: {e}")))?;
        let mut req = self.client.request(method, url).bearer_auth(self.key.expose());
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.map_err(|e| CallError::Unavailable(e.to_string()))?;
        let status = res.status();
        let text = res.text().await.map_err(|e| CallError::Unavailable(e.to_string()))?;
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(CallError::Unavailable(format!("{status} {}", truncate(&text))));
        }
        if !status.is_success() {
            return Err(CallError::Refused { status, body: truncate(&text) });
        }
        serde_json::from_str(&text).map_err(|e| CallError::Unavailable(format!("unreadable answer: {e}")))
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}
