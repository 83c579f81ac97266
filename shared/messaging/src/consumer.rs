//! Idempotent consumers: a durable pull consumer per `(service, stream)`; each message's effect
//! is applied exactly once (Postgres inbox row or Redis script, in the same transaction as the
//! effect), acked only after that commit, NAKed with a delay on transient errors, and sent to the
//! dead-letter stream (then `Term`ed) when it cannot be decoded, fails permanently, or fails on
//! its last delivery. A supervisor recreates the consumer and its message stream after errors.

use crate::{Bus, MessagingError, dlq};
use async_nats::jetstream::{
    self, AckKind,
    consumer::{PullConsumer, pull},
};
use contracts::{DecodeError, Envelope, EnvelopeMeta, Event, Partitions, Stream};
use futures::{StreamExt, TryStreamExt};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, Statement, TransactionTrait,
};
use std::{future::Future, sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// An event as a handler sees it: the decoded envelope (payload still raw) and where it came from.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The subject without namespace prefix, e.g. `seat.0.reserved`.
    pub subject: String,
    pub envelope: Envelope<serde_json::Value>,
    pub stream_sequence: u64,
    /// 1 on first delivery.
    pub deliveries: u64,
}

impl Incoming {
    /// `event` as a consumer is given it on its first delivery: for tests and tools that apply
    /// events without the bus.
    pub fn first_delivery<E: Event>(event: &Envelope<E>) -> Result<Self, serde_json::Error> {
        Ok(Self {
            subject: contracts::Partitions::ONE.subject(&event.payload),
            envelope: serde_json::from_value(serde_json::to_value(event)?)?,
            stream_sequence: 0,
            deliveries: 1,
        })
    }

    /// The envelope without its payload.
    pub fn meta(&self) -> EnvelopeMeta {
        self.envelope.meta()
    }

    /// The event type, e.g. `SeatReserved`.
    pub fn kind(&self) -> &str {
        &self.envelope.kind
    }

    /// A string field of the payload parsed as `T` (an id every event of a kind names), without
    /// decoding the whole payload; `None` if absent or malformed.
    pub fn payload_field<T: std::str::FromStr>(&self, field: &str) -> Option<T> {
        self.envelope.payload.get(field)?.as_str()?.parse().ok()
    }

    /// Decodes the payload as `E`; a mismatch is permanent (the message goes to the DLQ).
    pub fn decode<E: Event>(&self) -> Result<Envelope<E>, HandleError> {
        self.envelope.clone().decode::<E>().map_err(HandleError::from)
    }
}

/// How handling a message failed.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    /// Worth retrying later (a database or network hiccup, a lock conflict).
    #[error("transient: {0}")]
    Transient(String),
    /// Will never succeed (malformed payload, impossible state); goes to the DLQ at once.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<DbErr> for HandleError {
    /// Permanent when Postgres refused the data itself (SQLSTATE class 22, a data exception, or
    /// 23, an integrity constraint violation): the same event would be refused on every
    /// delivery, so it goes to the dead-letter stream at once. Anything else (a lost
    /// connection, a deadlock, a serialization failure) is worth retrying.
    fn from(e: DbErr) -> Self {
        match sqlstate(&e) {
            Some(code) if code.starts_with("22") || code.starts_with("23") => {
                HandleError::Permanent(format!("database refused the event's data (SQLSTATE {code}): {e}"))
            }
            _ => HandleError::Transient(format!("database: {e}")),
        }
    }
}

/// The SQLSTATE of an error Postgres answered, if it was one.
fn sqlstate(e: &DbErr) -> Option<String> {
    platform::pools::database_error(e)?.code().map(|c| c.into_owned())
}

impl From<DecodeError> for HandleError {
    fn from(e: DecodeError) -> Self {
        HandleError::Permanent(e.to_string())
    }
}

impl From<redis::RedisError> for HandleError {
    fn from(e: redis::RedisError) -> Self {
        HandleError::Transient(format!("redis: {e}"))
    }
}

/// Whether an effect was applied now, had been applied before, or does not concern the consumer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    Done,
    Duplicate,
    /// The consumer does not handle this event type (no transaction, no inbox row).
    Ignored,
}

