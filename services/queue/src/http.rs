//! `POST /queue/tokens`, `GET|DELETE /queue/tokens/{token}`, `GET /queue/tokens/{token}/events`,
//! `GET /queue/status`.

use crate::{
    AppState, NAME,
    domain::{self, TokenStatus},
    error::Error,
    live, store,
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response, sse::Event},
    routing::{get, post},
};
use contracts::ScheduleId;
use platform::queue_guard::QueueKeys;
use platform::{
    Problem,
    auth::Identity,
    http::Parking,
    openapi::{BadRequest, NotFound, ServerSentEvent, Shared, Unauthenticated},
    paging::PreferWait,
    problem::{ApiPath, ApiQuery, PROBLEM_JSON},
};
use serde::{Deserialize, Serialize};
use utoipa::{OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    paths(join_queue, get_token, token_events, leave_queue, get_status),
    tags((name = NAME, description = "The waiting room: join, wait for ACTIVE, then book with X-Queue-Token.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/queue/tokens", post(join_queue))
        .route("/queue/tokens/{token}", get(get_token).delete(leave_queue))
        .route("/queue/tokens/{token}/events", get(token_events))
        .route("/queue/status", get(get_status))
}

/// Which room to join: a schedule's sale, or (without a body) the global room.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinRequest {
    /// The schedule whose sale to wait for; its room admits to it alone and tells its users
    /// at once when it is sold out.
    schedule_id: Option<ScheduleId>,
}

/// Which room's status to read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RoomQuery {
    /// A schedule's room; the global room when absent.
    schedule_id: Option<ScheduleId>,
}

/// A token's state as its holder sees it.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    token: String,
    /// WAITING, ACTIVE, EXPIRED, or SOLD_OUT once the sale it waits for has no seat left.
    #[schema(example = "WAITING")]
    status: &'static str,
    /// The schedule whose sale's room the token is in; absent in the global room.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule_id: Option<ScheduleId>,
    /// Place in the waiting queue (1 = next); 0 unless waiting. Before the sale opens, the
    /// place in the order drawn for those who joined so far: later early joiners may draw a
    /// place ahead of it.
    position: u64,
    /// Estimated seconds until admission: the time until the sale opens (if it is yet to),
    /// then position ÷ admission rate.
    eta_seconds: u64,
    /// Until when an ACTIVE token may book (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    active_until: Option<chrono::DateTime<chrono::Utc>>,
    /// While the token waits for a sale yet to open: when it opens. Until then the room
    /// admits no one, and those who joined are ordered by a random draw, not by arrival.
    #[serde(skip_serializing_if = "Option::is_none")]
    sales_open_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The waiting room's size and pace.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// The schedule of the room; absent for the global room.
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule_id: Option<ScheduleId>,
    waiting: u64,
    active: u64,
    /// Whether the room's sale is sold out.
    sold_out: bool,
    max_active: u32,
    admit_per_tick: u32,
    tick_ms: u64,
    /// Users admitted per second when there is room.
    admission_rate_per_sec: f64,
}

fn view_of(s: &AppState, token: String, t: &store::Token) -> TokenView {
    let now = chrono::Utc::now().timestamp_millis();
    let opens_in = t.opens_at.map_or(0, |at| at.saturating_sub(now).max(0) as u64);
    TokenView {
        token,
        status: t.status.as_str(),
        schedule_id: t.schedule,
        position: t.position,
        eta_seconds: domain::eta_seconds(t.position, s.settings.admit_per_tick, s.settings.tick)
            + opens_in.div_ceil(1000),
        active_until: t
            .active_until
            .filter(|_| t.status == TokenStatus::Active)
            .and_then(chrono::DateTime::from_timestamp_millis),
        sales_open_at: t.opens_at.filter(|at| *at > now).and_then(chrono::DateTime::from_timestamp_millis),
    }
}

