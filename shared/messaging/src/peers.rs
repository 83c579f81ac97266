//! Notices between the replicas of one service ("this changed here"), for what a replica keeps
//! in memory about another's writes: who waits on them, the copies it decides on. Over core
//! NATS, not JetStream: nothing is stored or acknowledged, so a notice is only ever a hint — one
//! lost is a wake-up missed or a copy not refreshed, which whoever relies on it covers (by
//! looking again later, by a compare-and-set that refuses a stale copy). Notices that pile up
//! while one message is sent go together in the next, so a burst costs a few messages, not one
//! per notice.

use crate::Runtime;
use futures::StreamExt as _;
use std::sync::Arc;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Notices announced but not yet sent; past this, announcing drops the notice (see the module
/// docs).
const QUEUE: usize = 4096;
/// Notices in one message at most.
const PER_MESSAGE: usize = 256;

/// This replica's side of the notices on one topic.
#[derive(Clone, Debug)]
pub struct Peers {
    tx: mpsc::Sender<Vec<u8>>,
}

impl Peers {
    /// Sends this replica's notices on `<prefix>.internal.<topic>` and passes every other
    /// replica's to `hear`, until shutdown (two named tasks on `rt`). A message is the sender's
    /// id (16 bytes), then each notice as its length (4 bytes, big-endian) and its bytes.
    pub fn start(rt: &Runtime, topic: &str, hear: impl Fn(&[u8]) + Send + Sync + 'static) -> Self {
        let subject = rt.bus.ns.subject(&format!("internal.{topic}"));
        let me = Uuid::new_v4();
        let (tx, mut rx) = mpsc::channel::<Vec<u8>>(QUEUE);
        let client = rt.bus.client.clone();
        let (to, shutdown) = (subject.clone(), rt.shutdown.clone());
        rt.spawn(&format!("peers[{topic}] announce"), async move {
            let mut notices = Vec::with_capacity(PER_MESSAGE);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    n = rx.recv_many(&mut notices, PER_MESSAGE) => if n == 0 { break },
                }
                let size = notices.iter().map(|n| n.len() + 4).sum::<usize>();
                let mut body = Vec::with_capacity(16 + size);
                body.extend_from_slice(me.as_bytes());
                for notice in notices.drain(..) {
                    body.extend_from_slice(&u32::try_from(notice.len()).unwrap_or(0).to_be_bytes());
                    body.extend_from_slice(&notice);
                }
                if let Err(e) = client.publish(to.clone(), body.into()).await {
                    tracing::debug!(error = %e, "a notice to the other replicas was not sent");
                }
            }
        });
        let hear = Arc::new(hear);
        let (client, shutdown) = (rt.bus.client.clone(), rt.shutdown.clone());
        rt.spawn(&format!("peers[{topic}] hear"), async move {
            // Until it can subscribe, waiters look again on their own.
            let mut notices = loop {
                match client.subscribe(subject.clone()).await {
                    Ok(s) => break s,
                    Err(e) => {
                        tracing::warn!(error = %e, %subject, "cannot hear the other replicas yet; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        }
                    }
                }
            };
            loop {
                let message = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    m = notices.next() => match m { Some(m) => m, None => break },
                };
                let Some((sender, mut rest)) = message.payload.split_at_checked(16) else { continue };
                if sender == me.as_bytes() {
                    continue;
                }
                while let Some((len, after)) = rest.split_at_checked(4) {
                    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
                    let Some((notice, after)) = after.split_at_checked(len) else { break };
                    hear(notice);
                    rest = after;
                }
            }
        });
        Self { tx }
    }

    /// Tells the other replicas (dropped if too many notices wait to be sent).
    pub fn announce(&self, notice: Vec<u8>) {
        let _ = self.tx.try_send(notice);
    }
}
