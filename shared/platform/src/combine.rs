//! Write combining: requests that arrive while the ones before them are being written are
//! written together, in one statement. A statement's fixed cost (executing a plan that touches
//! several tables and their indexes, a commit, a round trip) is most of what a single small
//! write costs; under load the waiting requests share it, and without load each is written at
//! once, alone, as it would be without this.

use futures::FutureExt;
use std::{collections::VecDeque, panic::AssertUnwindSafe, sync::Arc};
use tokio::sync::{Mutex, mpsc, oneshot};

/// A kind of write that can be done for several requests at once.
pub trait Batch: Send + Sync + 'static {
    type Item: Send + Sync + 'static;
    type Output: Send + 'static;
    type Error: From<Unanswered> + From<Busy> + From<sea_orm::DbErr> + std::error::Error + Send + 'static;

    /// Whether `item` may be written together with `batch` (say, because it names nothing an
    /// item of the batch names). One that may not waits for a later batch, ahead of the
    /// requests that arrived after it.
    fn fits(&self, batch: &[Self::Item], item: &Self::Item) -> bool;

    /// Writes `batch` in one go; one output per item, in order.
    fn run(
        &self,
        batch: &[Self::Item],
    ) -> impl Future<Output = Result<Vec<Self::Output>, Self::Error>> + Send;
}

/// A request a [`Combiner`] left without an answer: its writer panicked, answered fewer outputs
/// than items, or is gone (the runtime is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the {0} writer gave no answer")]
pub struct Unanswered(pub &'static str);

/// A request a [`Combiner`] turned away at once: as many requests are waiting as it keeps. Under
/// a load its writers cannot keep up with, the queue would only grow (and each request wait
/// longer); the caller is told to come back instead ([`crate::Problem::overloaded`]).
#[derive(Debug, thiserror::Error)]
#[error("the {0} writer has as many requests waiting as it keeps; retry in a moment")]
pub struct Busy(pub &'static str);

impl From<Unanswered> for sea_orm::DbErr {
    fn from(e: Unanswered) -> Self {
        sea_orm::DbErr::Custom(e.to_string())
    }
}

type Job<B> = (<B as Batch>::Item, oneshot::Sender<Result<<B as Batch>::Output, <B as Batch>::Error>>);

/// Hands requests to writers that take, each time one is free, every request waiting that fits
/// (up to `max`) and write them with [`Batch::run`]. When a batch fails, each of its items is
/// written alone, so that one bad request fails only itself. The writers stop when the last
/// clone of the combiner is dropped.
pub struct Combiner<B: Batch> {
    name: &'static str,
    batch: Arc<B>,
    tx: mpsc::Sender<Job<B>>,
}

impl<B: Batch> Clone for Combiner<B> {
    fn clone(&self) -> Self {
        Self { name: self.name, batch: self.batch.clone(), tx: self.tx.clone() }
    }
}

/// What the writers share: the requests that arrived, and those left over for a later batch.
struct Waiting<B: Batch> {
    rx: mpsc::Receiver<Job<B>>,
    left: VecDeque<Job<B>>,
}

impl<B: Batch> Combiner<B> {
    /// Starts `writers` writers (their logs name them `name`) of batches of at most `max`, with
    /// at most `waiting` requests waiting for them (more are turned away, [`Busy`]).
    pub fn start(name: &'static str, batch: B, writers: usize, max: usize, waiting: usize) -> Self {
        let (tx, rx) = mpsc::channel(waiting.max(1));
        let waiting = Arc::new(Mutex::new(Waiting::<B> { rx, left: VecDeque::new() }));
        let batch = Arc::new(batch);
        for _ in 0..writers.max(1) {
            let (waiting, batch) = (waiting.clone(), batch.clone());
            tokio::spawn(async move {
                while let Some(jobs) = take(&waiting, &*batch, max.max(1)).await {
                    write(name, &*batch, jobs).await;
                }
                tracing::debug!(writer = name, "every sender is gone; the writer stops");
            });
        }
        Self { name, batch, tx }
    }

    /// What it writes with.
    pub fn batch(&self) -> &B {
        &self.batch
    }

    /// Writes `item` with whatever else is waiting, and answers its output; [`Busy`] at once
    /// when as many requests are waiting as the combiner keeps.
    pub async fn run(&self, item: B::Item) -> Result<B::Output, B::Error> {
        let (answer, answered) = oneshot::channel();
        self.tx.try_send((item, answer)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                metrics::counter!("combiner_busy_total", "writer" => self.name).increment(1);
                B::Error::from(Busy(self.name))
            }
            mpsc::error::TrySendError::Closed(_) => B::Error::from(Unanswered(self.name)),
        })?;
        answered.await.map_err(|_| Unanswered(self.name))?
    }
}

/// A batch being written: its items, and where each one's output goes.
struct Jobs<B: Batch> {
    items: Vec<B::Item>,
    answers: Vec<oneshot::Sender<Result<B::Output, B::Error>>>,
}

