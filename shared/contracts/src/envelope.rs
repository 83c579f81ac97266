//! The message body every event travels in, and the header names that go with it.

use crate::{Event, EventId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// JetStream's publish-dedup header; always the envelope id.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// The envelope `type`, so consumers and tools can route without parsing the body.
pub const HEADER_TYPE: &str = "Ticketing-Type";
/// W3C trace context.
pub const HEADER_TRACEPARENT: &str = "traceparent";
/// W3C trace state.
pub const HEADER_TRACESTATE: &str = "tracestate";

/// `{ id, type, version, occurredAt, source, correlationId, causationId, payload }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<P> {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    /// The service that emitted the event.
    pub source: String,
    /// The saga (reservation id) or aggregate id, so one flow can be followed end to end.
    pub correlation_id: Uuid,
    /// The event that caused this one, if any.
    #[serde(default)]
    pub causation_id: Option<EventId>,
    pub payload: P,
}

/// The envelope without its payload: what a consumer knows before it decodes the body.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvelopeMeta {
    pub id: EventId,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
    pub correlation_id: Uuid,
    #[serde(default)]
    pub causation_id: Option<EventId>,
}

impl<E: Event> Envelope<E> {
    /// A new event with a fresh id, stamped now.
    pub fn new(source: &str, correlation_id: impl Into<Uuid>, payload: E) -> Self {
        Self {
            id: EventId::new(),
            kind: E::TYPE.to_owned(),
            version: E::VERSION,
            occurred_at: Utc::now(),
            source: source.to_owned(),
            correlation_id: correlation_id.into(),
            causation_id: None,
            payload,
        }
    }

    /// Marks this event as caused by `cause`, carrying its correlation id along.
    pub fn caused_by(mut self, cause: &EnvelopeMeta) -> Self {
        self.causation_id = Some(cause.id);
        self.correlation_id = cause.correlation_id;
        self
    }
}

impl<P> Envelope<P> {
    /// The envelope's fields without the payload.
    pub fn meta(&self) -> EnvelopeMeta {
        EnvelopeMeta {
            id: self.id,
            kind: self.kind.clone(),
            version: self.version,
            occurred_at: self.occurred_at,
            source: self.source.clone(),
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
        }
    }
}

impl Envelope<serde_json::Value> {
    /// Decodes the payload as `E`, refusing a body whose `type` is not `E`'s.
    pub fn decode<E: Event>(self) -> Result<Envelope<E>, DecodeError> {
        if self.kind != E::TYPE {
            return Err(DecodeError::WrongType { expected: E::TYPE, found: self.kind });
        }
        if self.version > E::VERSION {
            return Err(DecodeError::UnknownVersion { kind: E::TYPE, version: self.version });
        }
        let payload = serde_json::from_value(self.payload)
            .map_err(|e| DecodeError::Payload { kind: E::TYPE, message: e.to_string() })?;
        Ok(Envelope {
            id: self.id,
            kind: self.kind,
            version: self.version,
            occurred_at: self.occurred_at,
            source: self.source,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            payload,
        })
    }
}

/// Why a body could not be read as the expected event.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("expected event type {expected}, found {found}")]
    WrongType { expected: &'static str, found: String },
    #[error("{kind} version {version} is newer than this service understands")]
    UnknownVersion { kind: &'static str, version: u32 },
    #[error("malformed {kind} payload: {message} (its schema: {})", crate::schema_ref(kind))]
    Payload { kind: &'static str, message: String },
}
