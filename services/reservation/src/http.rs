//! `POST /reservations`, `GET /reservations[/{id}]`, `POST /reservations/{id}/payment`,
//! `DELETE /reservations/{id}`, `GET /reservations/{id}/events`.

use crate::{
    AppState, NAME,
    domain::{Reservation, Status},
    requests::{Accepted, Ask, Settled, Viewed},
    store::TimelineEntry,
};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response, sse::Event},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use contracts::{
    Bucket, ConcertId, PaymentMethod, ReservationFailureReason, ReservationId, ScheduleId, SeatNo, UserId,
    Won,
};
use platform::{
    Problem,
    auth::Identity,
    idempotency::{self, MaybeKey},
    openapi::{
        BadRequest, BookingUnauthenticated, Internal, Misdirected, NotFound, QueueNotAdmitted,
        ServerSentEvent, Shared, Unauthenticated, UnsupportedMediaType,
    },
    paging::{PageQuery, Paged, PreferWait},
    problem::{ApiJson, ApiPath, ApiQuery, PROBLEM_JSON},
    queue_guard::QueueTicket,
};
use serde::{Deserialize, Serialize};

/// The reservation service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_reservation,
        list_reservations,
        get_reservation,
        reservation_events,
        cancel_reservation,
        pay_reservation
    ),
    tags((name = NAME, description = "The saga: hold up to 4 seats, pay for them before the hold ends, or cancel.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/reservations", post(create_reservation).get(list_reservations))
        .route("/reservations/{id}", get(get_reservation).delete(cancel_reservation))
        .route("/reservations/{id}/events", get(reservation_events))
        .route("/reservations/{id}/payment", post(pay_reservation))
}

/// `{scheduleId, seatNos}`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationRequest {
    pub schedule_id: ScheduleId,
    #[schema(schema_with = seat_nos_schema)]
    #[serde(deserialize_with = "platform::whole::list")]
    pub seat_nos: Vec<i32>,
}

/// `seatNos`: 1-[`crate::requests::MAX_SEATS`] seat numbers, each once, each 1-
/// [`crate::requests::MAX_SEAT_NO`].
fn seat_nos_schema() -> utoipa::openapi::Array {
    use utoipa::openapi::{ArrayBuilder, ObjectBuilder, Type};
    let seat_no = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(1))
        .maximum(Some(crate::requests::MAX_SEAT_NO));
    ArrayBuilder::new()
        .items(seat_no)
        .min_items(Some(1))
        .max_items(Some(crate::requests::MAX_SEATS))
        .unique_items(true)
        .description(Some(
            "1-4 different seats of the schedule (a number the schedule does not have is 422).",
        ))
        .build()
}

/// A reservation as the API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Reservation)]
pub struct View {
    id: ReservationId,
    user_id: UserId,
    #[schema(value_type = Status)]
    status: &'static str,
    schedule_id: ScheduleId,
    concert_id: ConcertId,
    seat_nos: Vec<SeatNo>,
    /// What the held seats cost, once they are held.
    amount: Option<Won>,
    /// The payment deadline, while the seats are held.
    held_until: Option<DateTime<Utc>>,
    /// Why it ended without seats, if it did.
    failure_reason: Option<ReservationFailureReason>,
    /// How it is being (or was) paid, once the buyer paid.
    #[serde(skip_serializing_if = "Option::is_none")]
    payment_method: Option<PaymentMethod>,
    created_at: DateTime<Utc>,
    /// What happened, in order (not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    timeline: Option<Vec<TimelineEntry>>,
}

impl View {
    fn of(r: Reservation, timeline: Option<Vec<TimelineEntry>>) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id,
            status: r.status.as_str(),
            schedule_id: r.schedule_id,
            concert_id: r.concert_id,
            seat_nos: r.seat_nos,
            amount: r.amount,
            held_until: r.held_until,
            failure_reason: r.failure_reason,
            payment_method: r.method,
            created_at: r.created_at,
            timeline,
        }
    }
}

