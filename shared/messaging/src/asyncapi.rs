//! The event contract as an AsyncAPI 3 document: every event's channel (its subject and stream),
//! its envelope and payload as JSON Schema (from `shared/contracts`), the service that sends it
//! and each consumer that receives it (from `nats/consumers.json`), and the dead-letter channel.
//! Served at `/asyncapi.json` and kept in `nats/asyncapi.json` (a test fails when they differ).

use crate::{ConsumerSpec, MessagingError, definitions::declared_consumers, permissions::PUBLISHERS};
use contracts::{ALL_EVENTS, HEADER_MSG_ID, HEADER_TRACEPARENT, HEADER_TRACESTATE, HEADER_TYPE, Stream};
use serde_json::{Map, Value, json};

/// What a channel's `{partition}` is.
const PARTITION: &str = "The partition of the schedule the event is about: its bucket (FNV-1a 32 of the schedule id \
                         as lowercase hyphenated text, mod 1024; a reservation id carries it in its ten low bits) \
                         mod TICKETING_PARTITION_COUNT. 0 with one partition. Consumers of every partition filter \
                         on `*` there.";

/// The document, the same on every call (its maps are ordered by name).
pub fn document() -> Result<Value, MessagingError> {
    let consumers = declared_consumers(contracts::Partitions::ONE)?;
    let mut schemas: Map<String, Value> = contracts::schemas()
        .into_iter()
        .map(|(name, schema)| Ok((name, serde_json::to_value(schema)?)))
        .collect::<Result<_, serde_json::Error>>()
        .map_err(|e| MessagingError::Definition {
            file: "asyncapi.json".into(),
            message: format!("an event schema: {e}"),
        })?;
    let (mut channels, mut operations, mut messages) = (Map::new(), Map::new(), Map::new());
    for (kind, stream, subject) in ALL_EVENTS {
        let producer = producer_of(stream)?;
        let receivers: Vec<&ConsumerSpec> = consumers.iter().filter(|c| c.receives(subject)).collect();
        schemas.insert(format!("{kind}Envelope"), envelope(kind));
        let address = contracts::in_partition(subject, "{partition}");
        messages.insert(
            kind.to_owned(),
            json!({
                "name": kind,
                "title": kind,
                "summary": format!("{kind}, sent by {producer} on {address}."),
                "contentType": "application/json",
                "headers": {"$ref": "#/components/schemas/Headers"},
                "payload": {"$ref": format!("#/components/schemas/{kind}Envelope")},
                "correlationId": {"location": "$message.payload#/correlationId"},
            }),
        );
        let message = format!("#/channels/{kind}/messages/{kind}");
        let mut channel = json!({
            "address": address,
            "title": kind,
            "description": format!(
                "Stream {} (subjects under the deployment's prefix, e.g. `<prefix>.{address}`).",
                stream.name()
            ),
            "messages": {kind: {"$ref": format!("#/components/messages/{kind}")}},
        });
        if contracts::is_partitioned(subject) {
            channel["parameters"] = json!({"partition": {"description": PARTITION}});
        }
        channels.insert(kind.to_owned(), channel);
        operations.insert(
            format!("{}_sends_{kind}", id(producer)),
            json!({
                "action": "send",
                "title": format!("{producer} sends {kind}"),
                "description": "Written to the service's outbox in the transaction of the change it announces, and \
                                published by its relay with the envelope id as `Nats-Msg-Id`.",
                "channel": {"$ref": format!("#/channels/{kind}")},
                "messages": [{"$ref": message}],
            }),
        );
        for consumer in receivers {
            operations.insert(
                format!("{}_receives_{kind}", id(&consumer.name())),
                json!({
                    "action": "receive",
                    "title": format!("{} receives {kind}", consumer.service),
                    "description": format!(
                        "Durable consumer `{}`, applied at most once through the service's inbox; a message \
                         that never applies goes to `dlq.{}`.",
                        consumer.name(),
                        consumer.service
                    ),
                    "channel": {"$ref": format!("#/channels/{kind}")},
                    "messages": [{"$ref": message}],
                }),
            );
        }
    }
    dead_letters(&mut channels, &mut operations, &mut messages, &consumers);
    schemas.insert("Headers".into(), headers());
    Ok(json!({
        "asyncapi": "3.1.0",
        "info": {
            "title": "ticketing events",
            "version": "1",
            "description": "The events the ticketing services exchange over NATS JetStream: the contract between \
                            them. Every event travels in an envelope (`id`, `type`, `version`, `occurredAt`, \
                            `source`, `correlationId`, `causationId`, `payload`); a dead letter's reason quotes \
                            the schema here that a malformed event broke. Generated from shared/contracts and \
                            nats/consumers.json (`ticketing nats asyncapi`).",
            "license": {"name": "MIT"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "nats": {
                "host": "127.0.0.1:4222",
                "protocol": "nats",
                "description": "The development NATS (JetStream); deployments name their own \
                                (TICKETING_NATS_URL).",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }))
}

/// The one service that publishes on `stream`.
fn producer_of(stream: Stream) -> Result<&'static str, MessagingError> {
    PUBLISHERS.iter().find(|(s, _)| *s == stream).map(|(_, service)| *service).ok_or_else(|| {
        MessagingError::Definition {
            file: "asyncapi.json".into(),
            message: format!("no service publishes on {}", stream.name()),
        }
    })
}

/// `name` as an operation id: letters, digits and `_`.
fn id(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

/// The envelope of `kind`: the envelope's fields, `type` fixed, and `kind`'s payload.
fn envelope(kind: &str) -> Value {
    json!({
        "allOf": [
            {"$ref": "#/components/schemas/EnvelopeMeta"},
            {
                "type": "object",
                "required": ["type", "payload"],
                "properties": {
                    "type": {"const": kind},
                    "payload": {"$ref": format!("#/components/schemas/{kind}")},
                },
            },
        ],
    })
}

/// The headers every event carries.
fn headers() -> Value {
    json!({
        "type": "object",
        "required": [HEADER_MSG_ID, HEADER_TYPE],
        "properties": {
            HEADER_MSG_ID: {"type": "string", "description": "The envelope id: JetStream drops a second publish of it."},
            HEADER_TYPE: {"type": "string", "description": "The envelope `type`, to route without reading the body."},
            HEADER_TRACEPARENT: {"type": "string", "description": "W3C trace context of the span that published it."},
            HEADER_TRACESTATE: {"type": "string", "description": "W3C trace state."},
        },
    })
}

/// The dead-letter channel, `dlq.{service}`, that every consuming service sends to.
fn dead_letters(
    channels: &mut Map<String, Value>,
    operations: &mut Map<String, Value>,
    messages: &mut Map<String, Value>,
    consumers: &[ConsumerSpec],
) {
    let mut services: Vec<&str> = consumers.iter().map(|c| c.service.as_str()).collect();
    services.extend(PUBLISHERS.iter().map(|(_, s)| *s));
    services.sort_unstable();
    services.dedup();
    messages.insert(
        "DeadLetter".into(),
        json!({
            "name": "DeadLetter",
            "title": "DeadLetter",
            "summary": "A message a consumer could not apply (or an outbox row JetStream would not take), with why.",
            "contentType": "application/json",
            "payload": {"$ref": "#/components/schemas/DeadLetter"},
        }),
    );
    channels.insert(
        "DeadLetters".into(),
        json!({
            "address": "dlq.{service}",
            "title": "Dead letters",
            "description": "Stream DLQ: kept until an operator replays them (`ticketing dlq list`, `ticketing dlq replay`).",
            "parameters": {"service": {"description": "The service that gave up.", "enum": services}},
            "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
        }),
    );
    operations.insert(
        "services_send_DeadLetter".into(),
        json!({
            "action": "send",
            "title": "a service sends a dead letter",
            "description": "A consumer that cannot apply a message (malformed, past its attempts, refused by the \
                            database) publishes it here with the reason, and acks it.",
            "channel": {"$ref": "#/channels/DeadLetters"},
            "messages": [{"$ref": "#/channels/DeadLetters/messages/DeadLetter"}],
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `nats/asyncapi.json` is what the code describes. `TICKETING_BLESS=1` writes it anew.
    #[test]
    fn the_committed_document_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../nats/asyncapi.json");
        let generated = document().unwrap_or_default();
        if std::env::var("TICKETING_BLESS").is_ok_and(|v| v == "1") {
            let text = serde_json::to_string_pretty(&generated).unwrap_or_default() + "\n";
            std::fs::write(path, text).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let committed: Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_default()).unwrap_or_default();
        assert!(
            committed == generated,
            "nats/asyncapi.json differs from the contract; write it anew with \
             `TICKETING_BLESS=1 cargo test -p messaging --lib asyncapi` (or `ticketing nats asyncapi`)"
        );
    }

    #[test]
    fn every_event_has_its_sender_and_each_receiver() {
        let doc = document().unwrap_or_default();
        let operations = doc["operations"].as_object().cloned().unwrap_or_default();
        assert!(operations.contains_key("reservation_sends_ReservationRequested"));
        assert!(
            operations.contains_key("seat__RESERVATION__requested_receives_ReservationRequested"),
            "{:?}",
            operations.keys()
        );
        assert!(operations.contains_key("wallet_sends_PaymentCompleted"));
        assert_eq!(doc["channels"]["SeatReserved"]["address"], "seat.{partition}.reserved");
        assert!(doc["channels"]["SeatReserved"]["parameters"]["partition"].is_object());
        assert_eq!(doc["channels"]["ChargeCompleted"]["address"], "wallet.charge.completed");
        assert!(doc["channels"]["ChargeCompleted"].get("parameters").is_none());
        assert_eq!(
            doc["components"]["schemas"]["SeatReservedEnvelope"]["allOf"][1]["properties"]["payload"]["$ref"],
            "#/components/schemas/SeatReserved"
        );
        for (kind, ..) in ALL_EVENTS {
            let senders = operations.keys().filter(|k| k.ends_with(&format!("_sends_{kind}"))).count();
            assert_eq!(senders, 1, "{kind}");
        }
    }
}
