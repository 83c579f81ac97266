//! The deadline sweeper: expires holds, gives up on payments past payBy + grace, and times out
//! requests the seat service never answered; and ends the reservations a schedule's
//! cancellation or a user's block missed (started as it ran). Safe with many replicas: due rows are claimed with
//! `FOR UPDATE SKIP LOCKED`, and every change is a compare-and-set through `decide`.

use crate::{domain::Input, error::Error, saga, store};
use chrono::Utc;
use messaging::Outbox;
use platform::{config::SagaClocks, periodic::Pass};
use sea_orm::{DatabaseConnection, TransactionTrait};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows handled per sweep transaction.
const BATCH: i64 = 200;

/// Sweeps the reservation schema's open reservations.
#[derive(Clone)]
pub struct Sweeper {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub clocks: SagaClocks,
    /// Told of every reservation a sweep changes (its waiters, here and in other replicas).
    pub local: saga::Local,
}

impl Sweeper {
    /// Runs until `shutdown`, sweeping every `every` (at once again while a sweep fills its batch).
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        platform::periodic::run("sweeper[reservation]", every, shutdown, || async {
            self.sweep().await.map(|n| Pass::of(n, BATCH as usize))
        })
        .await;
    }

    /// One pass: returns how many reservations changed.
    pub async fn sweep(&self) -> Result<usize, sea_orm::DbErr> {
        let now = Utc::now();
        let grace = chrono::Duration::from_std(self.clocks.pay_grace).unwrap_or_default();
        let timeout = chrono::Duration::from_std(self.clocks.request_timeout).unwrap_or_default();
        let txn = self.db.begin().await?;
        let due = store::lock_due(&txn, now, grace, timeout, BATCH).await?;
        let tick = Input::Tick { now, pay_grace: grace, request_timeout: timeout };
        let mut due: Vec<_> = due.into_iter().map(|r| (r, tick.clone())).collect();
        // Reservations a schedule's cancellation or a user's block missed: started as it ran.
        let since = now - store::MISSED_LOOKED_AT;
        for ending in [store::Ending::Cancelled, store::Ending::Blocked] {
            for r in store::lock_missed(&txn, ending, since, BATCH).await? {
                if due.iter().all(|(d, _)| d.id != r.id) {
                    due.push((r, ending.input()));
                }
            }
        }
        let mut changed = Vec::new();
        for (r, input) in due {
            let planned = match saga::decide(&self.outbox, input, saga::Origin::Sweep, r, None) {
                Ok(planned) => planned,
                Err(Error::Db(e)) => return Err(e),
                // Not due after all (`decide` refuses it).
                Err(_) => continue,
            };
            if planned.is_noop() {
                continue;
            }
            saga::save_locked(&txn, &self.outbox, &planned).await?;
            changed.push(planned.next.id);
        }
        self.outbox.commit(txn).await?;
        for id in &changed {
            self.local.changed(*id);
        }
        Ok(changed.len())
    }
}