/// Asks to hold 1-4 seats of a schedule (`ReservationRequested`). The reservation is PENDING
/// until the seat service answers: HELD (pay before `heldUntil`) or FAILED.
#[utoipa::path(
    post,
    path = "/reservations",
    tag = NAME,
    params(MaybeKey, PreferWait, QueueTicket),
    request_body = ReservationRequest,
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted and PENDING (`{id, status}`, with `Location`); with `Prefer: wait`, \
            the reservation as it stands when the wait ended.", body = Accepted,
            headers(("Location" = String, description = "`/reservations/{id}`"))),
        (status = 200, description = "With `Prefer: wait`: the settled reservation, with its timeline.", body = View),
        (status = 400, response = BadRequest),
        (status = 401, response = BookingUnauthenticated),
        (status = 403, description = "The queue token is still waiting (`QUEUE_NOT_ADMITTED`), expired \
            (`QUEUE_TOKEN_EXPIRED`) or another user's (`QUEUE_TOKEN_FOREIGN`); or an admin has blocked the caller \
            (`USER_BLOCKED`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "The schedule does not exist (`SCHEDULE_NOT_FOUND`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 421, response = Misdirected),
        (status = 409, description = "The user already has a live reservation of this schedule, or would own more \
            than `TICKETING_MAX_SEATS_PER_USER` of its seats (`LIMIT_REACHED`, the detail saying which); or a seat \
            is in another live reservation (`SEAT_UNAVAILABLE`). A retry sent while its first request is still \
            being written waits for it and is answered as it was.",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, description = "More of these requests than a person makes (`RATE_LIMITED`, with \
            `Retry-After`), or `TICKETING_MAX_RESERVATIONS_PER_MINUTE` reservations started in the last minute \
            (`VELOCITY_LIMIT`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "A seat number the schedule does not have (`SEAT_NOT_IN_SCHEDULE`), or this \
            Idempotency-Key was used for another request (`IDEMPOTENCY_KEY_REUSED`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn create_reservation(
    State(s): State<AppState>,
    ticket: QueueTicket,
    key: MaybeKey,
    wait: PreferWait,
    ApiJson(body): ApiJson<ReservationRequest>,
) -> Result<Response, Problem> {
    s.kept.check(Bucket::of(body.schedule_id), &format_args!("schedule {}", body.schedule_id))?;
    let request = serde_json::to_vec(&body)?;
    let request: [&[u8]; 2] = [b"POST /reservations", &request];
    let ask = Ask::Hold { schedule: body.schedule_id, seats: body.seat_nos };
    Ok(respond(s.requests.ask(ticket, &key, &request, wait.0, ask).await?))
}

/// How to pay (the body of `POST /reservations/{id}/payment`, which may be empty: the wallet).
#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentRequest {
    /// `WALLET` (the default) or `CARD`.
    #[serde(default)]
    method: PaymentMethod,
}

/// Pays for a HELD reservation: from the caller's wallet (`PaymentRequested`), or by card
/// (`CardPaymentRequested`: `GET /payments?reservationId=` then shows the gateway page on which
/// the buyer confirms it). It is PAYING until the payment answers: CONFIRMED; HELD again when
/// the balance is short, the card declined or the gateway down (pay again before the hold ends);
/// or FAILED with the seats released.
#[utoipa::path(
    post,
    path = "/reservations/{id}/payment",
    tag = NAME,
    params(("id" = ReservationId, Path, description = "The reservation."), MaybeKey, PreferWait, QueueTicket),
    request_body(content = PaymentRequest, description = "How to pay; an empty body pays from the wallet."),
    security(("bearer" = [])),
    responses(
        (status = 202, description = "Accepted and PAYING (`{id, status}`, with `Location`); with `Prefer: wait`, \
            the reservation as it stands when the wait ended.", body = Accepted,
            headers(("Location" = String, description = "`/reservations/{id}`"))),
        (status = 200, description = "With `Prefer: wait`: the settled reservation, with its timeline.", body = View),
        (status = 400, response = BadRequest),
        (status = 401, response = BookingUnauthenticated),
        (status = 403, response = QueueNotAdmitted),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
        (status = 409, description = "The hold has ended (`HOLD_EXPIRED`), the reservation is not HELD (`NOT_PAYABLE`), \
            or a request with this Idempotency-Key is still running (`IDEMPOTENCY_IN_PROGRESS`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "This Idempotency-Key was used for another request (`IDEMPOTENCY_KEY_REUSED`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn pay_reservation(
    State(s): State<AppState>,
    ticket: QueueTicket,
    key: MaybeKey,
    wait: PreferWait,
    ApiPath(id): ApiPath<ReservationId>,
    body: axum::body::Bytes,
) -> Result<Response, Problem> {
    s.kept.check(id.bucket(), &format_args!("reservation {id}"))?;
    let how: PaymentRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PaymentRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Problem::validation(format!("the body is not a payment request: {e}")))?
    };
    let path = format!("POST /reservations/{id}/payment");
    // A retry is the same request whatever its spelling; another method is another request.
    let request: [&[u8]; 2] = [path.as_bytes(), how.method.as_str().as_bytes()];
    Ok(respond(s.requests.ask(ticket, &key, &request, wait.0, Ask::Pay(id, how.method)).await?))
}

/// A request's answer: `202 {id, status}` at once (or replayed), or the reservation a wait
/// ended with, `200` once settled.
fn respond(settled: Settled) -> Response {
    match settled {
        Settled::Answered(answer) => answer.into_response(),
        Settled::Viewed(Viewed { reservation, timeline, settled, replayed }) => {
            let status = if settled { StatusCode::OK } else { StatusCode::ACCEPTED };
            let mut res = (status, Json(View::of(reservation, Some(timeline)))).into_response();
            if replayed {
                res.headers_mut().insert(idempotency::REPLAYED, axum::http::HeaderValue::from_static("true"));
            }
            res
        }
    }
}

/// Shows one of the caller's reservations, with its timeline.
#[utoipa::path(
    get,
    path = "/reservations/{id}",
    tag = NAME,
    params(("id" = ReservationId, Path, description = "The reservation.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reservation.", body = View),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
        (status = 500, response = Internal),
    )
)]
async fn get_reservation(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(id): ApiPath<ReservationId>,
) -> Result<Json<View>, Problem> {
    s.kept.check(id.bucket(), &format_args!("reservation {id}"))?;
    let (r, timeline) = s.requests.find(who.user_id, id).await?;
    Ok(Json(View::of(r, Some(timeline))))
}

/// Streams one of the caller's reservations as Server-Sent Events: an event `reservation` (as
/// `GET /reservations/{id}` answers it, with its timeline) at once, and again after each change
/// as the saga moves it, until it is CONFIRMED, FAILED, EXPIRED or CANCELLED (the last event).
/// A page follows the saga without polling.
#[utoipa::path(
    get,
    path = "/reservations/{id}/events",
    tag = NAME,
    params(("id" = ReservationId, Path, description = "The reservation.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "`text/event-stream`: events `reservation`, each data a View.",
         body = ServerSentEvent, content_type = "text/event-stream"),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
        (status = 500, response = Internal),
    )
)]
async fn reservation_events(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(id): ApiPath<ReservationId>,
) -> Result<Response, Problem> {
    use futures::StreamExt;
    s.kept.check(id.bucket(), &format_args!("reservation {id}"))?;
    let views = s.requests.follow(who.user_id, id).await?;
    let events = views.map(|(r, timeline)| {
        let view = View::of(r, Some(timeline));
        Ok::<_, std::convert::Infallible>(
            Event::default().event("reservation").json_data(view).unwrap_or_default(),
        )
    });
    Ok(platform::http::event_stream(events))
}