/// A service's reaction to events, run inside the transaction that also records the event id.
pub trait Handler: Send + Sync + 'static {
    /// Whether this handler reacts to events of type `kind`. A consumer sees every event of its
    /// stream (NATS 2.9 has no multi-filter consumers); the others are acked without a transaction.
    fn handles(&self, kind: &str) -> bool {
        let _ = kind;
        true
    }

    /// Applies the event's effect through `txn`. Writing outbox rows through `txn` makes the
    /// follow-up events part of the same commit.
    fn handle<'a>(
        &'a self,
        txn: &'a DatabaseTransaction,
        msg: &'a Incoming,
    ) -> impl Future<Output = Result<(), HandleError>> + Send + 'a;

    /// Runs once the effect of `msg` is committed (and visible to other connections): the place
    /// to wake in-process waiters. Not run for duplicates or failures.
    fn after_commit(&self, msg: &Incoming) {
        let _ = msg;
    }

    /// Applies those of `msgs` it can in one statement of its own, outside a transaction (one
    /// round trip where a transaction takes at least four): a [`crate::BatchWrite`] that claims
    /// `claims` for the events it applies. Answers their positions in `msgs` (from 1, as the
    /// statement counts them). A single event comes as a batch of one: one path for both. An
    /// event applied before makes the whole statement fail on the inbox's key, and nothing of
    /// it stays. The events not answered (all of them on an error) are applied as
    /// [`Handler::handle`] says, in one transaction, which also tells duplicates apart.
    fn at_once_each<'a>(
        &'a self,
        db: &'a DatabaseConnection,
        claims: &'a InboxClaims<'a>,
        msgs: &'a [Incoming],
    ) -> impl Future<Output = Result<Vec<i64>, HandleError>> + Send + 'a {
        let _ = (db, claims, msgs);
        async { Ok(Vec::new()) }
    }
}

/// A consumer's inbox rows for a batch of events, to be written by the statement that applies
/// some of them ([`Handler::at_once_each`]).
#[derive(Clone, Debug)]
pub struct InboxClaims<'a> {
    schema: &'a str,
    consumer: &'a str,
    events: Vec<uuid::Uuid>,
}

impl<'a> InboxClaims<'a> {
    /// The rows of `events` (in batch order) for `consumer`'s inbox in `<schema>.inbox`.
    pub fn new(schema: &'a str, consumer: &'a str, events: Vec<uuid::Uuid>) -> Self {
        Self { schema, consumer, events }
    }

    /// `claimed AS (INSERT INTO <schema>.inbox ..)` for [`crate::BatchWrite`], writing the rows
    /// of the events whose position (in the batch, from 1) is an `i` of `from` (an expression
    /// of the statement, e.g. a CTE's `RETURNING`, with each `i` once), its values appended to
    /// the statement's `values`. No `ON CONFLICT`: an event applied before makes the whole statement fail.
    pub(crate) fn cte(&self, from: &str, values: &mut Vec<sea_orm::Value>) -> String {
        let n = values.len() + 1;
        values.push(self.consumer.into());
        values.push(self.events.clone().into());
        format!(
            "claimed AS (INSERT INTO {}.inbox (consumer, event_id) SELECT ${n}, c.event_id \
             FROM unnest(${}::uuid[]) WITH ORDINALITY AS c(event_id, i) WHERE c.i IN (SELECT i FROM {from}))",
            self.schema,
            n + 1
        )
    }

    /// The positions a statement applied, as it answers them in its `i` column.
    pub(crate) fn positions(rows: &[sea_orm::QueryResult]) -> Result<Vec<i64>, DbErr> {
        #[derive(sea_orm::FromQueryResult)]
        struct Position {
            i: i64,
        }
        rows.iter().map(|r| Ok(<Position as sea_orm::FromQueryResult>::from_query_result(r, "")?.i)).collect()
    }
}

/// Applies a message's effect at most once per consumer. Implemented by [`PgInbox`] and
/// [`crate::RedisInbox`]; the consumer loop is the same for both.
pub trait Apply: Send + Sync + 'static {
    /// Whether it reacts to events of type `kind` (its handler's `handles`).
    fn handles(&self, kind: &str) -> bool;

    /// Applies the effect unless `consumer` has applied this event before.
    fn apply<'a>(
        &'a self,
        consumer: &'a str,
        msg: &'a Incoming,
    ) -> impl Future<Output = Result<Applied, HandleError>> + Send + 'a;

    /// Applies several messages, each at most once; one outcome per message, in order. By
    /// default one after the other, each on its own.
    fn apply_batch<'a>(
        &'a self,
        consumer: &'a str,
        msgs: &'a [Incoming],
    ) -> impl Future<Output = Vec<Result<Applied, HandleError>>> + Send + 'a {
        one_by_one(self, consumer, msgs)
    }
}

