//! The event contract between services (DESIGN §4): typed identifiers, the envelope, every event
//! payload, and the one place where subjects and stream names are derived. No IO lives here.

mod envelope;
mod events;
mod ids;
mod namespace;
mod partition;

pub use envelope::{
    DecodeError, Envelope, EnvelopeMeta, HEADER_MSG_ID, HEADER_TRACEPARENT, HEADER_TRACESTATE, HEADER_TYPE,
};
pub use events::*;
pub use ids::*;
pub use namespace::{InvalidNamespace, Namespace, Stream};
pub use partition::{Bucket, InvalidPartitions, PartitionKey, Partitions};

/// Where the event contract's document describes the schema `name` (an event's `TYPE`, or
/// `EnvelopeMeta`): what a dead letter's reason quotes.
pub fn schema_ref(name: &str) -> String {
    format!("nats/asyncapi.json#/components/schemas/{name}")
}

/// An event type of the contract: its wire name, version, stream and (unprefixed) subject.
pub trait Event: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static {
    /// The `type` field of the envelope and the `Ticketing-Type` header.
    const TYPE: &'static str;
    /// Schema version of the payload; bumped on incompatible changes.
    const VERSION: u32 = 1;
    /// The stream the subject belongs to.
    const STREAM: Stream;
    /// Subject pattern without the namespace prefix. For an event about one schedule its second
    /// token is `*`, the partition ([`is_partitioned`]): `seat.*.reserved` is published as
    /// `seat.0.reserved` ([`Partitions::subject`]), and a consumer of every partition filters on
    /// the pattern itself. Events about no schedule have plain subjects (`wallet.charge.completed`).
    const SUBJECT: &'static str;

    /// The bucket of the schedule the event is about, which picks its partition; `None` for an
    /// event about no schedule.
    fn bucket(&self) -> Option<Bucket>;
}

/// Whether a subject pattern carries a partition: its second token is `*` (`seat.*.reserved`).
pub const fn is_partitioned(subject: &str) -> bool {
    let bytes = subject.as_bytes();
    let mut i = 0;
    while i < bytes.len() && bytes[i] != b'.' {
        i += 1;
    }
    i + 2 < bytes.len() && bytes[i + 1] == b'*' && bytes[i + 2] == b'.'
}

/// `pattern` with `partition` as its partition token (`seat.*.reserved` and `3` give
/// `seat.3.reserved`); a pattern that carries no partition, as it is.
pub fn in_partition(pattern: &str, partition: &str) -> String {
    if is_partitioned(pattern) { pattern.replacen('*', partition, 1) } else { pattern.to_owned() }
}
