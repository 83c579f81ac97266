//! Stream and consumer definitions from `nats/` (embedded at build time), and `apply`, which
//! makes the server match them under a namespace. Idempotent: run at every service start.

use crate::{Bus, ConsumerSpec, MessagingError};
use async_nats::jetstream::{ErrorCode, consumer, context::GetStreamErrorKind, stream};
use contracts::{Namespace, Partitions, Stream};
use serde::Deserialize;

/// The stream definition file of `stream`, as committed in `nats/streams/`.
pub fn stream_source(stream: Stream) -> &'static str {
    match stream {
        Stream::Catalog => include_str!("../../../nats/streams/CATALOG.json"),
        Stream::Reservation => include_str!("../../../nats/streams/RESERVATION.json"),
        Stream::Seat => include_str!("../../../nats/streams/SEAT.json"),
        Stream::Wallet => include_str!("../../../nats/streams/WALLET.json"),
        Stream::User => include_str!("../../../nats/streams/USER.json"),
        Stream::Payment => include_str!("../../../nats/streams/PAYMENT.json"),
        Stream::Dlq => include_str!("../../../nats/streams/DLQ.json"),
    }
}

const CONSUMERS: &str = include_str!("../../../nats/consumers.json");

/// `stream`'s configuration with the namespace applied to its name and subjects, kept on
/// `replicas` servers (the files say 1; a deployment says how many it has).
pub fn stream_config(
    stream: Stream,
    ns: &Namespace,
    replicas: usize,
) -> Result<stream::Config, MessagingError> {
    let file = format!("streams/{}.json", stream.name());
    let mut cfg: stream::Config = serde_json::from_str(stream_source(stream))
        .map_err(|e| MessagingError::Definition { file: file.clone(), message: e.to_string() })?;
    if cfg.name != stream.name() {
        return Err(MessagingError::Definition {
            file,
            message: format!("name {:?} must be {}", cfg.name, stream.name()),
        });
    }
    if cfg.subjects != [format!("{}.>", stream.domain())] {
        return Err(MessagingError::Definition {
            file,
            message: format!("subjects must be [\"{}.>\"]", stream.domain()),
        });
    }
    cfg.name = ns.stream(stream);
    cfg.subjects = vec![ns.stream_subjects(stream)];
    cfg.num_replicas = replicas;
    Ok(cfg)
}

#[derive(Deserialize)]
struct ConsumersFile {
    defaults: consumer::pull::Config,
    /// Deliveries of a message before it is dead-lettered ([`consumer_attempts`]).
    attempts: u64,
    consumers: Vec<ConsumerEntry>,
}

/// One `(service, stream)` consumer of `nats/consumers.json`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub struct ConsumerEntry {
    pub service: String,
    pub stream: String,
    /// Unprefixed subject filters, one durable consumer each (NATS 2.9 has no multi-filter
    /// consumers); the whole stream when empty.
    #[serde(default)]
    pub filter_subjects: Vec<String>,
    /// Apply up to this many arrived messages in one transaction, one batch at a time (for
    /// read-side projections: fewer transactions under load, in exchange for latency).
    #[serde(default)]
    pub batch: Option<usize>,
    /// The service keeps a partition's data (seat, reservation): with more than one partition,
    /// each partition has durables of its own, whose filters name it, and a replica runs those
    /// of the partitions it serves (`TICKETING_PARTITIONS`; docs/scaling.md §2.7, step 3).
    #[serde(default)]
    pub partitioned: bool,
}

fn consumers_file() -> Result<ConsumersFile, MessagingError> {
    serde_json::from_str(CONSUMERS)
        .map_err(|e| MessagingError::Definition { file: "consumers.json".into(), message: e.to_string() })
}

/// The defaults every durable consumer starts from.
pub fn consumer_defaults() -> Result<consumer::pull::Config, MessagingError> {
    Ok(consumers_file()?.defaults)
}

/// How many deliveries a consumer gives a message before it dead-letters it (`attempts` in
/// `nats/consumers.json`). JetStream itself redelivers without end (`max_deliver` -1): the
/// consumer, not the server, decides when to give up, so a message is never left with no
/// delivery to come, neither when writing its dead letter fails nor when every delivery
/// crashed its handler.
pub fn consumer_attempts() -> Result<u64, MessagingError> {
    Ok(consumers_file()?.attempts.max(1))
}