/// Applies each of `msgs` on its own, in order.
async fn one_by_one<A: Apply + ?Sized, M: std::borrow::Borrow<Incoming> + Sync>(
    apply: &A,
    consumer: &str,
    msgs: &[M],
) -> Vec<Result<Applied, HandleError>> {
    let mut outcomes = Vec::with_capacity(msgs.len());
    for msg in msgs {
        outcomes.push(apply.apply(consumer, msg.borrow()).await);
    }
    outcomes
}

/// The Postgres flavour: `(consumer, event id)` goes into `<schema>.inbox` in the handler's
/// transaction, so a redelivered event finds its row and changes nothing.
pub struct PgInbox<H> {
    db: DatabaseConnection,
    schema: String,
    handler: H,
    /// The outbox the handler writes to, whose relay each commit wakes.
    outbox: Option<crate::Outbox>,
}

impl<H: Handler> PgInbox<H> {
    /// Runs `handler` against `db`, recording events in `<schema>.inbox`; for handlers that
    /// publish nothing.
    pub fn new(db: DatabaseConnection, schema: &str, handler: H) -> Self {
        Self { db, schema: schema.to_owned(), handler, outbox: None }
    }

    /// Runs `handler`, which writes events to `outbox`, recording events in the outbox's schema's
    /// inbox; every commit wakes the outbox's relay.
    pub fn publishing(db: DatabaseConnection, outbox: &crate::Outbox, handler: H) -> Self {
        Self { db, schema: outbox.schema().to_owned(), handler, outbox: Some(outbox.clone()) }
    }

    async fn commit(&self, txn: DatabaseTransaction) -> Result<(), DbErr> {
        txn.commit().await?;
        self.committed();
        Ok(())
    }

    /// Wakes this process's relay of the handler's outbox (if it has one) after a commit.
    fn committed(&self) {
        if let Some(outbox) = &self.outbox {
            outbox.committed();
        }
    }

    /// All of `msgs` in one transaction: one inbox statement, then the handler for each event
    /// not seen before (a redelivery in the same batch counts once); events the handler does not
    /// take are ignored without a transaction. Fails as a whole.
    async fn apply_together(&self, consumer: &str, msgs: &[&Incoming]) -> Result<Vec<Applied>, HandleError> {
        let span = tracing::info_span!(
            "transaction",
            db.system = "postgresql",
            messages = msgs.len(),
            otel.kind = "client"
        );
        self.apply_in_transaction(consumer, msgs).instrument(span).await
    }

    async fn apply_in_transaction(
        &self,
        consumer: &str,
        msgs: &[&Incoming],
    ) -> Result<Vec<Applied>, HandleError> {
        let mut outcomes: Vec<Applied> = msgs
            .iter()
            .map(|m| if self.handler.handles(m.kind()) { Applied::Duplicate } else { Applied::Ignored })
            .collect();
        let ids: Vec<uuid::Uuid> = msgs
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| **o == Applied::Duplicate)
            .map(|(m, _)| m.envelope.id.0)
            .collect();
        if ids.is_empty() {
            return Ok(outcomes);
        }
        /// An inbox row the statement wrote.
        #[derive(sea_orm::FromQueryResult)]
        struct Claimed {
            event_id: uuid::Uuid,
        }
        let txn = self.db.begin().await?;
        let mut fresh = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!(
                    "INSERT INTO {}.inbox (consumer, event_id) SELECT $1, unnest($2::uuid[]) \
                     ON CONFLICT DO NOTHING RETURNING event_id",
                    self.schema
                ),
                [consumer.into(), ids.into()],
            ))
            .await?
            .iter()
            .map(|r| Ok(<Claimed as sea_orm::FromQueryResult>::from_query_result(r, "")?.event_id))
            .collect::<Result<std::collections::HashSet<_>, DbErr>>()?;
        for (msg, outcome) in msgs.iter().zip(outcomes.iter_mut()) {
            if *outcome == Applied::Duplicate && fresh.remove(&msg.envelope.id.0) {
                self.handler.handle(&txn, msg).await?;
                *outcome = Applied::Done;
            }
        }
        if !outcomes.contains(&Applied::Done) {
            // Every event had been applied before: nothing to keep, no relay to wake.
            txn.rollback().await?;
            return Ok(outcomes);
        }
        self.commit(txn).await?;
        for (msg, outcome) in msgs.iter().zip(&outcomes) {
            if *outcome == Applied::Done {
                self.handler.after_commit(msg);
            }
        }
        Ok(outcomes)
    }

    /// After a statement of the handler applied `applied` outside a transaction: counts them,
    /// wakes the relay and runs their [`Handler::after_commit`].
    fn applied_at_once(&self, consumer: &str, applied: &[&Incoming]) {
        metrics::counter!("consumer_applied_at_once_total", "consumer" => consumer.to_owned())
            .increment(applied.len() as u64);
        self.committed();
        for msg in applied {
            self.handler.after_commit(msg);
        }
    }

    /// The handler's one statement for those of `msgs` it can apply so
    /// ([`Handler::at_once_each`]); whether each was applied.
    async fn at_once_each(&self, consumer: &str, msgs: &[Incoming]) -> Vec<bool> {
        let mut done = vec![false; msgs.len()];
        let claims = InboxClaims::new(&self.schema, consumer, msgs.iter().map(|m| m.envelope.id.0).collect());
        match self.handler.at_once_each(&self.db, &claims, msgs).await {
            Ok(applied) if !applied.is_empty() => {
                for position in applied {
                    if let Some(d) = usize::try_from(position - 1).ok().and_then(|i| done.get_mut(i)) {
                        *d = true;
                    }
                }
                let applied: Vec<&Incoming> =
                    msgs.iter().zip(&done).filter(|(_, d)| **d).map(|(m, _)| m).collect();
                self.applied_at_once(consumer, &applied);
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "applying a batch at once failed; applying it in a transaction")
            }
        }
        done
    }
}

