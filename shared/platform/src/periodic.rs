//! A background pass run again and again until shutdown: at once again while it has more to do,
//! after `every` when it is done, and backing off (doubling, up to 32 × `every`) while it fails.
//! The deadline sweepers are made of it.

use std::{fmt::Display, future::Future, time::Duration};
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
