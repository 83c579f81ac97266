//! `Prefer: wait` without polling the database in a tight loop: a request waiting for its
//! reservation to settle sleeps on a per-reservation [`Signal`], which this process's consumers
//! and sweeper signal right after they commit a change. A change committed by another replica
//! cannot signal here, so waiters also look again every [`RECHECK`].
//!
//! A consumer that settles a reservation someone waits for also offers the reservation as it
//! left it, with its timeline ([`Waiters::offer`]), so the waiter can answer without reading
//! it again. Views are ordered by the length of their timeline (every change appends to it):
//! a waiter takes only a view later than its own request's commit.

use crate::{domain::Reservation, store::TimelineEntry};
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
pub struct Waiters(Arc<Mutex<HashMap<ReservationId, Arc<Slot>>>>);

/// A reservation as a committed change left it, with its whole timeline.
#[derive(Clone, Debug)]
pub struct View {
    pub reservation: Reservation,
    pub timeline: Vec<TimelineEntry>,
}

/// What the waiters of one reservation share.
#[derive(Default)]
struct Slot {
    signal: Signal,
    /// The latest view offered (the longest timeline).
    offered: Mutex<Option<Arc<View>>>,
}

impl Waiters {
    fn slot(&self, id: ReservationId) -> Option<Arc<Slot>> {
        self.0.lock().ok().and_then(|m| m.get(&id).cloned())
    }

    /// Wakes everyone waiting on `id` (after its change is committed).
    pub fn notify(&self, id: ReservationId) {
        if let Some(slot) = self.slot(id) {
            slot.signal.raise();
        }
    }

    /// Whether anyone in this process waits on `id`.
    pub fn watched(&self, id: ReservationId) -> bool {
        self.slot(id).is_some()
    }

    /// Hands the waiters of the reservation a view of it that a commit made (before
    /// [`Waiters::notify`]); kept only if it is later than the one offered before.
    pub fn offer(&self, view: View) {
        let Some(slot) = self.slot(view.reservation.id) else { return };
        if let Ok(mut offered) = slot.offered.lock()
            && offered.as_ref().is_none_or(|o| o.timeline.len() < view.timeline.len())
        {
            *offered = Some(Arc::new(view));
        }
    }

    /// Registers interest in `id` until the returned guard is dropped. Registered before a
    /// request commits, it sees every change after that commit.
    pub fn watch(&self, id: ReservationId) -> Watch {
        let slot = match self.0.lock() {
            Ok(mut m) => m.entry(id).or_default().clone(),
            Err(_) => Arc::default(),
        };
        let since = slot.signal.count();
        Watch { waiters: self.clone(), id, slot, since }
    }
}

/// One waiter's registration.
pub struct Watch {
    waiters: Waiters,
    id: ReservationId,
    slot: Arc<Slot>,
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
        self.slot.signal.count()
    }

    /// Returns once a change after `seen` was signalled.
    pub async fn after(&self, seen: u64) {
        self.slot.signal.after(seen).await;
    }

    /// The latest view offered, if its timeline is longer than `entries` (the length of the
    /// timeline the request's own commit left): a state committed after that one.
    pub fn offered_after(&self, entries: usize) -> Option<Arc<View>> {
        let offered = self.slot.offered.lock().ok()?.clone()?;
        (offered.timeline.len() > entries).then_some(offered)
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