impl<H: Handler> Apply for PgInbox<H> {
    fn handles(&self, kind: &str) -> bool {
        self.handler.handles(kind)
    }

    /// What the handler can apply in one statement ([`Handler::at_once_each`]), then the rest in
    /// one transaction; if that fails, each of the rest again on its own, so one bad message
    /// fails (or is dead-lettered) alone.
    async fn apply_batch(&self, consumer: &str, msgs: &[Incoming]) -> Vec<Result<Applied, HandleError>> {
        if msgs.len() <= 1 {
            return one_by_one(self, consumer, msgs).await;
        }
        let done = self.at_once_each(consumer, msgs).await;
        let rest: Vec<&Incoming> = msgs.iter().zip(&done).filter(|(_, d)| !**d).map(|(m, _)| m).collect();
        let rest = match rest.as_slice() {
            [] => Vec::new(),
            [one] => vec![self.apply(consumer, one).await],
            many => match self.apply_together(consumer, many).await {
                Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                Err(e) => {
                    metrics::counter!("consumer_batches_split_total", "consumer" => consumer.to_owned())
                        .increment(1);
                    tracing::info!(error = %e, n = many.len(), "batch failed; applying its messages one by one");
                    one_by_one(self, consumer, many).await
                }
            },
        };
        let mut rest = rest.into_iter();
        done.into_iter()
            .map(|d| if d { Ok(Applied::Done) } else { rest.next().unwrap_or(Ok(Applied::Ignored)) })
            .collect()
    }

    /// In one statement if the handler can ([`Handler::at_once_each`], a batch of one),
    /// otherwise in a transaction.
    async fn apply(&self, consumer: &str, msg: &Incoming) -> Result<Applied, HandleError> {
        if self.handler.handles(msg.kind())
            && self.at_once_each(consumer, std::slice::from_ref(msg)).await.first() == Some(&true)
        {
            return Ok(Applied::Done);
        }
        let outcomes = self.apply_together(consumer, &[msg]).await?;
        Ok(outcomes.first().copied().unwrap_or(Applied::Ignored))
    }
}

/// One durable consumer: who consumes, from which stream, and how hard it retries.
#[derive(Clone, Debug)]
pub struct ConsumerSpec {
    pub service: String,
    pub stream: Stream,
    /// Unprefixed subject filter; the whole stream when `None`.
    pub filter_subject: Option<String>,
    /// Set when the service consumes the stream through several consumers, one per subject:
    /// what tells this one's name apart ([`ConsumerSpec::name`]).
    pub part: Option<String>,
    /// The partition whose events alone this consumer takes (a partitioned service's, with
    /// several partitions): its filter names it in place of the pattern's `*`. `None`: every
    /// partition.
    pub partition: Option<u16>,
    /// JetStream settings (durable name and filter are filled in by [`ConsumerSpec::ensure`]).
    pub config: pull::Config,
    /// NAK delay after the n-th failed delivery (the last entry repeats).
    pub nak_delays: Vec<Duration>,
    /// Deliveries a message is given before it is dead-lettered: a transient failure on the
    /// last is dead-lettered, and a delivery past it (the ones before crashed or timed out, or
    /// the dead letter could not be written) is dead-lettered without being handled again.
    pub attempts: u64,
    /// Messages handled at once.
    pub concurrency: usize,
    /// Messages applied together in one transaction at most, from those already arrived; 1
    /// applies each on its own.
    pub batch: usize,
}

