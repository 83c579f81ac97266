//! The dead-letter stream: messages a consumer could not handle, with the reason, kept until an
//! operator replays them (`ticketing dlq list`, `ticketing dlq replay <seq>`).

use crate::{Bus, MessagingError};
use async_nats::{HeaderMap, jetstream::message::PublishMessage};
use base64::Engine;
use chrono::Utc;
use contracts::{DeadLetter, EnvelopeMeta, HEADER_MSG_ID, HEADER_TYPE, Stream};

/// Publishes a dead letter for `msg` on `dlq.<service>` and waits for JetStream to store it.
pub(crate) async fn dead_letter(
    bus: &Bus,
    service: &str,
    consumer: &str,
    msg: &async_nats::jetstream::Message,
    meta: Option<&EnvelopeMeta>,
    reason: &str,
    deliveries: u64,
) -> Result<(), MessagingError> {
    let stream_sequence = msg.info().map(|i| i.stream_sequence).unwrap_or_default();
    let original_headers = msg
        .headers
        .as_ref()
        .map(|h| {
            h.iter().flat_map(|(k, vs)| vs.iter().map(move |v| (k.to_string(), v.to_string()))).collect()
        })
        .unwrap_or_default();
    let letter = DeadLetter {
        original_subject: msg.subject.to_string(),
        stream_sequence,
        event_id: meta.map(|m| m.id.to_string()),
        event_type: meta.map(|m| m.kind.clone()),
        consumer: consumer.to_owned(),
        deliveries,
        reason: reason.to_owned(),
        failed_at: Utc::now(),
        original_headers,
        original_body: base64::engine::general_purpose::STANDARD.encode(&msg.payload),
    };
    // One dead letter per consumer and original message, however often this runs.
    publish(bus, service, &letter, &format!("dlq:{consumer}:{stream_sequence}")).await
}

/// Publishes a dead letter for an outbox row JetStream will never take (the relay set it aside
/// in `<schema>.outbox_dead`, with its body, which the letter leaves out: it is what cannot be
/// published).
pub(crate) async fn outbox_letter(
    bus: &Bus,
    schema: &str,
    subject: &str,
    event_id: &str,
    headers: &[(String, String)],
    reason: &str,
) -> Result<(), MessagingError> {
    let letter = DeadLetter {
        original_subject: subject.to_owned(),
        stream_sequence: 0,
        event_id: Some(event_id.to_owned()),
        event_type: headers.iter().find(|(k, _)| k == HEADER_TYPE).map(|(_, v)| v.clone()),
        consumer: format!("outbox[{schema}]"),
        deliveries: 0,
        reason: format!("{reason}; the row, body included, is kept in {schema}.outbox_dead"),
        failed_at: Utc::now(),
        original_headers: headers.to_vec(),
        original_body: String::new(),
    };
    publish(bus, &schema.replace('_', "-"), &letter, &format!("dlq:outbox:{event_id}")).await
}

/// Publishes `letter` on `dlq.<service>` with `msg_id`, and waits for JetStream to store it.
async fn publish(bus: &Bus, service: &str, letter: &DeadLetter, msg_id: &str) -> Result<(), MessagingError> {
    let body = serde_json::to_vec(letter).map_err(|e| MessagingError::js("encode dead letter", e))?;
    let mut headers = HeaderMap::new();
    headers.insert(HEADER_MSG_ID, msg_id);
    headers.insert(HEADER_TYPE, "DeadLetter");
    bus.js
        .send_publish(
            bus.ns.dlq_subject(service),
            PublishMessage::build().payload(body.into()).headers(headers),
        )
        .await
        .map_err(|e| MessagingError::js("publish dead letter", e))?
        .await
        .map_err(|e| MessagingError::js("dead letter ack", e))?;
    Ok(())
}

