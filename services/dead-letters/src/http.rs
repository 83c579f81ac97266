//! `GET /dead-letters`, `GET /dead-letters/{seq}`, `POST /dead-letters/{seq}/replay`,
//! `DELETE /dead-letters/{seq}`: admins only.

use crate::{NAME, error::Error};
use axum::{
    Json, Router,
    extract::{FromRef, State},
    http::StatusCode,
    routing::{get, post},
};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use contracts::DeadLetter;
use messaging::{Bus, dlq};
use platform::{
    Problem,
    auth::{Admin, JwtKeys},
    openapi::{BadRequest, Forbidden, Internal, Shared, Unauthenticated},
    problem::{ApiPath, ApiQuery, PROBLEM_JSON},
};
use serde::{Deserialize, Serialize};

/// What the handlers need: NATS, as this service's user, and the keys tokens are checked with.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub bus: Bus,
    pub jwt: JwtKeys,
}

/// The dead-letters service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_dead_letters, get_dead_letter, replay_dead_letter, discard_dead_letter),
    tags((name = NAME, description = "What a consumer could not handle, and why (admins): replay it to its \
        original subject once the cause is fixed, or discard it.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dead-letters", get(list_dead_letters))
        .route("/dead-letters/{seq}", get(get_dead_letter).delete(discard_dead_letter))
        .route("/dead-letters/{seq}/replay", post(replay_dead_letter))
}

/// How many to list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// 1-200 (default 50), oldest first.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

/// A dead letter without its message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Letter {
    /// Its place in the dead-letter stream: what replay and discard name.
    seq: u64,
    /// Where the message was published, e.g. `seat.reserved`.
    original_subject: String,
    /// The event's type and id, when the message could be read that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    /// The consumer that gave up on it (or `outbox[<schema>]` for an event JetStream refused).
    consumer: String,
    deliveries: u64,
    /// Why.
    reason: String,
    failed_at: DateTime<Utc>,
    /// Whether it can be replayed (an outbox's refused row has no message to publish).
    replayable: bool,
}

impl Letter {
    fn of(seq: u64, l: &DeadLetter) -> Self {
        Self {
            seq,
            original_subject: l.original_subject.clone(),
            event_type: l.event_type.clone(),
            event_id: l.event_id.clone(),
            consumer: l.consumer.clone(),
            deliveries: l.deliveries,
            reason: l.reason.clone(),
            failed_at: l.failed_at,
            replayable: dlq::replayable(l),
        }
    }
}

/// The dead letters waiting.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Letters {
    /// Oldest first, at most `limit`.
    data: Vec<Letter>,
    /// How many wait in all.
    total: u64,
}

/// A dead letter with its message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LetterWithMessage {
    #[serde(flatten)]
    letter: Letter,
    /// The message as published: JSON when it is JSON.
    #[schema(value_type = Object)]
    message: Option<serde_json::Value>,
    /// The message's bytes (base64), when they are not JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    message_base64: Option<String>,
}

/// Lists the dead letters, oldest first.
#[utoipa::path(
    get,
    path = "/dead-letters",
    tag = NAME,
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The dead letters.", body = Letters),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    )
)]
async fn list_dead_letters(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Letters>, Problem> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(Problem::validation("limit must be 1-200"));
    }
    let letters = dlq::list(&s.bus, limit as usize).await.map_err(Error::Nats)?;
    let total = dlq::count(&s.bus).await.map_err(Error::Nats)?;
    Ok(Json(Letters { data: letters.iter().map(|(seq, l)| Letter::of(*seq, l)).collect(), total }))
}

/// Shows one dead letter with its message.
#[utoipa::path(
    get,
    path = "/dead-letters/{seq}",
    tag = NAME,
    params(("seq" = u64, Path, description = "The dead letter.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The dead letter.", body = LetterWithMessage),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such dead letter (`NOT_FOUND`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn get_dead_letter(
    State(s): State<AppState>,
    _: Admin,
    ApiPath(seq): ApiPath<u64>,
) -> Result<Json<LetterWithMessage>, Problem> {
    let l = dlq::get(&s.bus, seq).await.map_err(|e| Error::of(seq, e))?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(&l.original_body).unwrap_or_default();
    let message = serde_json::from_slice(&bytes).ok();
    let message_base64 = (message.is_none() && !bytes.is_empty()).then(|| l.original_body.clone());
    Ok(Json(LetterWithMessage { letter: Letter::of(seq, &l), message, message_base64 }))
}

/// Publishes the dead letter's message again on its original subject, with its headers (its
/// trace among them), and removes the letter: every consumer of that subject is given it again,
/// and those that applied it already skip it by their inbox. One that fails again makes a new
/// dead letter.
#[utoipa::path(
    post,
    path = "/dead-letters/{seq}/replay",
    tag = NAME,
    params(("seq" = u64, Path, description = "The dead letter.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Replayed; the letter as it was.", body = Letter),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such dead letter (`NOT_FOUND`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "It has no message to publish: an outbox row JetStream refused, kept in \
            the schema's `outbox_dead` (`NOT_REPLAYABLE`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn replay_dead_letter(
    State(s): State<AppState>,
    Admin(who): Admin,
    ApiPath(seq): ApiPath<u64>,
) -> Result<Json<Letter>, Problem> {
    let l = dlq::replay(&s.bus, seq).await.map_err(|e| Error::of(seq, e))?;
    tracing::info!(seq, subject = %l.original_subject, event = ?l.event_id, by = %who.user_id, "dead letter replayed");
    Ok(Json(Letter::of(seq, &l)))
}

/// Removes the dead letter without replaying it (one that can never succeed).
#[utoipa::path(
    delete,
    path = "/dead-letters/{seq}",
    tag = NAME,
    params(("seq" = u64, Path, description = "The dead letter.")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Discarded."),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such dead letter (`NOT_FOUND`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn discard_dead_letter(
    State(s): State<AppState>,
    Admin(who): Admin,
    ApiPath(seq): ApiPath<u64>,
) -> Result<StatusCode, Problem> {
    let l = dlq::discard(&s.bus, seq).await.map_err(|e| Error::of(seq, e))?;
    tracing::warn!(seq, subject = %l.original_subject, event = ?l.event_id, reason = %l.reason, by = %who.user_id, "dead letter discarded");
    Ok(StatusCode::NO_CONTENT)
}
