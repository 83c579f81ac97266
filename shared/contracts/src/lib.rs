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
pub use partition::Bucket;

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
    /// Subject without the namespace prefix, e.g. `seat.reserved`.
    const SUBJECT: &'static str;
}