/// Every consumer declared in `nats/consumers.json`.
pub fn consumer_entries() -> Result<Vec<ConsumerEntry>, MessagingError> {
    let file = consumers_file()?;
    for entry in &file.consumers {
        if Stream::from_name(&entry.stream).is_none() {
            return Err(MessagingError::Definition {
                file: "consumers.json".into(),
                message: format!("{} names unknown stream {}", entry.service, entry.stream),
            });
        }
    }
    Ok(file.consumers)
}

/// Creates or updates every stream (each kept on `replicas` servers), then every declared
/// consumer (which follows its stream's replicas), bringing one that exists to its declared
/// configuration, and deletes the durable consumers no longer declared.
pub async fn apply(bus: &Bus, replicas: usize) -> Result<(), MessagingError> {
    for stream in Stream::ALL {
        apply_stream(bus, stream, replicas).await?;
    }
    let declared = declared_consumers(bus.ns.partitions())?;
    for spec in &declared {
        spec.apply(bus).await?;
    }
    retire_undeclared(bus, &declared).await
}

/// Deletes the durable consumers of the namespace's streams that `nats/consumers.json` no longer
/// declares (a consumer renamed, or split by filter subject): left in place, each would keep every
/// new message of its subjects pending for a reader that never comes, and page as lagging.
/// Ephemeral consumers (tools reading a stream) are left alone.
async fn retire_undeclared(bus: &Bus, declared: &[ConsumerSpec]) -> Result<(), MessagingError> {
    use futures::TryStreamExt as _;
    for stream in Stream::ALL {
        let js_stream = bus
            .js
            .get_stream(bus.ns.stream(stream))
            .await
            .map_err(|e| MessagingError::js("get stream", e))?;
        let found: Vec<_> =
            js_stream.consumers().try_collect().await.map_err(|e| MessagingError::js("list consumers", e))?;
        for info in found {
            let known = declared.iter().any(|d| d.stream == stream && d.name() == info.name);
            if info.config.durable_name.is_some() && !known {
                js_stream
                    .delete_consumer(&info.name)
                    .await
                    .map_err(|e| MessagingError::js("delete an undeclared consumer", e))?;
                tracing::info!(stream = %stream, consumer = %info.name, "deleted a consumer nats/consumers.json no longer declares");
            }
        }
    }
    Ok(())
}

/// Checks that every stream exists (for a process whose NATS user may not create them).
pub async fn require_streams(bus: &Bus) -> Result<(), MessagingError> {
    for stream in Stream::ALL {
        let name = bus.ns.stream(stream);
        bus.js.get_stream(&name).await.map_err(|e| {
            MessagingError::NotFound(format!(
                "stream {name} ({e}): run `ticketing nats apply` with the admin's NATS login first"
            ))
        })?;
    }
    Ok(())
}

/// Every durable consumer `nats/consumers.json` declares with the events spread over
/// `partitions`: one per filter subject, and of a partitioned service's, one per partition as
/// well when there are several.
pub fn declared_consumers(partitions: Partitions) -> Result<Vec<ConsumerSpec>, MessagingError> {
    let mut specs = Vec::new();
    for entry in consumer_entries()? {
        specs.extend(ConsumerSpec::of_entry(&entry, stream_of(&entry)?, partitions)?);
    }
    Ok(specs)
}

fn stream_of(entry: &ConsumerEntry) -> Result<Stream, MessagingError> {
    Stream::from_name(&entry.stream).ok_or_else(|| {
        MessagingError::NotFound(format!("stream {} of consumer {}", entry.stream, entry.service))
    })
}

