//! The saga's invariants (DESIGN §10, §12) checked on a live system: `ticketing audit` runs
//! [`audit`] on demand, and the e2e harness after every scenario. A checker may read every
//! service's tables; services may not.
//!
//! A running system has sagas in flight, and a state one of them passes through on its way (a
//! reservation CONFIRMED whose seats the seat service has not sold yet) is not a violation until
//! it has lasted longer than a grace. States no saga ever passes through (a seat in two
//! CONFIRMED reservations, a balance its charges and payments do not explain) are violations
//! at once. Each check's SQL, with its rule for what is in flight, is in `checks.rs`.
//!
//! Every check reads the same snapshot (one read-only, repeatable-read transaction), so two
//! checks never see two moments of one table.

mod checks;
mod quiet;
mod report;
mod store;

pub use checks::Invariant;
pub use report::{Check, ConsumerBacklog, Example, Report, Settle};

use chrono::Utc;
use messaging::Bus;
use platform::config::SagaClocks;
use sea_orm::{AccessMode, ConnectionTrait, DatabaseConnection, IsolationLevel, TransactionTrait};
use std::time::Duration;

/// How long a state may be in flight before it is a violation, unless told otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// How an audit judges what is in flight.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// How long a state a saga passes through may last before it is a violation.
    pub grace: Duration,
    /// First wait up to this long for the system to be quiet, then check with no grace; a
    /// system still busy then is a violation, and the checks keep `grace`.
    pub settle: Option<Duration>,
    /// The saga's clocks the services run with: the deadlines are theirs.
    pub clocks: SagaClocks,
}

impl Options {
    /// The default grace ([`DEFAULT_GRACE`]), no settle, and the services' `clocks`.
    pub fn new(clocks: SagaClocks) -> Self {
        Self { grace: DEFAULT_GRACE, settle: None, clocks }
    }
}

/// Why the audit could not run (a violation is not an error: it is in the [`Report`]). The
/// message says what the audit was doing; the cause is its `source()`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Postgres did not answer a query: it is unreachable, or a schema is not what this audit reads.
    #[error("Postgres: cannot {what}")]
    Db {
        /// What the audit was doing.
        what: String,
        /// Postgres's answer.
        #[source]
        source: sea_orm::DbErr,
    },
    /// NATS did not answer: it is unreachable, or the streams of this prefix were never applied
    /// (`ticketing nats apply`).
    #[error("NATS: cannot {what}")]
    Nats {
        /// What the audit was doing.
        what: String,
        /// The client's or JetStream's answer.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    fn db(what: &str, source: sea_orm::DbErr) -> Self {
        Error::Db { what: what.to_owned(), source }
    }

    fn nats(what: &str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Nats { what: what.to_owned(), source: Box::new(source) }
    }
}

/// Checks every invariant of the system behind `db` and `bus` (see [`Invariant`]); the report
/// says what holds and what does not.
pub async fn audit(db: &DatabaseConnection, bus: &Bus, opts: &Options) -> Result<Report, Error> {
    let schemas = store::outbox_schemas(db).await?;
    let mut checks = Vec::with_capacity(Invariant::ALL.len());
    let mut grace = opts.grace;
    let settle = match opts.settle {
        None => None,
        Some(within) => {
            let (settle, violations, examples) = quiet::settle(db, bus, &schemas, within).await?;
            if matches!(settle, Settle::Quiet { .. }) {
                // Nothing is in flight any more, so nothing gets the benefit of the doubt.
                grace = Duration::ZERO;
            }
            checks.push(Check { invariant: Invariant::Settled, violations, examples });
            Some(settle)
        }
    };
    let ran_at = Utc::now();
    let clocks = &opts.clocks;
    let values = || -> Vec<sea_orm::Value> {
        [grace, clocks.request_timeout, clocks.pay_grace, clocks.hold]
            .map(|d| d.as_secs_f64().into())
            .into_iter()
            .collect()
    };

    let txn = db
        .begin_with_config(Some(IsolationLevel::RepeatableRead), Some(AccessMode::ReadOnly))
        .await
        .map_err(|e| Error::db("begin a read-only transaction", e))?;
    // The services' pool plans without sequential scans (platform::pools); the checks read
    // whole tables, which a sequential scan does best.
    txn.execute_unprepared("SET LOCAL enable_seqscan = on")
        .await
        .map_err(|e| Error::db("set up the transaction", e))?;
    for (invariant, sql) in checks::SQL_CHECKS {
        let what = format!("check {invariant}");
        let found = store::findings(&txn, sql, values(), &what).await?;
        checks.push(check(invariant, found));
    }
    let found = match checks::outboxes_drained(&schemas) {
        Some(sql) => store::findings(&txn, &sql, values(), "check outboxes-drained").await?,
        None => Vec::new(),
    };
    checks.push(check(Invariant::OutboxesDrained, found));
    let outbox_backlog = store::outbox_backlog(&txn, &schemas).await?;
    let reservations = store::reservations_by_status(&txn).await?;
    txn.commit().await.map_err(|e| Error::db("end the read-only transaction", e))?;

    let consumers = quiet::summed(&quiet::consumers(bus).await?);
    // Named, because a missing stream most often means the wrong TICKETING_PREFIX.
    let dlq = format!("count the dead letters in stream {}", bus.ns.stream(contracts::Stream::Dlq));
    let dead_letters = messaging::dlq::count(bus).await.map_err(|e| Error::nats(&dlq, e))?;
    let letters = if dead_letters == 0 {
        Vec::new()
    } else {
        messaging::dlq::list(bus, 10).await.map_err(|e| Error::nats("list the dead letters", e))?
    };
    let examples = letters
        .into_iter()
        .map(|(seq, l)| Example {
            id: format!("dlq#{seq}"),
            detail: format!(
                "consumer {}, subject {}, {} {}: {}",
                l.consumer,
                l.original_subject,
                l.event_type.as_deref().unwrap_or("(no type)"),
                l.event_id.as_deref().unwrap_or("(no id)"),
                l.reason
            ),
        })
        .collect();
    checks.push(Check { invariant: Invariant::NoDeadLetters, violations: dead_letters, examples });

    Ok(Report { ran_at, grace, settle, outbox_backlog, consumers, reservations, dead_letters, checks })
}

fn check(invariant: Invariant, found: Vec<checks::Finding>) -> Check {
    let violations = found.first().map_or(0, |f| f.violations.unsigned_abs());
    let examples = found.into_iter().map(|f| Example { id: f.id, detail: f.detail }).collect();
    Check { invariant, violations, examples }
}