/// The next batch: waits for a first request, then takes every waiting one that fits, those
/// left over from an earlier batch first (in their order), then the new arrivals. `None` once
/// every sender is gone and nothing is left.
async fn take<B: Batch>(waiting: &Mutex<Waiting<B>>, batch: &B, max: usize) -> Option<Jobs<B>> {
    let mut w = waiting.lock().await;
    let (item, answer) = match w.left.pop_front() {
        Some(job) => job,
        None => w.rx.recv().await?,
    };
    let mut jobs = Jobs::<B> { items: vec![item], answers: vec![answer] };
    let mut arrived = std::mem::take(&mut w.left);
    let mut left = VecDeque::new();
    while jobs.items.len() < max {
        let Some((item, answer)) = arrived.pop_front().or_else(|| w.rx.try_recv().ok()) else { break };
        if batch.fits(&jobs.items, &item) {
            jobs.items.push(item);
            jobs.answers.push(answer);
        } else {
            left.push_back((item, answer));
        }
    }
    left.append(&mut arrived);
    w.left = left;
    Some(jobs)
}

/// Writes `jobs` together, or each alone if that fails, and answers each.
async fn write<B: Batch>(name: &'static str, batch: &B, jobs: Jobs<B>) {
    let Jobs { items, answers } = jobs;
    let failed = match run(name, batch, &items).await {
        Ok(outputs) => {
            for (answer, output) in answers.into_iter().zip(outputs) {
                let _ = answer.send(Ok(output));
            }
            return;
        }
        Err(e) => e,
    };
    if items.len() == 1 {
        if let Some(answer) = answers.into_iter().next() {
            let _ = answer.send(Err(failed));
        }
        return;
    }
    if crate::pools::no_connection(&failed) {
        // No database connection came free in time, and nothing was written: alone, each
        // would wait as long again, one after the other. Each is told at once, as the batch was.
        for answer in answers {
            let _ =
                answer.send(Err(sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout).into()));
        }
        return;
    }
    // A batch whose connection broke mid-statement may have been written: an item then told
    // "no connection, nothing done" by its write alone would be told wrong.
    let maybe_written = !crate::pools::nothing_done(&failed);
    drop(failed);
    tracing::debug!(writer = name, items = items.len(), "a batch failed; each of its items is written alone");
    for (item, answer) in items.iter().zip(answers) {
        let alone = match run(name, batch, std::slice::from_ref(item)).await {
            Err(e) if maybe_written && crate::pools::no_connection(&e) => Err(Unanswered(name).into()),
            alone => alone,
        };
        let _ = answer.send(alone.and_then(|mut o| o.pop().ok_or_else(|| Unanswered(name).into())));
    }
}