impl ConsumerSpec {
    /// The consumers declared for `(service, stream)` in `nats/consumers.json`: one per filter
    /// subject, so that the server delivers only the events the service handles (NATS 2.9 has
    /// no multi-filter consumers, and a wider filter costs a delivery and an ack for each event
    /// the handler would only ignore). Run them with one handler: they share its inbox.
    /// With one partition; a service takes its own with [`crate::Runtime::declared`].
    pub fn declared(service: &str, stream: Stream) -> Result<Vec<Self>, MessagingError> {
        Self::declared_in(service, stream, Partitions::ONE)
    }

    /// The consumers declared for `(service, stream)` with the events spread over `partitions`:
    /// a partitioned service's, one per partition when there are several.
    pub fn declared_in(
        service: &str,
        stream: Stream,
        partitions: Partitions,
    ) -> Result<Vec<Self>, MessagingError> {
        let entry = crate::definitions::consumer_entries()?
            .into_iter()
            .find(|e| e.service == service && e.stream == stream.name())
            .ok_or_else(|| {
                MessagingError::NotFound(format!("no consumer {service}__{stream} in nats/consumers.json"))
            })?;
        Self::of_entry(&entry, stream, partitions)
    }

    /// The consumers of one `nats/consumers.json` entry, whose stream is `stream`.
    pub(crate) fn of_entry(
        entry: &crate::definitions::ConsumerEntry,
        stream: Stream,
        partitions: Partitions,
    ) -> Result<Vec<Self>, MessagingError> {
        let service = entry.service.as_str();
        let filters: Vec<Option<&str>> = match entry.filter_subjects.as_slice() {
            [] => vec![None],
            subjects => subjects.iter().map(|s| Some(s.as_str())).collect(),
        };
        let parted = filters.len() > 1;
        let each: Vec<Option<u16>> = if entry.partitioned && partitions.count() > 1 {
            (0..partitions.count()).map(Some).collect()
        } else {
            vec![None]
        };
        let mut specs = Vec::with_capacity(each.len() * filters.len());
        for partition in each {
            for filter in &filters {
                let mut spec = Self::new(service, stream, *filter)?;
                spec.part = filter.filter(|_| parted).map(part_of);
                spec.partition = partition;
                if let Some(batch) = entry.batch {
                    // One batch at a time: what arrives meanwhile makes the next one, so batches
                    // grow with the load instead of each message taking a transaction of its own.
                    spec.batch = batch.max(1);
                    spec.concurrency = 1;
                }
                specs.push(spec);
            }
        }
        Ok(specs)
    }

    /// A consumer with the shared defaults (for tools and tests; services use [`Self::declared`]).
    pub fn new(service: &str, stream: Stream, filter_subject: Option<&str>) -> Result<Self, MessagingError> {
        Ok(Self {
            service: service.to_owned(),
            stream,
            filter_subject: filter_subject.map(str::to_owned),
            part: None,
            partition: None,
            config: crate::definitions::consumer_defaults()?,
            nak_delays: [100, 500, 2_000, 5_000, 10_000].map(Duration::from_millis).to_vec(),
            attempts: crate::definitions::consumer_attempts()?,
            concurrency: 32,
            batch: 1,
        })
    }

    /// The durable consumer's name: `<service>__<STREAM>`, followed by `__<part>` when the
    /// service consumes the stream through one consumer per subject
    /// (`seat__RESERVATION__requested`), and by `__p<n>` when it takes partition n alone
    /// (`seat__RESERVATION__requested__p1`).
    pub fn name(&self) -> String {
        let name = match &self.part {
            None => self.inbox(),
            Some(part) => format!("{}__{part}", self.inbox()),
        };
        match self.partition {
            None => name,
            Some(p) => format!("{name}__p{p}"),
        }
    }

    /// The unprefixed filter the server applies: the declared one, with this consumer's
    /// partition in place of a pattern's `*` (`reservation.1.requested`).
    pub fn filter(&self) -> Option<String> {
        let filter = self.filter_subject.as_deref()?;
        Some(match self.partition {
            Some(p) => contracts::in_partition(filter, &p.to_string()),
            None => filter.to_owned(),
        })
    }

    /// The name the service's inbox records applied events under: `<service>__<STREAM>`, the
    /// same for every consumer of the stream, so an event is applied once per service whichever
    /// consumer it comes through (and the names of inbox rows written before a split hold).
    pub fn inbox(&self) -> String {
        format!("{}__{}", self.service, self.stream.name())
    }