/// Joins the waiting room (a schedule's sale's room when the body names one); joining again
/// returns the caller's live token in that room. With `Prefer: wait=N` the answer comes once
/// the token is admitted or its sale sold out, or after N seconds (at most 10).
#[utoipa::path(
    post,
    path = "/queue/tokens",
    tag = NAME,
    security(("bearer" = [])),
    params(PreferWait),
    request_body(content = Option<JoinRequest>, description = "Optional: the sale to wait for."),
    responses(
        (status = 201, description = "Joined: a new token at the tail of the queue.", body = TokenView),
        (status = 200, description = "Already in the waiting room: the live token.", body = TokenView),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, description = "An admin has blocked the caller's account (`USER_BLOCKED`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such schedule (`SCHEDULE_NOT_FOUND`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "The schedule is sold out (`SOLD_OUT`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn join_queue(
    State(s): State<AppState>,
    who: Identity,
    PreferWait(wait): PreferWait,
    parking: Parking,
    body: Bytes,
) -> Result<Response, Problem> {
    let ask: JoinRequest = if body.iter().all(u8::is_ascii_whitespace) {
        JoinRequest::default()
    } else {
        // `null` is the optional body's absence, as the schema (`Option<JoinRequest>`) says.
        serde_json::from_slice::<Option<JoinRequest>>(&body)
            .map_err(|e| Problem::validation(format!("the body: {e}")))?
            .unwrap_or_default()
    };
    let keys = s.keys.room(ask.schedule_id);
    let mut conn = s.redis.clone();
    let now = chrono::Utc::now().timestamp_millis();
    let store::Joined { token, created, position, opens_at } =
        store::join(&mut conn, &keys, who.user_id, now).await?;
    let body = match (position, wait) {
        // Waiting, and no wish to wait here: answered without another read.
        (1.., None) => {
            let waiting = store::Token::waiting(who.user_id, position, ask.schedule_id, opens_at);
            view_of(&s, token.clone(), &waiting)
        }
        _ => {
            let t = store::poll(&mut conn, &keys, &token, now)
                .await
                .map_err(Error::Unavailable)?
                .ok_or(Error::TokenNotFound)?;
            let t = match wait {
                Some(limit) => settle(&s, &mut conn, &parking, token.clone(), t, limit).await?,
                None => t,
            };
            view_of(&s, token.clone(), &t)
        }
    };
    let code = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok((code, [(header::LOCATION, format!("/queue/tokens/{token}"))], Json(body)).into_response())
}

/// `t` once it no longer waits, or as it is after `limit`. A waiting user costs nothing while
/// it waits, so the request gives its place among those in progress up.
async fn settle(
    s: &AppState,
    conn: &mut platform::pools::Redis,
    parking: &Parking,
    token: String,
    t: store::Token,
    limit: std::time::Duration,
) -> Result<store::Token, Error> {
    if t.status == TokenStatus::Waiting {
        parking.park();
    }
    let until = tokio::time::Instant::now() + limit;
    let mut waiter = live::Waiter::new(&s.rooms, token, t);
    while waiter.reading.status == TokenStatus::Waiting && tokio::time::Instant::now() < until {
        if waiter.next(conn, &s.keys, until).await?.is_none() {
            break;
        }
    }
    Ok(waiter.reading)
}

/// The caller's token as it is now; another user's is answered as one that does not exist.
async fn own_token(
    s: &AppState,
    conn: &mut platform::pools::Redis,
    token: &str,
    who: &Identity,
) -> Result<store::Token, Error> {
    let now = chrono::Utc::now().timestamp_millis();
    store::poll(conn, &s.keys, token, now)
        .await
        .map_err(Error::Unavailable)?
        .filter(|t| t.user == who.user_id.to_string())
        .ok_or(Error::TokenNotFound)
}

/// Polls a token: status, position and ETA. With `Prefer: wait=N` a waiting token is answered
/// once it is admitted or its sale sold out, or after N seconds (at most 10) as it is then.
#[utoipa::path(
    get,
    path = "/queue/tokens/{token}",
    tag = NAME,
    params(("token" = uuid::Uuid, Path, description = "The queue token"), PreferWait),
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
    PreferWait(wait): PreferWait,
    parking: Parking,
    ApiPath(token): ApiPath<uuid::Uuid>,
) -> Result<Json<TokenView>, Problem> {
    let token = token.to_string();
    let mut conn = s.redis.clone();
    let t = own_token(&s, &mut conn, &token, &who).await?;
    let t = match wait {
        Some(limit) => settle(&s, &mut conn, &parking, token.clone(), t, limit).await?,
        None => t,
    };
    Ok(Json(view_of(&s, token, &t)))
}

/// Streams a token's state as Server-Sent Events: an event `token` (a [`TokenView`]) at once
/// and again whenever its status, position or active time changes, until it ends EXPIRED or
/// SOLD_OUT (the last event). Admission and the end of the sale reach it within a pulse
/// (`TICKETING_QUEUE_LIVE_MS`), its place at least every five seconds; a page shows a live
/// position without polling.
#[utoipa::path(
    get,
    path = "/queue/tokens/{token}/events",
    tag = NAME,
    params(("token" = uuid::Uuid, Path, description = "The queue token")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: events `token`, each data a TokenView.",
         body = ServerSentEvent, content_type = "text/event-stream"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn token_events(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(token): ApiPath<uuid::Uuid>,
) -> Result<Response, Problem> {
    let token = token.to_string();
    let mut conn = s.redis.clone();
    let first = own_token(&s, &mut conn, &token, &who).await?;
    let waiter = live::Waiter::new(&s.rooms, token.clone(), first.clone());
    let first = Some(view_of(&s, token, &first));
    // (waiter, the view to send next, the last one sent)
    let events =
        futures::stream::unfold((waiter, first, None::<TokenView>), move |(mut waiter, mut next, sent)| {
            let s = s.clone();
            async move {
                if sent.as_ref().is_some_and(|v| matches!(v.status, "EXPIRED" | "SOLD_OUT")) {
                    return None;
                }
                let mut conn = s.redis.clone();
                while next.is_none() || next == sent {
                    let until = tokio::time::Instant::now() + POSITIONS_EVERY;
                    let reading = waiter.next(&mut conn, &s.keys, until).await;
                    next = match reading {
                        Ok(Some(t)) => Some(view_of(&s, waiter.token.clone(), &t)),
                        // Gone from Redis: it expired long enough ago to be forgotten.
                        Ok(None) => {
                            Some(view_of(&s, waiter.token.clone(), &store::Token::gone(&waiter.reading)))
                        }
                        // Redis did not answer: try again on the next pulse.
                        Err(_) => None,
                    };
                }
                let view = next.take()?;
                let event = Event::default().event("token").json_data(&view).unwrap_or_default();
                Some((Ok::<_, std::convert::Infallible>(event), (waiter, None, Some(view))))
            }
        });
    Ok(platform::http::event_stream(events))
}

/// How often a stream reads its token even when its room did not move (its place changes
/// as others leave; an admitted token is spent or runs out).
const POSITIONS_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

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

/// A waiting room's size and admission pace: the global room's, or a schedule's sale's.
#[utoipa::path(
    get,
    path = "/queue/status",
    tag = NAME,
    params(RoomQuery),
    responses(
        (status = 200, description = "Sizes and pace.", body = QueueStatus),
        (status = 400, response = BadRequest),
        (status = 503, description = "Redis is unavailable.", body = Problem, content_type = PROBLEM_JSON),
    )
)]
async fn get_status(
    State(s): State<AppState>,
    ApiQuery(room): ApiQuery<RoomQuery>,
) -> Result<Json<QueueStatus>, Problem> {
    let keys: QueueKeys = s.keys.room(room.schedule_id);
    let mut conn = s.redis.clone();
    let (waiting, active) = store::sizes(&mut conn, &keys).await.map_err(Error::Unavailable)?;
    let sold_out = store::sold_out(&mut conn, &keys).await.map_err(Error::Unavailable)?;
    Ok(Json(QueueStatus {
        schedule_id: room.schedule_id,
        waiting,
        active,
        sold_out,
        max_active: s.settings.max_active,
        admit_per_tick: s.settings.admit_per_tick,
        tick_ms: s.settings.tick.as_millis() as u64,
        admission_rate_per_sec: domain::admission_rate(s.settings.admit_per_tick, s.settings.tick),
    }))
}
