//! Subjects and stream names are derived here and nowhere else, so a namespace prefix isolates
//! an environment (or a test) completely: `P.seat.0.reserved` on stream `P_SEAT`, Redis keys
//! `P:…`. The namespace also knows how many partitions the events are spread over.

use crate::{Event, Partitions};
use std::fmt;

/// The JetStream streams of the contract.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stream {
    Catalog,
    Reservation,
    Seat,
    Wallet,
    /// Accounts' changes, announced by the user service.
    User,
    /// Card payments through the external gateway, announced by the payment service.
    Payment,
    /// Dead letters, one subject per consuming service (`dlq.<service>`).
    Dlq,
}

impl Stream {
    /// Every stream, in a stable order.
    pub const ALL: [Stream; 7] = [
        Stream::Catalog,
        Stream::Reservation,
        Stream::Seat,
        Stream::Wallet,
        Stream::User,
        Stream::Payment,
        Stream::Dlq,
    ];

    /// The stream name without prefix, e.g. `SEAT`.
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Catalog => "CATALOG",
            Stream::Reservation => "RESERVATION",
            Stream::Seat => "SEAT",
            Stream::Wallet => "WALLET",
            Stream::User => "USER",
            Stream::Payment => "PAYMENT",
            Stream::Dlq => "DLQ",
        }
    }

    /// The first subject token of every subject in the stream, e.g. `seat`.
    pub const fn domain(self) -> &'static str {
        match self {
            Stream::Catalog => "catalog",
            Stream::Reservation => "reservation",
            Stream::Seat => "seat",
            Stream::Wallet => "wallet",
            Stream::User => "user",
            Stream::Payment => "payment",
            Stream::Dlq => "dlq",
        }
    }

    /// Looks a stream up by its unprefixed name.
    pub fn from_name(name: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.name() == name)
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A namespace prefix (`TICKETING_PREFIX`; empty means none), and the partitions its events
/// are spread over (`TICKETING_PARTITION_COUNT`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Namespace(String, Partitions);

/// A prefix that would not make valid subjects, stream names or Redis keys.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid namespace prefix {0:?}: use 1-32 characters from a-z, A-Z, 0-9, '-' and '_'")]
pub struct InvalidNamespace(pub String);

impl Namespace {
    /// Validates a prefix: it becomes a subject token and part of stream names, so no dots,
    /// wildcards, spaces or path separators.
    pub fn new(prefix: &str) -> Result<Self, InvalidNamespace> {
        let ok =
            prefix.len() <= 32 && prefix.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if ok {
            Ok(Self(prefix.to_owned(), Partitions::ONE))
        } else {
            Err(InvalidNamespace(prefix.to_owned()))
        }
    }

    /// The namespace with its events spread over `partitions`.
    pub fn with_partitions(self, partitions: Partitions) -> Self {
        Self(self.0, partitions)
    }

    pub fn partitions(&self) -> Partitions {
        self.1
    }

    /// The subject `event` is published on: `P.seat.3.reserved`.
    pub fn event_subject<E: Event>(&self, event: &E) -> String {
        self.subject(&self.1.subject(event))
    }

    /// The prefix itself (may be empty).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `seat.0.reserved` → `P.seat.0.reserved`.
    pub fn subject(&self, subject: &str) -> String {
        if self.0.is_empty() { subject.to_owned() } else { format!("{}.{subject}", self.0) }
    }

    /// The wildcard subject that selects a whole stream: `P.seat.>`.
    pub fn stream_subjects(&self, stream: Stream) -> String {
        self.subject(&format!("{}.>", stream.domain()))
    }

    /// `SEAT` → `P_SEAT`.
    pub fn stream(&self, stream: Stream) -> String {
        self.stream_name(stream.name())
    }

    /// Prefixes any stream name.
    pub fn stream_name(&self, name: &str) -> String {
        if self.0.is_empty() { name.to_owned() } else { format!("{}_{name}", self.0) }
    }

    /// Removes the prefix from a subject: `P.seat.0.reserved` → `seat.0.reserved` (a subject
    /// without it, as it is).
    pub fn unprefix_subject<'a>(&self, subject: &'a str) -> &'a str {
        if self.0.is_empty() {
            subject
        } else {
            subject.strip_prefix(self.0.as_str()).and_then(|rest| rest.strip_prefix('.')).unwrap_or(subject)
        }
    }

    /// Removes the prefix from a stream name, if it carries this namespace's.
    pub fn unprefix_stream<'a>(&self, name: &'a str) -> Option<&'a str> {
        if self.0.is_empty() {
            Some(name)
        } else {
            name.strip_prefix(self.0.as_str()).and_then(|rest| rest.strip_prefix('_'))
        }
    }

    /// The dead-letter subject of a consuming service: `P.dlq.<service>`.
    pub fn dlq_subject(&self, service: &str) -> String {
        self.subject(&format!("dlq.{service}"))
    }

    /// A Redis key under the namespace: `P:queue:seq`.
    pub fn redis_key(&self, key: &str) -> String {
        if self.0.is_empty() { key.to_owned() } else { format!("{}:{key}", self.0) }
    }
}

impl fmt::Display for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_applies_to_subjects_streams_and_keys() {
        let ns = Namespace::new("t42").unwrap();
        assert_eq!(ns.subject("seat.0.reserved"), "t42.seat.0.reserved");
        assert_eq!(ns.stream(Stream::Seat), "t42_SEAT");
        assert_eq!(ns.stream_subjects(Stream::Wallet), "t42.wallet.>");
        assert_eq!(ns.dlq_subject("seat"), "t42.dlq.seat");
        assert_eq!(ns.redis_key("queue:seq"), "t42:queue:seq");
        assert_eq!(ns.unprefix_stream("t42_SEAT"), Some("SEAT"));
        assert_eq!(ns.unprefix_stream("t4_SEAT"), None);
        assert_eq!(ns.unprefix_subject("t42.seat.0.reserved"), "seat.0.reserved");
        assert_eq!(ns.unprefix_subject("t4.seat.0.reserved"), "t4.seat.0.reserved");
    }

    #[test]
    fn empty_prefix_changes_nothing() {
        let ns = Namespace::default();
        assert_eq!(ns.subject("seat.0.reserved"), "seat.0.reserved");
        assert_eq!(ns.stream(Stream::Dlq), "DLQ");
        assert_eq!(ns.redis_key("k"), "k");
    }

    #[test]
    fn an_events_subject_carries_the_prefix_and_its_partition() {
        let schedule = crate::ScheduleId::new();
        let sold = crate::SoldOut {
            schedule_id: schedule,
            concert_id: crate::ConcertId::new(),
            sold_out_at: chrono::Utc::now(),
            seconds_to_sell_out: 1,
        };
        let ns = Namespace::new("t42").unwrap();
        assert_eq!(ns.event_subject(&sold), "t42.seat.0.sold_out");
        let ns = ns.with_partitions(Partitions::new(1024).unwrap());
        assert_eq!(ns.event_subject(&sold), format!("t42.seat.{}.sold_out", crate::Bucket::of(schedule)));
        assert_eq!(ns.partitions().count(), 1024);
    }

    #[test]
    fn prefixes_that_break_subjects_are_refused() {
        for bad in ["a.b", "a b", "a*", ">", "a/b", &"x".repeat(33)] {
            assert!(Namespace::new(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn stream_names_round_trip() {
        for s in Stream::ALL {
            assert_eq!(Stream::from_name(s.name()), Some(s));
        }
    }
}
