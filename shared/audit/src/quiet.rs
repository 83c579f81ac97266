//! Whether the system is quiet: nothing waiting in an outbox, nothing waiting for a consumer,
//! no reservation open; and the wait for it.

use crate::{
    Error, checks,
    report::{ConsumerBacklog, Example, Settle},
    store,
};
use async_nats::jetstream::context::ConsumerInfoErrorKind;
use messaging::Bus;
use sea_orm::ConnectionTrait;
use std::time::Duration;
use tokio::time::Instant;

/// How often the wait for quiet looks again.
const POLL: Duration = Duration::from_millis(100);

/// One declared consumer as JetStream sees it: `None` when it (or its stream) does not exist.
pub(crate) struct ConsumerState {
    pub name: String,
    pub backlog: Option<(u64, u64)>,
}

/// Every declared consumer's pending and unacked messages.
pub(crate) async fn consumers(bus: &Bus) -> Result<Vec<ConsumerState>, Error> {
    let specs = messaging::definitions::declared_consumers(bus.ns.partitions())
        .map_err(|e| Error::nats("read the declared consumers", e))?;
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let name = spec.name();
        let stream = bus
            .js
            .get_stream_no_info(bus.ns.stream(spec.stream))
            .await
            .map_err(|e| Error::nats(&format!("look up the stream of consumer {name}"), e))?;
        let backlog = match stream.consumer_info(&name).await {
            Ok(info) => Some((info.num_pending, info.num_ack_pending as u64)),
            // Nothing can be waiting for a consumer that does not exist; the report names it.
            Err(e)
                if matches!(
                    e.kind(),
                    ConsumerInfoErrorKind::NotFound | ConsumerInfoErrorKind::StreamNotFound
                ) =>
            {
                None
            }
            Err(e) => return Err(Error::nats(&format!("read the state of consumer {name}"), e)),
        };
        out.push(ConsumerState { name, backlog });
    }
    Ok(out)
}

/// The consumers' states, summed for the report.
pub(crate) fn summed(states: &[ConsumerState]) -> ConsumerBacklog {
    let mut sum = ConsumerBacklog::default();
    for s in states {
        match s.backlog {
            Some((pending, ack_pending)) => {
                sum.consumers += 1;
                sum.pending += pending;
                sum.ack_pending += ack_pending;
            }
            None => sum.missing.push(s.name.clone()),
        }
    }
    sum
}

/// What keeps the system from being quiet: how many things, and some of them.
#[derive(Default)]
struct Busy {
    things: u64,
    examples: Vec<Example>,
}

async fn busy(db: &impl ConnectionTrait, bus: &Bus, schemas: &[String]) -> Result<Busy, Error> {
    let mut busy = Busy::default();
    for (schema, n) in store::outbox_backlog(db, schemas).await? {
        if n > 0 {
            busy.things += 1;
            let rows = if n == 1 { "row" } else { "rows" };
            busy.examples
                .push(Example { id: format!("{schema}.outbox"), detail: format!("{n} {rows} waiting") });
        }
    }
    for c in consumers(bus).await? {
        if let Some((pending, ack_pending)) = c.backlog
            && (pending > 0 || ack_pending > 0)
        {
            busy.things += 1;
            busy.examples.push(Example {
                id: format!("consumer {}", c.name),
                detail: format!("{pending} pending, {ack_pending} awaiting ack"),
            });
        }
    }
    let open =
        store::findings(db, checks::OPEN_RESERVATIONS, Vec::new(), "read the open reservations").await?;
    if let Some(first) = open.first() {
        busy.things += first.violations.unsigned_abs();
    }
    busy.examples
        .extend(open.into_iter().map(|f| Example { id: f.id, detail: format!("{} (open)", f.detail) }));
    busy.examples.truncate(10);
    Ok(busy)
}

/// Waits, looking every [`POLL`] but never past `within`, until the system is quiet at two
/// looks in a row: a look reads the outboxes, then the consumers, then the reservations, so
/// one quiet look can miss the outbox row a consumer wrote between two of its reads. When it
/// does not settle, answers what was busy at the last busy look.
pub(crate) async fn settle(
    db: &impl ConnectionTrait,
    bus: &Bus,
    schemas: &[String],
    within: Duration,
) -> Result<(Settle, u64, Vec<Example>), Error> {
    let start = Instant::now();
    let deadline = start + within;
    let mut quiet_looks = 0;
    let mut last_busy = Busy::default();
    loop {
        let look = busy(db, bus, schemas).await?;
        if look.things == 0 {
            quiet_looks += 1;
            if quiet_looks == 2 {
                return Ok((Settle::Quiet { after: start.elapsed() }, 0, Vec::new()));
            }
        } else {
            quiet_looks = 0;
            last_busy = look;
        }
        let at = Instant::now();
        if at >= deadline {
            let waited = start.elapsed();
            if last_busy.things == 0 {
                // Quiet at the one last look, but not at two in a row.
                let detail = "quiet at the last look, not at two in a row".to_owned();
                return Ok((Settle::Busy { waited }, 1, vec![Example { id: "-".into(), detail }]));
            }
            return Ok((Settle::Busy { waited }, last_busy.things, last_busy.examples));
        }
        tokio::time::sleep(POLL.min(deadline - at)).await;
    }
}
