//! `POST /queue/tokens`, `GET|DELETE /queue/tokens/{token}`, `GET /queue/status`.

use crate::{
    AppState, NAME,
    domain::{self, TokenStatus},
    error::Error,
    store,
};
use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use platform::{
    Problem,
    auth::Identity,
    openapi::{BadRequest, NotFound, Shared, Unauthenticated},
    problem::{ApiPath, PROBLEM_JSON},
};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    paths(join_queue, get_token, leave_queue, get_status),
    tags((name = NAME, description = "The waiting room: join, wait for ACTIVE, then book with X-Queue-Token.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/queue/tokens", post(join_queue))
        .route("/queue/tokens/{token}", get(get_token).delete(leave_queue))
        .route("/queue/status", get(get_status))
}

/// A token's state as its holder sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    token: String,
    /// WAITING, ACTIVE or EXPIRED.
    #[schema(example = "WAITING")]
    status: &'static str,
    /// Place in the waiting queue (1 = next); 0 unless waiting.
    position: u64,
    /// Estimated seconds until admission: position ÷ admission rate.
    eta_seconds: u64,
    /// Until when an ACTIVE token may book (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    active_until: Option<chrono::DateTime<chrono::Utc>>,
}

/// The waiting room's size and pace.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    waiting: u64,
    active: u64,
    max_active: u32,
    admit_per_tick: u32,
    tick_ms: u64,
    /// Users admitted per second when there is room.
    admission_rate_per_sec: f64,
}

fn view(
    s: &AppState,
    token: String,
    status: TokenStatus,
    position: u64,
    active_until: Option<i64>,
) -> TokenView {
    TokenView {
        token,
        status: status.as_str(),
        position,
        eta_seconds: domain::eta_seconds(position, s.settings.admit_per_tick, s.settings.tick),
        active_until: active_until
            .filter(|_| status == TokenStatus::Active)
            .and_then(chrono::DateTime::from_timestamp_millis),
    }
}

/// Joins the waiting room; joining again returns the caller's live token.
#[utoipa::path(
    post,
    path = "/queue/tokens",
    tag = NAME,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Joined: a new token at the tail of the queue.", body = TokenView),
        (status = 200, description = "Already in the waiting room: the live token.", body = TokenView),
        (status = 401, response = Unauthenticated),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn join_queue(State(s): State<AppState>, who: Identity) -> Result<Response, Problem> {
    let mut conn = s.redis.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let (token, created, position) =
        store::join(&mut conn, &s.keys, who.user_id, now).await.map_err(Error::Unavailable)?;
    let (status, active_until) = if position > 0 {
        (TokenStatus::Waiting, None)
    } else {
        let t = store::poll(&mut conn, &s.keys, &token, now).await.map_err(Error::Unavailable)?;
        (TokenStatus::Active, t.and_then(|t| t.active_until))
    };
    let body = view(&s, token.clone(), status, position, active_until);
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, [(header::LOCATION, format!("/queue/tokens/{token}"))], Json(body)).into_response())
}

/// Polls a token: status, position and ETA.
#[utoipa::path(
    get,
    path = "/queue/tokens/{token}",
    tag = NAME,
    params(("token" = uuid::Uuid, Path, description = "The queue token")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token.", body = TokenView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn get_token(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(token): ApiPath<uuid::Uuid>,
) -> Result<Json<TokenView>, Problem> {
    let token = token.to_string();
    let mut conn = s.redis.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let t = store::poll(&mut conn, &s.keys, &token, now)
        .await
        .map_err(Error::Unavailable)?
        .filter(|t| t.user == who.user_id.to_string())
        .ok_or(Error::TokenNotFound)?;
    Ok(Json(view(&s, token, t.status, t.position, t.active_until)))
}

/// Leaves the waiting room (or gives up an active slot).
#[utoipa::path(
    delete,
    path = "/queue/tokens/{token}",
    tag = NAME,
    params(("token" = uuid::Uuid, Path, description = "The queue token")),
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Left; the token is EXPIRED."),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn leave_queue(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(token): ApiPath<uuid::Uuid>,
) -> Result<StatusCode, Problem> {
    let mut conn = s.redis.clone();
    if store::leave(&mut conn, &s.keys, &token.to_string(), who.user_id).await.map_err(Error::Unavailable)? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Error::TokenNotFound.into())
    }
}

/// The waiting room's size and admission pace.
#[utoipa::path(
    get,
    path = "/queue/status",
    tag = NAME,
    responses(
        (status = 200, description = "Sizes and pace.", body = QueueStatus),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn get_status(State(s): State<AppState>) -> Result<Json<QueueStatus>, Problem> {
    let mut conn = s.redis.clone();
    let (waiting, active) = store::sizes(&mut conn, &s.keys).await.map_err(Error::Unavailable)?;
    Ok(Json(QueueStatus {
        waiting,
        active,
        max_active: s.settings.max_active,
        admit_per_tick: s.settings.admit_per_tick,
        tick_ms: s.settings.tick.as_millis() as u64,
        admission_rate_per_sec: domain::admission_rate(s.settings.admit_per_tick, s.settings.tick),
    }))
}
