//! The delivery worker: claims due deliveries, POSTs them signed to the platform several at a
//! time, and records each outcome. Safe with many replicas: a claim is a short lease taken with
//! `FOR UPDATE SKIP LOCKED` and committed before the HTTP call, and an outcome is recorded only
//! if the lease still holds. A worker that dies mid-attempt leaves a row that is due again when
//! its lease ends, so every delivery is sent at least once; the receiver dedupes copies by
//! `webhook-id`. Deliveries are signed as Standard Webhooks specifies ([`Signer`]).

use crate::{
    domain::{self, AttemptResult, DeliverySettings, Next, Signer},
    sender::Sender,
    store::{self, Claimed},
};
use chrono::Utc;
use platform::periodic::{Claims, run_claims};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The worker's task name.
pub const TASK: &str = "deliverer[external-data]";
/// The delivery's id; the same on every attempt, so the receiver can drop copies.
pub const HEADER_DELIVERY: &str = standardwebhooks::HEADER_WEBHOOK_ID;
/// When this attempt was signed, in unix seconds.
pub const HEADER_TIMESTAMP: &str = standardwebhooks::HEADER_WEBHOOK_TIMESTAMP;
/// `v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`.
pub const HEADER_SIGNATURE: &str = standardwebhooks::HEADER_WEBHOOK_SIGNATURE;

/// How much of a failed answer's body goes into the delivery log.
const DETAIL_BYTES: usize = 200;

/// Where deliveries go, how they are signed, and how they are sent.
#[derive(Clone, Debug)]
pub struct Target {
    pub url: reqwest::Url,
    pub signer: Signer,
    pub sender: Sender,
}

struct Worker {
    db: DatabaseConnection,
    target: Target,
    settings: DeliverySettings,
}

/// Runs until `shutdown`. Without a target it only says so, once, and waits: deliveries keep
/// being recorded as PENDING and go out once a URL is configured and the service restarts.
/// On shutdown it stops claiming and lets the attempts in flight finish (each is bounded by the
/// timeout), so their outcomes are recorded rather than left to the lease.
pub async fn run(
    db: DatabaseConnection,
    target: Option<Target>,
    settings: DeliverySettings,
    shutdown: CancellationToken,
) {
    let Some(target) = target else {
        tracing::warn!(
            task = TASK,
            "TICKETING_EXTERNAL_DATA_URL is not set: completed reservations are recorded as PENDING \
             and nothing is delivered until it is set"
        );
        shutdown.cancelled().await;
        tracing::info!(task = TASK, "stopped: shutdown requested");
        return;
    };
    let worker = Arc::new(Worker { db, target, settings });
    let claims = Claims { concurrency: worker.settings.concurrency, poll: worker.settings.poll, wake: None };
    let claim = |free: usize| {
        let limit = u64::try_from(free).unwrap_or(u64::MAX);
        store::claim_due(&worker.db, limit, worker.settings.lease())
    };
    run_claims(TASK, claims, shutdown, claim, |c| deliver(worker.clone(), c)).await;
}

/// One attempt of one claimed delivery, and its outcome recorded.
async fn deliver(worker: Arc<Worker>, claim: Claimed) {
    let result = attempt(&worker, &claim).await;
    let next = domain::decide(&worker.settings, claim.attempts, &result, rand::random::<f64>());
    let attempt = claim.attempts.saturating_add(1);
    match store::record(&worker.db, &claim, &result, next).await {
        Ok(true) => {
            let outcome = match next {
                Next::Delivered => {
                    tracing::info!(delivery = %claim.id, attempt, "delivered");
                    "delivered"
                }
                Next::RetryIn(wait) => {
                    tracing::warn!(delivery = %claim.id, attempt, error = ?result.error(), ?wait, "delivery attempt failed; retrying");
                    "retry"
                }
                Next::Failed => {
                    tracing::error!(delivery = %claim.id, attempt, error = ?result.error(), "delivery failed after its last attempt");
                    "failed"
                }
            };
            metrics::counter!("external_data_attempts_total", "outcome" => outcome).increment(1);
        }
        Ok(false) => tracing::info!(
            delivery = %claim.id,
            "outcome not recorded: the lease ran out and the delivery was claimed again"
        ),
        Err(e) => tracing::warn!(
            delivery = %claim.id, error = %e,
            "could not record the outcome; the delivery is attempted again when its lease ends"
        ),
    }
}

/// POSTs the payload, signed, within the timeout.
async fn attempt(worker: &Worker, claim: &Claimed) -> AttemptResult {
    let body = match serde_json::to_vec(&claim.payload) {
        Ok(b) => b,
        Err(e) => return AttemptResult::NoAnswer { error: format!("cannot encode the body: {e}") },
    };
    // Signed at each attempt, so the timestamp says when this copy was sent.
    let (id, timestamp) = (claim.id.to_string(), Utc::now().timestamp());
    let signature = match worker.target.signer.sign(&id, timestamp, &body) {
        Ok(s) => s,
        Err(e) => return AttemptResult::NoAnswer { error: format!("cannot sign the body: {e}") },
    };
    let timestamp = timestamp.to_string();
    let headers = [
        (HEADER_DELIVERY, id.as_str()),
        (HEADER_TIMESTAMP, timestamp.as_str()),
        (HEADER_SIGNATURE, signature.as_str()),
    ];
    let (target, timeout) = (&worker.target, worker.settings.timeout);
    let sent = tokio::time::timeout(timeout, target.sender.post(&target.url, &headers, body, DETAIL_BYTES));
    match sent.await {
        Err(_) => AttemptResult::NoAnswer { error: format!("timed out after {timeout:?}") },
        Ok(Err(error)) => AttemptResult::NoAnswer { error },
        Ok(Ok(answer)) => AttemptResult::Answered { status: answer.status, detail: answer.detail },
    }
}
