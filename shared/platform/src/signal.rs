//! A counting in-process signal: whoever waits remembers the count it last acted on and waits
//! until the count moves. A raise between looking and waiting is never lost, and a raise whose
//! change the waiter has already seen does not wake it again (no stale wake-ups).

use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Notify;

/// Raised after a change commits; see the module docs.
#[derive(Debug, Default)]
pub struct Signal {
    count: AtomicU64,
    notify: Notify,
}

impl Signal {
    /// Counts a change and wakes everyone waiting.
    pub fn raise(&self) {
        self.count.fetch_add(1, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Changes counted so far. Read it before looking at the state the signal announces: any
    /// change the look may have missed moves the count after that.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Acquire)
    }

    /// Returns once the count is no longer `seen` (at once if it has moved already).
    pub async fn after(&self, seen: u64) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a raise in between still wakes us.
            notified.as_mut().enable();
            if self.count() != seen {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{sync::Arc, time::Duration};

    #[tokio::test]
    async fn a_raise_after_the_look_wakes_the_waiter() {
        let signal = Arc::new(Signal::default());
        let seen = signal.count();
        let raiser = signal.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            raiser.raise();
        });
        tokio::time::timeout(Duration::from_secs(5), signal.after(seen)).await.expect("woken");
    }

    #[tokio::test]
    async fn a_raise_before_the_wait_returns_at_once() {
        let signal = Signal::default();
        let seen = signal.count();
        signal.raise();
        tokio::time::timeout(Duration::from_millis(100), signal.after(seen)).await.expect("not blocked");
    }

    #[tokio::test]
    async fn a_raise_already_seen_does_not_wake_again() {
        let signal = Signal::default();
        signal.raise();
        let seen = signal.count();
        assert!(tokio::time::timeout(Duration::from_millis(50), signal.after(seen)).await.is_err());
    }
}
