//! A background pass run again and again until shutdown: at once again while it has more to do,
//! after `every` when it is done, and backing off (doubling, up to 32 × `every`) while it fails.
//! The deadline sweepers are made of it. And [`run_claims`], the workers that claim due items
//! (leases) and work on each on its own: the deliveries, the card gateway's calls.

use std::{fmt::Display, future::Future, sync::Arc, time::Duration};
use tokio::{sync::Notify, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// What one pass found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// It filled its batch: there may be more to do at once.
    More,
    /// Nothing more is due now.
    Done,
}

impl Pass {
    /// [`Pass::More`] when a pass handled a whole batch of `batch`.
    pub fn of(handled: usize, batch: usize) -> Self {
        if handled >= batch { Pass::More } else { Pass::Done }
    }
}

/// Runs `pass` until `shutdown`, as the module says; `task` names it in the logs.
pub async fn run<F, Fut, E>(task: &str, every: Duration, shutdown: CancellationToken, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Pass, E>>,
    E: Display,
{
    let mut failures = 0u32;
    loop {
        let pause = match pass().await {
            Ok(Pass::More) => Duration::ZERO,
            Ok(Pass::Done) => {
                failures = 0;
                every
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::warn!(task, error = %e, "pass failed; retrying");
                every * 2u32.pow(failures.min(5))
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    tracing::info!(task, "stopped: shutdown requested");
}

/// How a claiming worker runs ([`run_claims`]).
#[derive(Clone, Debug)]
pub struct Claims {
    /// Items worked on at once.
    pub concurrency: usize,
    /// How often due items are looked for when nothing else wakes the worker.
    pub poll: Duration,
    /// Says an item became due (the worker looks at once); none: it polls alone.
    pub wake: Option<Arc<Notify>>,
}

/// Runs a worker until `shutdown`: `claim(free)` claims up to `free` due items (each a lease,
/// so replicas share the work and an item whose worker died is due again when its lease ends),
/// and `work(item)` runs on each in a task of its own, up to `concurrency` at once: a slow item
/// holds up no other, and a finished one frees its slot for the next due item at once. A full
/// claim looks again at once; a failed one backs off (doubling the poll, up to 32 ×). On shutdown
/// it stops claiming and lets the work in flight finish, so its outcomes are recorded rather than
/// left to the leases. `task` names it in the logs.
pub async fn run_claims<T, C, CF, E, W, WF>(
    task: &str,
    claims: Claims,
    shutdown: CancellationToken,
    mut claim: C,
    work: W,
) where
    C: FnMut(usize) -> CF,
    CF: Future<Output = Result<Vec<T>, E>>,
    E: Display,
    W: Fn(T) -> WF,
    WF: Future<Output = ()> + Send + 'static,
{
    let concurrency = claims.concurrency.max(1);
    let log_panic = |done: Result<(), tokio::task::JoinError>| {
        if let Err(e) = done {
            tracing::error!(task, error = %e, "work on a claimed item panicked; it is due again when its lease ends");
        }
    };
    let woken = || async {
        match &claims.wake {
            Some(wake) => wake.notified().await,
            None => std::future::pending().await,
        }
    };
    let mut in_flight = JoinSet::new();
    let mut failures = 0u32;
    loop {
        while let Some(done) = in_flight.try_join_next() {
            log_panic(done);
        }
        let free = concurrency.saturating_sub(in_flight.len());
        let mut pause = claims.poll;
        if free > 0 {
            match claim(free).await {
                Ok(claimed) => {
                    failures = 0;
                    // A full claim means more may be due: look again at once if slots remain.
                    if claimed.len() == free {
                        pause = Duration::ZERO;
                    }
                    for item in claimed {
                        in_flight.spawn(work(item));
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    pause = claims.poll.saturating_mul(2u32.pow(failures.min(5)));
                    tracing::warn!(task, error = %e, ?pause, "claiming due items failed; retrying");
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = woken() => {}
            _ = tokio::time::sleep(pause) => {}
            // A finished item frees a slot: claim the next due one without waiting.
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => log_panic(done),
        }
    }
    while let Some(done) = in_flight.join_next().await {
        log_panic(done);
    }
    tracing::info!(task, "stopped: shutdown requested");
}