    /// Whether this consumer is given messages published on `subject` (unprefixed). In an event's
    /// subject pattern, the `*` stands for any partition: a consumer of one partition is given
    /// some of them.
    pub fn receives(&self, subject: &str) -> bool {
        self.filter().is_none_or(|filter| subject_matches(&filter, subject))
    }

    /// Creates the durable consumer if it does not exist, and returns it.
    pub async fn ensure(&self, bus: &Bus) -> Result<PullConsumer, MessagingError> {
        let (stream, config) = self.declared_on(bus).await?;
        stream
            .get_or_create_consumer(&self.name(), config)
            .await
            .map_err(|e| MessagingError::js("create consumer", e))
    }

    /// Creates the durable consumer, or brings one that exists to this configuration
    /// (`ticketing nats apply`, after `nats/consumers.json` changed).
    pub async fn apply(&self, bus: &Bus) -> Result<(), MessagingError> {
        let (stream, config) = self.declared_on(bus).await?;
        stream
            .create_consumer(config)
            .await
            .map_err(|e| MessagingError::js("create or update consumer", e))?;
        Ok(())
    }

    /// The stream, and the consumer's configuration on it.
    async fn declared_on(
        &self,
        bus: &Bus,
    ) -> Result<(jetstream::stream::Stream, pull::Config), MessagingError> {
        let mut config = self.config.clone();
        config.durable_name = Some(self.name());
        config.filter_subject = self.filter().map(|f| bus.ns.subject(&f)).unwrap_or_default();
        let stream = bus
            .js
            .get_stream(bus.ns.stream(self.stream))
            .await
            .map_err(|e| MessagingError::js("get stream", e))?;
        Ok((stream, config))
    }

    fn nak_delay(&self, deliveries: u64) -> Duration {
        let i = usize::try_from(deliveries.saturating_sub(1)).unwrap_or(usize::MAX);
        self.nak_delays.get(i).or(self.nak_delays.last()).copied().unwrap_or(Duration::from_secs(1))
    }
}

/// What tells apart the consumer of `subject` among its service's consumers of the stream:
/// the subject after the stream's first token and its partition, with `_` for dots
/// (`reservation.*.payment_requested` -> `payment_requested`); consumer names hold no dots or
/// wildcards.
fn part_of(subject: &str) -> String {
    let tail = subject.split_once('.').map_or(subject, |(_, tail)| tail);
    let tail = if contracts::is_partitioned(subject) { &tail[2..] } else { tail };
    tail.replace('.', "_").replace('>', "all").replace('*', "any")
}

