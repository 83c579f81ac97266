//! Webhooks: every status change is POSTed to the merchant, signed as Standard Webhooks
//! specifies, from a background task and retried with backoff, as a real gateway would.

use crate::{Settings, payment::Payment};
use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::{sync::Arc, time::Duration};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::Instrument;

/// Attempts per copy before the webhook is dropped.
const MAX_ATTEMPTS: u32 = 8;
/// The wait after the first failed attempt; it doubles after each further one.
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// How long one attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// The body of a webhook.
#[derive(Serialize)]
struct Event<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    /// When the change happened (the Standard Webhooks payload shape).
    timestamp: DateTime<Utc>,
    data: &'a Payment,
}

/// Sends webhooks; cheap to clone.
#[derive(Clone)]
pub(crate) struct Webhooks {
    client: reqwest::Client,
    signer: Arc<standardwebhooks::Webhook>,
    url: Option<reqwest::Url>,
    /// Every delivery runs on it, so the server's task ends only after they have.
    pub(crate) tracker: TaskTracker,
    shutdown: CancellationToken,
}

impl Webhooks {
    pub(crate) fn new(
        signer: standardwebhooks::Webhook,
        url: Option<reqwest::Url>,
        shutdown: CancellationToken,
    ) -> Result<Self, reqwest::Error> {
        // A merchant's redirect is a misconfiguration to see, not to follow.
        let client = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pg-sim/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, signer: Arc::new(signer), url, tracker: TaskTracker::new(), shutdown })
    }

    /// Sends the event `kind` about `payment` in the background, as `settings` say. Never waits:
    /// the request that changed the payment answers first, as at a real gateway.
    pub(crate) fn send(&self, kind: &'static str, payment: &Payment, settings: &Settings) {
        let Some(url) = self.url.clone() else {
            tracing::debug!(kind, payment = %payment.id, "no webhook URL configured; not sent");
            return;
        };
        if settings.drop_webhooks {
            tracing::info!(kind, payment = %payment.id, "webhook dropped (dropWebhooks)");
            return;
        }
        let body = match serde_json::to_vec(&Event { kind, timestamp: Utc::now(), data: payment }) {
            Ok(body) => Bytes::from(body),
            Err(error) => {
                tracing::error!(%error, kind, payment = %payment.id, "webhook not serialized; dropped");
                return;
            }
        };
        // One id per event: retries and duplicate copies reuse it, so receivers can drop repeats.
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let span = tracing::info_span!("webhook", %id, kind, payment = %payment.id);
        let delivery = Delivery { id, body, url, sender: self.clone() };
        let delay = Duration::from_millis(settings.webhook_delay_ms);
        let copies = settings.webhook_copies;
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(
            async move {
                tokio::select! {
                    () = shutdown.cancelled() => tracing::info!("webhook abandoned: shutting down"),
                    () = delivery.run(delay, copies) => {}
                }
            }
            .instrument(span),
        );
    }
}

/// One event on its way.
struct Delivery {
    id: String,
    body: Bytes,
    url: reqwest::Url,
    sender: Webhooks,
}

impl Delivery {
    async fn run(self, delay: Duration, copies: u32) {
        tokio::time::sleep(delay).await;
        for copy in 1..=copies {
            match self.deliver().await {
                Ok(attempts) => tracing::info!(copy, attempts, "webhook delivered"),
                Err(error) => {
                    tracing::warn!(copy, %error, "webhook dropped after {MAX_ATTEMPTS} attempts")
                }
            }
        }
    }

    /// Attempts until the merchant answers 2xx: the number of attempts, or the last error.
    async fn deliver(&self) -> Result<u32, String> {
        let mut wait = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let error = match self.attempt().await {
                Ok(()) => return Ok(attempt),
                Err(error) => error,
            };
            if attempt == MAX_ATTEMPTS {
                return Err(error);
            }
            tracing::debug!(attempt, %error, retry_in = ?wait, "webhook attempt failed");
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
            attempt += 1;
        }
    }

    async fn attempt(&self) -> Result<(), String> {
        // Signed per attempt: the timestamp is the attempt's, so a late retry still verifies.
        let timestamp = Utc::now().timestamp();
        let signature =
            self.sender.signer.sign(&self.id, timestamp, &self.body).map_err(|e| format!("signing: {e}"))?;
        let answer = self
            .sender
            .client
            .post(self.url.clone())
            .header("content-type", "application/json")
            .header(standardwebhooks::HEADER_WEBHOOK_ID, &self.id)
            .header(standardwebhooks::HEADER_WEBHOOK_TIMESTAMP, timestamp.to_string())
            .header(standardwebhooks::HEADER_WEBHOOK_SIGNATURE, signature)
            .body(self.body.clone())
            .send()
            .await
            .map_err(|e| format!("no answer: {}", chain(&e)))?;
        match answer.status() {
            status if status.is_success() => Ok(()),
            status => Err(format!("answered {status}")),
        }
    }
}

/// An error with its causes: reqwest's own message leaves out why the connection failed.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}
