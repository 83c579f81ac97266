//! The event backbone (DESIGN §1-§2, §4, §8): JetStream setup from the definitions in `nats/`,
//! the transactional outbox and its relay, idempotent consumers (Postgres inbox or Redis script)
//! with NAK-with-delay and a dead-letter stream, and W3C trace propagation through all of it.

pub mod asyncapi;
pub mod bus;
mod consumer;
pub mod definitions;
pub mod dlq;
mod error;
pub mod gauges;
mod outbox;
mod peers;
pub mod permissions;
pub mod prune;
mod reaction;
mod redis_inbox;
mod relay;
mod runtime;
mod write;

pub use bus::Bus;
pub use consumer::{
    Applied, Apply, ConsumerSpec, HandleError, Handler, InboxClaims, Incoming, PgInbox, check_filters,
    run_consumer,
};
pub use error::MessagingError;
pub use outbox::{Outbox, OutboxRow, When};
pub use peers::Peers;
pub use reaction::{Answered, Or, Reacting, Reaction, Split, react, refusals};
pub use redis_inbox::{IdempotentScript, InboxKey, RedisHandler, RedisInbox, applied};
pub use relay::Relay;
pub use runtime::{Consumer, Runtime};
pub use write::{BatchWrite, Input};