/// NATS subject matching: `*` matches one token, a final `>` one or more. A `*` in `subject`
/// (an event's pattern, where it stands for the partition) also matches a filter's partition
/// number.
fn subject_matches(filter: &str, subject: &str) -> bool {
    let (mut filter, mut subject) = (filter.split('.'), subject.split('.'));
    loop {
        match (filter.next(), subject.next()) {
            (Some(">"), Some(_)) => return true,
            (Some(f), Some(s))
                if f == "*" || f == s || (s == "*" && f.bytes().all(|b| b.is_ascii_digit())) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Checks that the consumers of `specs` are given exactly the events `handles` takes, on the
/// stream they consume: no event a handler needs is filtered out, and none it would only ignore
/// is delivered. [`crate::Runtime::consumer`] checks every consumer so before it runs; the error
/// names the first mismatch.
pub fn check_filters(specs: &[ConsumerSpec], handles: impl Fn(&str) -> bool) -> Result<(), String> {
    for (kind, stream, subject) in contracts::ALL_EVENTS {
        let mut consumers = specs.iter().filter(|s| s.stream == stream).peekable();
        let Some(first) = consumers.peek().map(|s| s.inbox()) else { continue };
        match (consumers.find(|s| s.receives(subject)), handles(kind)) {
            (Some(receiver), false) => {
                return Err(format!("{} is given {kind} ({subject}) but ignores it", receiver.name()));
            }
            (None, true) => {
                return Err(format!("{first} handles {kind} ({subject}) but no consumer is given it"));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Runs one consumer until `shutdown`: recreates the consumer and its message stream after
/// errors (bounded backoff), finishes in-flight messages on shutdown and acks nothing unfinished.
pub async fn run_consumer<A: Apply>(
    bus: Bus,
    spec: ConsumerSpec,
    apply: Arc<A>,
    shutdown: CancellationToken,
) {
    let name = spec.name();
    let mut failures = 0u32;
    while !shutdown.is_cancelled() {
        match consume(&bus, &spec, &apply, &shutdown).await {
            Ok(()) => failures = 0,
            Err(e) => {
                failures = failures.saturating_add(1);
                let pause = Duration::from_millis(100 * 2u64.pow(failures.min(6)));
                tracing::warn!(consumer = %name, error = %e, ?pause, "consumer stream failed; recreating it");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(pause) => {}
                }
            }
        }
    }
    tracing::info!(consumer = %name, "stopped: shutdown requested");
}

async fn consume<A: Apply>(
    bus: &Bus,
    spec: &ConsumerSpec,
    apply: &Arc<A>,
    shutdown: &CancellationToken,
) -> Result<(), MessagingError> {
    let consumer = spec.ensure(bus).await?;
    let messages = consumer
        .stream()
        .max_messages_per_batch((spec.concurrency.max(1) * 4).max(spec.batch))
        // A pull request the server lost (its consumer's leader moved to another server of the
        // cluster, or the server it was routed through went away) is noticed by the missing
        // heartbeats, after twice this: the consumer is recreated within about two seconds.
        .heartbeat(Duration::from_secs(1))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| MessagingError::js("pull messages", e))?;
    let name = spec.name();
    let name = name.as_str();
    // Chunks of what has arrived, up to `batch` (of one message each when `batch` is 1).
    messages
        .take_until(shutdown.clone().cancelled_owned())
        .ready_chunks(spec.batch.max(1))
        .map(Ok::<_, MessagingError>)
        .try_for_each_concurrent(spec.concurrency.max(1), |chunk| async move {
            let mut msgs = Vec::with_capacity(chunk.len());
            let mut failed = None;
            for item in chunk {
                match item {
                    Ok(msg) => msgs.push(msg),
                    Err(e) => failed = Some(MessagingError::js("receive message", e)),
                }
            }
            process(bus, spec, name, apply.as_ref(), msgs).await;
            failed.map_or(Ok(()), Err)
        })
        .await
}

/// Decodes `msgs`, applies those that decode (together, when more than one), and settles each:
/// ack, NAK with a delay, or dead letter.
async fn process<A: Apply>(
    bus: &Bus,
    spec: &ConsumerSpec,
    name: &str,
    apply: &A,
    msgs: Vec<jetstream::Message>,
) {
    let mut incoming = Vec::with_capacity(msgs.len());
    let mut received = Vec::with_capacity(msgs.len());
    for msg in msgs {
        if let Some((i, span)) = receive(bus, spec, name, &msg).await {
            incoming.push(i);
            received.push((msg, span));
        }
    }
    // Applied events are recorded under the service's inbox name, shared by its consumers.
    let inbox = spec.inbox();
    let outcomes = match incoming.as_slice() {
        [] => return,
        [one] => vec![apply.apply(&inbox, one).instrument(received[0].1.clone()).await],
        many => {
            metrics::histogram!("consumer_batch_messages", "consumer" => name.to_owned())
                .record(many.len() as f64);
            // The batch's own span links to each message's; what a message causes carries
            // that message's trace (`with_causes`), so each saga stays one trace.
            let span = tracing::info_span!("consume batch", consumer = %name, messages = many.len());
            let mut causes = std::collections::HashMap::with_capacity(many.len());
            for (incoming, (_, message)) in many.iter().zip(&received) {
                platform::telemetry::link(&span, message);
                causes.insert(incoming.envelope.id.0, platform::telemetry::trace_headers(message));
            }
            crate::outbox::with_causes(causes, apply.apply_batch(&inbox, many)).instrument(span).await
        }
    };
    for ((msg, span), (incoming, outcome)) in received.into_iter().zip(incoming.iter().zip(outcomes)) {
        settle(bus, spec, name, &msg, incoming, outcome).instrument(span).await;
    }
}

/// The message as a handler sees it, with its span (linked to the producer's trace); `None`
/// when it cannot be decoded (it is dead-lettered here) or lacks JetStream metadata.
async fn receive(
    bus: &Bus,
    spec: &ConsumerSpec,
    name: &str,
    msg: &jetstream::Message,
) -> Option<(Incoming, tracing::Span)> {
    let (stream_sequence, deliveries) = match msg.info() {
        Ok(info) => (info.stream_sequence, u64::try_from(info.delivered).unwrap_or(1)),
        Err(e) => {
            tracing::warn!(consumer = %name, error = %e, "message without JetStream metadata; ignoring it");
            return None;
        }
    };
    if deliveries > spec.attempts {
        let reason = format!(
            "delivered {deliveries} times, past its {} attempts: the deliveries before went unanswered (its \
             handler crashed or timed out) or its dead letter could not be written",
            spec.attempts
        );
        let meta = serde_json::from_slice::<Envelope<serde_json::Value>>(&msg.payload).ok().map(|e| e.meta());
        settle_dead(bus, spec, name, msg, meta.as_ref(), &reason, deliveries).await;
        return None;
    }
    let envelope = match serde_json::from_slice::<Envelope<serde_json::Value>>(&msg.payload) {
        Ok(env) => env,
        Err(e) => {
            let reason =
                format!("undecodable envelope: {e} (its schema: {})", contracts::schema_ref("EnvelopeMeta"));
            settle_dead(bus, spec, name, msg, None, &reason, deliveries).await;
            return None;
        }
    };
    let incoming = Incoming {
        subject: bus.ns.unprefix_subject(msg.subject.as_str()).to_owned(),
        envelope,
        stream_sequence,
        deliveries,
    };
    let span = tracing::info_span!(
        "consume",
        consumer = %name,
        event_type = %incoming.envelope.kind,
        event_id = %incoming.envelope.id,
        // The saga's id (a reservation's): what an operator searches traces by.
        correlation_id = %incoming.envelope.correlation_id,
        deliveries,
        otel.kind = "consumer",
    );
    if let Some(headers) = &msg.headers {
        platform::telemetry::set_parent_from(
            &span,
            headers.iter().filter_map(|(k, v)| v.first().map(|v| (k.as_ref(), v.as_str()))),
        );
    }
    Some((incoming, span))
}

/// Acks, NAKs or dead-letters `msg` according to the outcome of applying it.
async fn settle(
    bus: &Bus,
    spec: &ConsumerSpec,
    name: &str,
    msg: &jetstream::Message,
    incoming: &Incoming,
    outcome: Result<Applied, HandleError>,
) {
    let deliveries = incoming.deliveries;
    let meta = incoming.meta();
    match outcome {
        Ok(applied) => {
            metrics::counter!("events_handled_total", "consumer" => name.to_owned(), "outcome" => match applied {
                Applied::Done => "applied",
                Applied::Duplicate => "duplicate",
                Applied::Ignored => "ignored",
            })
            .increment(1);
            if let Err(e) = msg.ack().await {
                // The effect is committed; a redelivery will be a no-op.
                tracing::warn!(error = %e, "ack failed after commit");
            }
        }
        Err(HandleError::Permanent(reason)) => {
            settle_dead(bus, spec, name, msg, Some(&meta), &reason, deliveries).await;
        }
        Err(HandleError::Transient(reason)) if deliveries >= spec.attempts => {
            let reason = format!("{reason} (still failing on delivery {deliveries} of {})", spec.attempts);
            settle_dead(bus, spec, name, msg, Some(&meta), &reason, deliveries).await;
        }
        Err(HandleError::Transient(reason)) => {
            metrics::counter!("events_retried_total", "consumer" => name.to_owned()).increment(1);
            let delay = spec.nak_delay(deliveries);
            tracing::info!(%reason, ?delay, "handler failed; will retry");
            if let Err(e) = msg.ack_with(AckKind::Nak(Some(delay))).await {
                tracing::warn!(error = %e, "NAK failed; the message comes back after ack_wait");
            }
        }
    }
}

/// Writes the dead letter, then `Term`s the message. If the dead letter cannot be written the
/// message is NAKed instead, so it is never lost: JetStream delivers it again (it has no last
/// delivery), and that delivery, past [`ConsumerSpec::attempts`], tries the dead letter again.
async fn settle_dead(
    bus: &Bus,
    spec: &ConsumerSpec,
    name: &str,
    msg: &jetstream::Message,
    meta: Option<&EnvelopeMeta>,
    reason: &str,
    deliveries: u64,
) {
    match dlq::dead_letter(bus, &spec.service, name, msg, meta, reason, deliveries).await {
        Ok(()) => {
            metrics::counter!("events_dead_lettered_total", "consumer" => name.to_owned()).increment(1);
            tracing::error!(consumer = %name, %reason, "message sent to the dead-letter stream");
            if let Err(e) = msg.ack_with(AckKind::Term).await {
                tracing::warn!(error = %e, "Term failed; a redelivery will be dead-lettered again");
            }
        }
        Err(e) => {
            tracing::error!(consumer = %name, error = %e, %reason, "cannot write dead letter; retrying the message");
            let _ = msg.ack_with(AckKind::Nak(Some(spec.nak_delay(deliveries)))).await;
        }
    }
}