/// The dead letters in the stream, oldest first, at most `limit`, with their DLQ sequence.
pub async fn list(bus: &Bus, limit: usize) -> Result<Vec<(u64, DeadLetter)>, MessagingError> {
    let mut stream = dlq_stream(bus).await?;
    let state = stream.info().await.map_err(|e| MessagingError::js("DLQ info", e))?.state.clone();
    let mut out = Vec::new();
    if state.messages == 0 {
        return Ok(out);
    }
    for seq in state.first_sequence..=state.last_sequence {
        if out.len() >= limit {
            break;
        }
        match stream.get_raw_message(seq).await {
            Ok(m) => match serde_json::from_slice::<DeadLetter>(&m.payload) {
                Ok(letter) => out.push((seq, letter)),
                Err(e) => tracing::warn!(seq, error = %e, "unreadable dead letter"),
            },
            // Deleted (replayed) sequences leave gaps.
            Err(_) => continue,
        }
    }
    Ok(out)
}

/// How many dead letters are waiting.
pub async fn count(bus: &Bus) -> Result<u64, MessagingError> {
    let mut stream = dlq_stream(bus).await?;
    Ok(stream.info().await.map_err(|e| MessagingError::js("DLQ info", e))?.state.messages)
}

/// Dead letter `seq`.
pub async fn get(bus: &Bus, seq: u64) -> Result<DeadLetter, MessagingError> {
    let stream = dlq_stream(bus).await?;
    letter_at(&stream, seq).await
}

/// Removes dead letter `seq` without replaying it (one that cannot be made to succeed).
pub async fn discard(bus: &Bus, seq: u64) -> Result<DeadLetter, MessagingError> {
    let stream = dlq_stream(bus).await?;
    let letter = letter_at(&stream, seq).await?;
    stream.delete_message(seq).await.map_err(|e| MessagingError::js("delete a dead letter", e))?;
    Ok(letter)
}

/// Whether a dead letter can be replayed: one an outbox set aside has no body to publish (the
/// row is kept in the schema's `outbox_dead`).
pub fn replayable(letter: &DeadLetter) -> bool {
    letter.stream_sequence != 0 || !letter.original_body.is_empty()
}

async fn dlq_stream(bus: &Bus) -> Result<async_nats::jetstream::stream::Stream, MessagingError> {
    bus.js.get_stream(bus.ns.stream(Stream::Dlq)).await.map_err(|e| MessagingError::js("get DLQ stream", e))
}

async fn letter_at(
    stream: &async_nats::jetstream::stream::Stream,
    seq: u64,
) -> Result<DeadLetter, MessagingError> {
    let m = stream
        .get_raw_message(seq)
        .await
        .map_err(|e| MessagingError::NotFound(format!("dead letter {seq}: {e}")))?;
    serde_json::from_slice(&m.payload)
        .map_err(|e| MessagingError::NotFound(format!("dead letter {seq} is unreadable: {e}")))
}

/// Republishes dead letter `seq` to its original subject with its original headers and body,
/// then removes it from the DLQ. The new publish gets its own `Nats-Msg-Id` so the stream's
/// dedup window does not swallow it; consumers still dedupe by the envelope id in their inbox.
/// A letter with nothing to publish ([`replayable`]) is refused and kept.
pub async fn replay(bus: &Bus, seq: u64) -> Result<DeadLetter, MessagingError> {
    let stream = dlq_stream(bus).await?;
    let letter = letter_at(&stream, seq).await?;
    if !replayable(&letter) {
        return Err(MessagingError::NotReplayable(format!(
            "dead letter {seq} is an outbox row JetStream refused: {}",
            letter.reason
        )));
    }
    let body = base64::engine::general_purpose::STANDARD
        .decode(&letter.original_body)
        .map_err(|e| MessagingError::NotFound(format!("dead letter {seq} body: {e}")))?;
    let mut headers = HeaderMap::new();
    for (k, v) in &letter.original_headers {
        if k != HEADER_MSG_ID {
            headers.append(k.as_str(), v.as_str());
        }
    }
    let original_id = letter.event_id.clone().unwrap_or_else(|| format!("seq{}", letter.stream_sequence));
    headers.insert(HEADER_MSG_ID, format!("{original_id}:replay:{seq}").as_str());
    bus.js
        .send_publish(
            letter.original_subject.clone(),
            PublishMessage::build().payload(body.into()).headers(headers),
        )
        .await
        .map_err(|e| MessagingError::js("replay publish", e))?
        .await
        .map_err(|e| MessagingError::js("replay ack", e))?;
    stream.delete_message(seq).await.map_err(|e| MessagingError::js("delete replayed dead letter", e))?;
    Ok(letter)
}