/// [`Batch::run`], with a panic or a missing output turned into an error (so the writer goes
/// on with the next batch).
async fn run<B: Batch>(name: &'static str, batch: &B, items: &[B::Item]) -> Result<Vec<B::Output>, B::Error> {
    match AssertUnwindSafe(batch.run(items)).catch_unwind().await {
        Ok(Ok(outputs)) if outputs.len() == items.len() => Ok(outputs),
        Ok(Err(e)) => Err(e),
        Ok(Ok(_)) | Err(_) => {
            tracing::error!(writer = name, "a batch write panicked or answered a wrong number of outputs");
            Err(Unanswered(name).into())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;
    use std::sync::Mutex as StdMutex;
    use tokio::sync::Semaphore;

    /// Writes numbers: records each batch, waits for a permit per batch, fails a batch holding
    /// 13, finds no database connection for one holding 99 (or for 96 alone) and loses its
    /// connection mid-statement for one holding 85 with others, and panics on one holding 666;
    /// two numbers of one tens never share a batch.
    struct Numbers {
        batches: StdMutex<Vec<Vec<u32>>>,
        permits: Semaphore,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failed(String, #[source] Option<sea_orm::DbErr>);

    impl From<sea_orm::DbErr> for Failed {
        fn from(e: sea_orm::DbErr) -> Self {
            Failed(e.to_string(), Some(e))
        }
    }

    impl From<Unanswered> for Failed {
        fn from(e: Unanswered) -> Self {
            Failed(e.to_string(), None)
        }
    }

    impl From<Busy> for Failed {
        fn from(e: Busy) -> Self {
            Failed(e.to_string(), None)
        }
    }

    impl Batch for Arc<Numbers> {
        type Item = u32;
        type Output = u32;
        type Error = Failed;

        fn fits(&self, batch: &[u32], item: &u32) -> bool {
            !batch.iter().any(|n| n / 10 == item / 10)
        }

        async fn run(&self, batch: &[u32]) -> Result<Vec<u32>, Failed> {
            self.permits.acquire().await.unwrap().forget();
            self.batches.lock().unwrap().push(batch.to_vec());
            assert!(!batch.contains(&666), "a writer that panics");
            if batch.contains(&13) {
                return Err(Failed("13 is refused".into(), None));
            }
            if batch.contains(&99) || batch == [96] {
                return Err(sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout).into());
            }
            if batch.contains(&85) && batch.len() > 1 {
                let lost = sea_orm::sqlx::Error::Io(std::io::ErrorKind::ConnectionReset.into());
                return Err(sea_orm::DbErr::Query(sea_orm::RuntimeErr::SqlxError(lost.into())).into());
            }
            Ok(batch.iter().map(|n| n * 2).collect())
        }
    }

    /// Submits `items` one after the other (each is queued before the next), then lets the
    /// writer go; answers the outputs in the order submitted, and the batches written.
    async fn write_all(items: &[u32]) -> (Vec<Result<u32, String>>, Vec<Vec<u32>>) {
        let numbers = Arc::new(Numbers { batches: StdMutex::default(), permits: Semaphore::new(0) });
        let combiner = Combiner::start("numbers", numbers.clone(), 1, 4, 64);
        let mut runs = Vec::new();
        for &n in items {
            let combiner = combiner.clone();
            runs.push(tokio::spawn(async move { combiner.run(n).await.map_err(|e| e.0) }));
            tokio::task::yield_now().await;
        }
        numbers.permits.add_permits(100);
        let mut outputs = Vec::new();
        for run in runs {
            outputs.push(run.await.unwrap());
        }
        let batches = numbers.batches.lock().unwrap().clone();
        (outputs, batches)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_that_wait_are_written_together_up_to_the_limit() {
        let (outputs, batches) = write_all(&[1, 20, 30, 40, 50, 60, 70]).await;
        assert_eq!(outputs, [2, 40, 60, 80, 100, 120, 140].map(Ok));
        // The first is taken alone (nothing else waited yet); the rest, four at most at once.
        assert_eq!(batches, [vec![1], vec![20, 30, 40, 50], vec![60, 70]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_that_does_not_fit_waits_for_a_later_batch_ahead_of_later_arrivals() {
        let (outputs, batches) = write_all(&[1, 20, 21, 30, 22, 40]).await;
        assert_eq!(outputs, [2, 40, 42, 60, 44, 80].map(Ok));
        assert_eq!(batches, [vec![1], vec![20, 30, 40], vec![21], vec![22]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn when_a_batch_fails_each_request_is_written_alone_and_only_the_bad_one_fails() {
        let (outputs, batches) = write_all(&[1, 13, 20, 666, 30]).await;
        assert_eq!(outputs[0], Ok(2));
        assert_eq!(outputs[1], Err("13 is refused".to_owned()));
        assert_eq!(outputs[2], Ok(40));
        assert_eq!(outputs[3], Err("the numbers writer gave no answer".to_owned()), "a panic is an error");
        assert_eq!(outputs[4], Ok(60), "the writer goes on after a panic");
        assert_eq!(batches, [vec![1], vec![13, 20, 666, 30], vec![13], vec![20], vec![666], vec![30]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_batch_that_found_no_database_connection_is_not_written_again_request_by_request() {
        let (outputs, batches) = write_all(&[1, 20, 99, 30]).await;
        assert_eq!(outputs[0], Ok(2));
        let none = sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout).to_string();
        assert_eq!(outputs[1..], [Err(none.clone()), Err(none.clone()), Err(none)]);
        assert_eq!(batches, [vec![1], vec![20, 99, 30]], "each is told at once, none waits again alone");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_request_of_a_batch_that_may_have_been_written_is_not_told_nothing_was_done() {
        // The batch of 85, 96 and 72 lost its connection mid-statement; written alone, 85 and 72
        // are written, and 96 finds no connection: it may have been written by the batch.
        let (outputs, batches) = write_all(&[1, 85, 96, 72]).await;
        assert_eq!(outputs[0], Ok(2));
        assert_eq!(outputs[1], Ok(170));
        assert_eq!(outputs[2], Err("the numbers writer gave no answer".to_owned()), "not: nothing was done");
        assert_eq!(outputs[3], Ok(144));
        assert_eq!(batches, [vec![1], vec![85, 96, 72], vec![85], vec![96], vec![72]]);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn requests_beyond_those_it_keeps_waiting_are_turned_away_at_once() {
        let numbers = Arc::new(Numbers { batches: StdMutex::default(), permits: Semaphore::new(0) });
        let combiner = Combiner::start("numbers", numbers.clone(), 1, 1, 2);
        let mut runs = Vec::new();
        // The writer takes the first and waits; two more wait for it; the fourth is one too many.
        for n in [1, 2, 3] {
            let combiner = combiner.clone();
            runs.push(tokio::spawn(async move { combiner.run(n).await.map_err(|e| e.0) }));
            tokio::task::yield_now().await;
        }
        let refused = combiner.run(4).await.map_err(|e| e.0);
        assert_eq!(refused, Err(Busy("numbers").to_string()));
        numbers.permits.add_permits(100);
        for (run, n) in runs.into_iter().zip([1, 2, 3]) {
            assert_eq!(run.await.unwrap(), Ok(n * 2), "those kept are written");
        }
        assert_eq!(combiner.run(5).await.map_err(|e| e.0), Ok(10), "and room is made again");
    }
}
