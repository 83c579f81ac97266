//! `Prefer: wait` without polling the database in a tight loop: a request waiting for its
//! reservation to settle sleeps on a per-reservation `Notify`, which this process's consumers
//! and sweeper signal right after they commit a change. A change committed by another replica
//! cannot signal here, so waiters also look again every [`RECHECK`].

use contracts::ReservationId;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};
use tokio::sync::Notify;

/// How often a waiter re-reads the reservation even without a signal.
pub const RECHECK: Duration = Duration::from_millis(250);

/// The waiters of this process, by reservation.
#[derive(Clone, Default)]
pub struct Waiters(Arc<Mutex<HashMap<ReservationId, Arc<Notify>>>>);

impl Waiters {
    /// Wakes everyone waiting on `id` (after its change is committed).
    pub fn notify(&self, id: ReservationId) {
        let notify = self.0.lock().ok().and_then(|m| m.get(&id).cloned());
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }

    /// Registers interest in `id` until the returned guard is dropped.
    pub fn watch(&self, id: ReservationId) -> Watch {
        let notify = match self.0.lock() {
            Ok(mut m) => m.entry(id).or_default().clone(),
            Err(_) => Arc::new(Notify::new()),
        };
        Watch { waiters: self.clone(), id, notify }
    }
}

/// One waiter's registration.
pub struct Watch {
    waiters: Waiters,
    id: ReservationId,
    notify: Arc<Notify>,
}

impl Watch {
    /// The signal to wait on. Arm it (`enable`) before reading the reservation, so a change
    /// committed between the read and the wait still wakes us.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.notify.notified()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(mut m) = self.waiters.0.lock()
            && let Some(n) = m.get(&self.id)
            // The map's copy and ours: nobody else waits on this reservation.
            && Arc::strong_count(n) <= 2
        {
            m.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_signal_after_arming_is_never_lost() {
        let waiters = Waiters::default();
        let id = ReservationId::new();
        let watch = waiters.watch(id);
        {
            let notified = watch.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // The change commits between our read and our wait.
            waiters.notify(id);
            tokio::time::timeout(Duration::from_secs(1), notified).await.expect("woken");
        }
        drop(watch);
        assert!(waiters.0.lock().unwrap().is_empty(), "the entry goes with the last waiter");
    }
}