/// Lists the caller's reservations, oldest first (without timelines).
#[utoipa::path(
    get,
    path = "/reservations",
    tag = NAME,
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of the caller's reservations.", body = Paged<View>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 500, response = Internal),
    )
)]
async fn list_reservations(
    State(s): State<AppState>,
    who: Identity,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<View>>, Problem> {
    let limit = page.limit()?;
    let rows = s.requests.list(who.user_id, page.starting_after, limit + 1).await?;
    let page = Paged::from_overfetch(rows, limit);
    Ok(Json(Paged {
        data: page.data.into_iter().map(|r| View::of(r, None)).collect(),
        has_more: page.has_more,
    }))
}

/// Cancels a HELD reservation: it ends CANCELLED and its seats are released.
#[utoipa::path(
    delete,
    path = "/reservations/{id}",
    tag = NAME,
    params(("id" = ReservationId, Path, description = "The reservation.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The cancelled reservation, with its timeline.", body = View),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
        (status = 409, description = "Only a HELD reservation can be cancelled (`NOT_CANCELLABLE`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn cancel_reservation(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(id): ApiPath<ReservationId>,
) -> Result<Json<View>, Problem> {
    s.kept.check(id.bucket(), &format_args!("reservation {id}"))?;
    let (r, timeline) = s.requests.cancel(who.user_id, id).await?;
    Ok(Json(View::of(r, Some(timeline))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::requests::MAX_SEATS;

    #[test]
    fn the_documented_seat_limit_is_the_rule() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ReservationRequest::schema()).unwrap();
        assert_eq!(schema["properties"]["seatNos"]["maxItems"], MAX_SEATS);
    }
}
