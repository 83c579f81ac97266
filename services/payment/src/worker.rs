//! The gateway worker: claims the payments whose gateway call is due (create, cancel, check,
//! refund), makes the calls several at a time, and applies each answer through `decide` on the
//! payment as it is then. Safe with many replicas: a claim is a lease, and every call is
//! idempotent on the gateway's side.

use crate::{
    apply,
    domain::{self, Input, Payment, Work},
    gateway::{CallError, Gateway},
    store,
};
use chrono::{Duration, Utc};
use messaging::Outbox;
use platform::periodic::{Claims, run_claims};
use sea_orm::DatabaseConnection;
use std::sync::Arc;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The worker's task name.
pub const TASK: &str = "gateway-worker[payment]";
/// How long a claimed call may take before another replica may make it again.
const LEASE: Duration = Duration::seconds(30);
/// Calls in flight at once.
const CONCURRENCY: usize = 16;
/// How often due payments are looked for when nothing wakes the worker.
const POLL: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs until `shutdown`; `wake` says a payment became due. Calls run side by side, up to
/// [`CONCURRENCY`] (`platform::periodic::run_claims`): a slow gateway answer holds up no other
/// payment, and on shutdown the calls in flight finish, so their answers are recorded.
pub async fn run(
    db: DatabaseConnection,
    outbox: Outbox,
    gateway: Gateway,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let claims = Claims { concurrency: CONCURRENCY, poll: POLL, wake: Some(wake) };
    let claim = |free: usize| store::claim_due(&db, u64::try_from(free).unwrap_or(u64::MAX), LEASE);
    let call = |p: Payment| {
        let (db, outbox, gateway) = (db.clone(), outbox.clone(), gateway.clone());
        async move { step(&db, &outbox, &gateway, p).await }
    };
    run_claims(TASK, claims, shutdown, claim, call).await;
}

/// Makes the call `p` waits for and applies its answer.
async fn step(db: &DatabaseConnection, outbox: &Outbox, gateway: &Gateway, p: Payment) {
    let Some(work) = domain::work(&p) else { return };
    let answer = match (work, p.gateway_id.as_deref()) {
        (Work::Create, _) => gateway.create(&p).await.map(|r| match r.checkout_url {
            Some(url) => Input::Created { gateway_id: r.id, checkout_url: url },
            None => Input::Gateway { status: r.status, captured_at: r.captured_at },
        }),
        (Work::Cancel, Some(id)) => gateway.cancel(id).await.map(reported),
        (Work::Check, Some(id)) => gateway.get(id).await.map(reported),
        (Work::Refund, Some(id)) => gateway.refund(id).await.map(reported),
        (_, None) => {
            tracing::error!(task = TASK, payment = %p.id, ?work, "a payment past creation has no gateway id");
            return;
        }
    };
    let input = match answer {
        Ok(input) => input,
        Err(CallError::Unavailable(e)) if work == Work::Create => {
            tracing::warn!(task = TASK, payment = %p.id, error = %e, "creating the payment on the gateway failed");
            Input::CreateFailed { now: Utc::now() }
        }
        Err(e) => {
            // Tried again when the lease ends (a refusal is logged loudly: it needs a person).
            match &e {
                CallError::Refused { .. } => {
                    tracing::error!(task = TASK, payment = %p.id, ?work, error = %e, "the gateway refused a call")
                }
                CallError::Unavailable(_) => {
                    tracing::warn!(task = TASK, payment = %p.id, ?work, error = %e, "a gateway call failed; retrying")
                }
            }
            metrics::counter!("payment_gateway_calls_total", "call" => work_name(work), "outcome" => "failed").increment(1);
            return;
        }
    };
    metrics::counter!("payment_gateway_calls_total", "call" => work_name(work), "outcome" => "answered")
        .increment(1);
    if let Err(e) = apply(db, outbox, p.id, input).await {
        tracing::warn!(task = TASK, payment = %p.id, error = %e, "could not record the gateway's answer; asking again when the lease ends");
    }
}

fn reported(r: crate::gateway::Remote) -> Input {
    Input::Gateway { status: r.status, captured_at: r.captured_at }
}

fn work_name(work: Work) -> &'static str {
    match work {
        Work::Create => "create",
        Work::Cancel => "cancel",
        Work::Check => "check",
        Work::Refund => "refund",
    }
}
