//! payment: card payments through an external gateway. `CardPaymentRequested` records a
//! payment; the gateway worker creates it on the gateway (keyed by its id, so retries create it
//! once) and the buyer confirms it on the gateway's checkout page; the gateway's signed webhook
//! (`POST /payments/webhooks/{gateway}`, checked and taken once) or, if it never comes, the
//! worker's check settles it: `CardPaymentCompleted` in time, `CardPaymentFailed` when declined
//! or late (a late capture is refunded through the gateway). `CardRefundRequested` cancels a
//! payment not taken yet and refunds one taken (`CardPaymentRefunded`).

mod domain;
mod error;
mod gateway;
mod handlers;
mod http;
mod store;
mod worker;

pub use domain::Status;
pub use gateway::{DEV_API_KEY, DEV_WEBHOOK_SECRET, Gateway};

use axum::Router;
use contracts::{
    CardPaymentCompleted, CardPaymentFailed, CardPaymentRefunded, EnvelopeMeta, PaymentId, Stream,
};
use messaging::{Outbox, OutboxRow, PgInbox, Runtime};
use sea_orm::{DatabaseConnection, DatabaseTransaction, DbErr, TransactionTrait};
use servicekit::{Service, StartError};
use std::sync::Arc;

/// The service name (consumer names, event `source`, its Postgres role and NATS user).
pub const NAME: &str = "payment";
/// The Postgres schema it owns.
pub const SCHEMA: &str = "payment";

/// The payment service.
pub struct Payments;

impl Service for Payments {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str =
        "card payments through the external gateway (ticketing pg-sim in development)";
    type Api = http::Api;

    fn settings(config: &platform::Config) -> Result<(), platform::ConfigError> {
        config.settings::<Gateway>().map(drop)
    }

    /// Starts the relay, the consumer of the saga's card requests and the gateway worker.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let gateway: Gateway = rt.config.settings()?;
        let state = http::AppState {
            db: rt.db.clone(),
            outbox: Outbox::new(SCHEMA, rt.config.prefix.clone()),
            jwt: rt.config.jwt.clone(),
            gateway: gateway.clone(),
        };
        let wake = Arc::new(tokio::sync::Notify::new());
        rt.spawn_relay(SCHEMA);
        rt.spawn_pruner(SCHEMA);
        rt.spawn_consumer(
            rt.declared(NAME, Stream::Reservation)?,
            PgInbox::publishing(
                rt.db.clone(),
                &state.outbox,
                handlers::Requests { outbox: state.outbox.clone(), wake: wake.clone() },
            ),
        )?;
        rt.spawn(
            worker::TASK,
            worker::run(rt.db.clone(), state.outbox.clone(), gateway, wake, rt.shutdown.clone()),
        );
        Ok(http::routes().with_state(state))
    }
}

/// Applies `input` to the payment `id` as it stands (locked), saves what `decide` made of it
/// with its events, and commits. Answers the payment after, or none for an unknown id.
pub(crate) async fn apply(
    db: &DatabaseConnection,
    outbox: &Outbox,
    id: PaymentId,
    input: domain::Input,
) -> Result<Option<domain::Payment>, DbErr> {
    let txn = db.begin().await?;
    let Some(p) = store::for_update(&txn, id).await? else {
        return Ok(None);
    };
    let next = decide_and_save(&txn, outbox, &p, input, None).await?;
    outbox.commit(txn).await?;
    Ok(Some(next))
}

/// `decide` on `p` (locked by the caller's transaction), and its outcome saved with its
/// events: when the worker calls the gateway next, if it must.
pub(crate) async fn decide_and_save(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    p: &domain::Payment,
    input: domain::Input,
    cause: Option<&EnvelopeMeta>,
) -> Result<domain::Payment, DbErr> {
    let d = domain::decide(p, input);
    if d.next != *p || d.emit.is_some() {
        let due = domain::work(&d.next).map(|w| domain::next_attempt_in(w, d.next.attempts));
        let rows = outbox_rows(outbox, &d, cause)?;
        store::save(txn, &d.next, due, outbox, &rows).await?;
    }
    Ok(d.next)
}

/// Takes a verified webhook (id `webhook`) about `payment`, as the gateway reports it: once,
/// in the transaction of its change. None for a copy or a replay.
pub(crate) async fn webhook_once(
    db: &DatabaseConnection,
    outbox: &Outbox,
    webhook: &str,
    payment: PaymentId,
    remote: &gateway::Remote,
) -> Result<Option<Status>, error::Error> {
    let txn = db.begin().await?;
    if !store::first_webhook(&txn, webhook).await? {
        return Ok(None);
    }
    let p = store::for_update(&txn, payment)
        .await?
        .ok_or_else(|| error::Error::Mismatch(format!("no payment {payment} was made here")))?;
    if p.amount.0 != remote.amount || p.gateway_id.as_deref().is_some_and(|g| g != remote.id) {
        return Err(error::Error::Mismatch(format!(
            "the gateway reports payment {payment} as {} of {} won; it was made as {:?} of {} won",
            remote.id, remote.amount, p.gateway_id, p.amount.0
        )));
    }
    let input = domain::Input::Gateway { status: remote.status, captured_at: remote.captured_at };
    let next = decide_and_save(&txn, outbox, &p, input, None).await?;
    outbox.commit(txn).await?;
    Ok(Some(next.status))
}

/// The outbox row of what a decision announces.
pub(crate) fn outbox_rows(
    outbox: &Outbox,
    d: &domain::Decision,
    cause: Option<&EnvelopeMeta>,
) -> Result<Vec<OutboxRow>, DbErr> {
    let p = &d.next;
    let Some(emit) = d.emit else { return Ok(Vec::new()) };
    let (payment_id, reservation_id, user_id, amount) = (p.id, p.reservation_id, p.user_id, p.amount);
    let row = match emit {
        domain::Emit::Completed => outbox.row_of(
            NAME,
            p.reservation_id,
            CardPaymentCompleted { payment_id, reservation_id, user_id, amount },
            cause,
        )?,
        domain::Emit::Failed(reason) => outbox.row_of(
            NAME,
            p.reservation_id,
            CardPaymentFailed { payment_id, reservation_id, user_id, amount, reason },
            cause,
        )?,
        domain::Emit::Refunded => outbox.row_of(
            NAME,
            p.reservation_id,
            CardPaymentRefunded { payment_id, reservation_id, user_id, amount },
            cause,
        )?,
    };
    Ok(vec![row])
}
