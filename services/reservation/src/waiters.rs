//! `Prefer: wait` without polling the database in a tight loop: a request waiting for its
//! reservation to settle sleeps on a per-reservation [`Signal`], which this process's consumers
//! and sweeper signal right after they commit a change. A change committed by another replica
//! cannot signal here, so waiters also look again every [`RECHECK`].

use contracts::ReservationId;
use platform::signal::Signal;
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

/// How often a waiter re-reads the reservation even without a signal.
pub const RECHECK: Duration = Duration::from_millis(250);

/// The waiters of this process, by reservation.
#[derive(Clone, Default)]
pub struct Waiters(Arc<Mutex<HashMap<ReservationId, Arc<Signal>>>>);

impl Waiters {
    /// Wakes everyone waiting on `id` (after its change is committed).
    pub fn notify(&self, id: ReservationId) {
        let signal = self.0.lock().ok().and_then(|m| m.get(&id).cloned());
        if let Some(s) = signal {
            s.raise();
        }
    }

    /// Registers interest in `id` until the returned guard is dropped. Registered before a
    /// request commits, it sees every change after that commit.
    pub fn watch(&self, id: ReservationId) -> Watch {
        let signal = match self.0.lock() {
            Ok(mut m) => m.entry(id).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let since = signal.count();
        Watch { waiters: self.clone(), id, signal, since }
    }
}

/// One waiter's registration.
pub struct Watch {
    waiters: Waiters,
    id: ReservationId,
    signal: Arc<Signal>,
    since: u64,
}

impl Watch {
    /// The reservation watched.
    pub fn id(&self) -> ReservationId {
        self.id
    }

    /// The count when the watch was registered: every change signalled later moves it.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// Changes signalled so far: read it before reading the reservation, then wait
    /// [`Watch::after`] it, so a change committed in between still wakes us.
    pub fn count(&self) -> u64 {
        self.signal.count()
    }

    /// Returns once a change after `seen` was signalled.
    pub async fn after(&self, seen: u64) {
        self.signal.after(seen).await;
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
    async fn a_signal_after_the_look_is_never_lost() {
        let waiters = Waiters::default();
        let id = ReservationId::new();
        let watch = waiters.watch(id);
        let seen = watch.count();
        // The change commits between our read and our wait.
        waiters.notify(id);
        tokio::time::timeout(Duration::from_secs(1), watch.after(seen)).await.expect("woken");
        drop(watch);
        assert!(waiters.0.lock().unwrap().is_empty(), "the entry goes with the last waiter");
    }
}