/// Creates `stream` under the bus namespace, or updates it to match its definition.
pub async fn apply_stream(bus: &Bus, stream: Stream, replicas: usize) -> Result<(), MessagingError> {
    let cfg = stream_config(stream, &bus.ns, replicas)?;
    match bus.js.get_stream(&cfg.name).await {
        Ok(_) => {
            bus.js.update_stream(cfg).await.map_err(|e| MessagingError::js("update stream", e))?;
        }
        Err(e) if matches!(e.kind(), GetStreamErrorKind::JetStream(ref js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            bus.js.create_stream(cfg).await.map_err(|e| MessagingError::js("create stream", e))?;
        }
        Err(e) => return Err(MessagingError::js("look up stream", e)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stream_definition_parses_and_matches_the_contract() {
        let ns = Namespace::new("p").unwrap();
        for s in Stream::ALL {
            let cfg = stream_config(s, &ns, 3).unwrap();
            assert_eq!(cfg.name, format!("p_{}", s.name()));
            assert_eq!(cfg.num_replicas, 3);
            assert_eq!(cfg.subjects, vec![format!("p.{}.>", s.domain())]);
            assert!(cfg.duplicate_window.as_secs() >= 60, "{s}: dedup window too short");
        }
    }

    #[test]
    fn the_streams_folder_holds_exactly_the_contract_streams() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../nats/streams");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().trim_end_matches(".json").to_owned())
            .collect();
        files.sort();
        let mut names: Vec<String> = Stream::ALL.iter().map(|s| s.name().to_owned()).collect();
        names.sort();
        assert_eq!(files, names);
    }

    #[test]
    fn a_service_consuming_several_subjects_gets_a_consumer_for_each_sharing_one_inbox() {
        let seat = ConsumerSpec::declared("seat", Stream::Reservation).unwrap();
        let names: Vec<String> = seat.iter().map(ConsumerSpec::name).collect();
        assert_eq!(
            names,
            ["seat__RESERVATION__requested", "seat__RESERVATION__completed", "seat__RESERVATION__failed"]
        );
        assert!(seat.iter().all(|s| s.inbox() == "seat__RESERVATION"));
        assert!(
            seat[0].receives("reservation.0.requested")
                && seat[0].receives("reservation.41.requested")
                && !seat[0].receives("reservation.0.payment_requested")
        );
        let one = ConsumerSpec::declared("external-data", Stream::Reservation).unwrap();
        assert_eq!(one.iter().map(ConsumerSpec::name).collect::<Vec<_>>(), ["external-data__RESERVATION"]);
        let reservation = ConsumerSpec::declared("reservation", Stream::Wallet).unwrap();
        assert!(
            reservation[0].receives("wallet.0.payment.failed")
                && !reservation[0].receives("wallet.charge.completed")
        );
        let mut all: Vec<String> =
            declared_consumers(Partitions::ONE).unwrap().iter().map(ConsumerSpec::name).collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "consumer names are unique");
    }

    #[test]
    fn with_several_partitions_a_partitioned_service_has_durables_of_each_partition() {
        let two = Partitions::new(2).unwrap();
        let seat = ConsumerSpec::declared_in("seat", Stream::Reservation, two).unwrap();
        let named: Vec<(String, Option<String>)> = seat.iter().map(|s| (s.name(), s.filter())).collect();
        let expected = |p: u16, part: &str| {
            (format!("seat__RESERVATION__{part}__p{p}"), Some(format!("reservation.{p}.{part}")))
        };
        assert_eq!(
            named,
            [
                expected(0, "requested"),
                expected(0, "completed"),
                expected(0, "failed"),
                expected(1, "requested"),
                expected(1, "completed"),
                expected(1, "failed")
            ]
        );
        assert!(seat[3].receives("reservation.1.requested") && !seat[3].receives("reservation.0.requested"));
        assert!(seat.iter().all(|s| s.inbox() == "seat__RESERVATION"), "one inbox for every partition");
        // An event of no schedule reaches every partition's durable.
        let users = ConsumerSpec::declared_in("reservation", Stream::User, two).unwrap();
        let users: Vec<(String, Option<String>)> = users.iter().map(|s| (s.name(), s.filter())).collect();
        let status = Some("user.status_changed".to_owned());
        assert_eq!(
            users,
            [("reservation__USER__p0".into(), status.clone()), ("reservation__USER__p1".into(), status)]
        );
        let card = ConsumerSpec::declared_in("reservation", Stream::Payment, two).unwrap();
        assert_eq!(
            card[1].filter().as_deref(),
            Some("payment.1.>"),
            "a card payment of its own partition alone"
        );
        // A service of no partition keeps one durable for them all.
        let wallet = ConsumerSpec::declared_in("wallet", Stream::Reservation, two).unwrap();
        assert!(wallet.iter().all(|s| s.partition.is_none()));
        assert!(wallet[0].receives("reservation.1.payment_requested"));
        // Each partition's durables alone take every event the handler needs.
        for p in 0..2 {
            let own: Vec<ConsumerSpec> = seat.iter().filter(|s| s.partition == Some(p)).cloned().collect();
            crate::check_filters(&own, |kind| {
                matches!(kind, "ReservationRequested" | "ReservationCompleted" | "ReservationFailed")
            })
            .unwrap();
        }
    }

    #[test]
    fn consumer_defaults_are_explicit_ack_with_unbounded_delivery_and_bounded_attempts() {
        let d = consumer_defaults().unwrap();
        assert_eq!(d.ack_policy, consumer::AckPolicy::Explicit);
        assert_eq!(d.max_deliver, -1, "the consumer gives up (dead-letters), never the server");
        assert!(consumer_attempts().unwrap() > 1);
        consumer_entries().unwrap();
    }
}
