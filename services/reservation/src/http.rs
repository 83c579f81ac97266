//! `POST /reservations`, `GET /reservations[/{id}]`, `POST /reservations/{id}/payment`,
//! `DELETE /reservations/{id}`.

use crate::{
    AppState, NAME, SCHEMA,
    domain::{Input, Reservation, Status},
    error::Error,
    saga::{self, Origin},
    store::{self, TimelineEntry},
    waiters::{RECHECK, Watch},
};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::{DateTime, Utc};
use contracts::{
    ConcertId, Envelope, ReservationFailureReason, ReservationId, ReservationRequested, ScheduleId, SeatNo,
    UserId, Won,
};
use platform::{
    Problem,
    auth::Identity,
    idempotency::{self, MaybeKey, StoredResponse},
    openapi::{
        BadRequest, BookingUnauthenticated, Internal, NotFound, QueueNotAdmitted, Shared, Unauthenticated,
        UnsupportedMediaType,
    },
    paging::{PageQuery, Paged, PreferWait},
    problem::{ApiJson, ApiPath, ApiQuery, PROBLEM_JSON},
    queue_guard::QueueTicket,
};
use serde::{Deserialize, Serialize};

/// Seats one reservation may hold.
pub const MAX_SEATS: usize = 4;

/// The reservation service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(create_reservation, list_reservations, get_reservation, cancel_reservation, pay_reservation),
    tags((name = NAME, description = "The saga: hold up to 4 seats, pay for them before the hold ends, or cancel.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/reservations", post(create_reservation).get(list_reservations))
        .route("/reservations/{id}", get(get_reservation).delete(cancel_reservation))
        .route("/reservations/{id}/payment", post(pay_reservation))
}

/// `{scheduleId, seatNos}`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationRequest {
    pub schedule_id: ScheduleId,
    /// 1-4 different seats of the schedule.
    #[schema(min_items = 1, max_items = 4)]
    pub seat_nos: Vec<i32>,
}

/// What `POST /reservations` and `POST /reservations/{id}/payment` answer at once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = ReservationAccepted)]
struct Accepted {
    id: ReservationId,
    #[schema(value_type = Status)]
    status: &'static str,
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
            created_at: r.created_at,
            timeline,
        }
    }
}

/// Sorted, unique, 1-4 seats that the schedule has.
fn validate_seats(requested: &[i32], schedule_seats: &[SeatNo]) -> Result<Vec<SeatNo>, Error> {
    if requested.is_empty() || requested.len() > MAX_SEATS {
        return Err(Error::Invalid(format!("seatNos must list 1-{MAX_SEATS} seats")));
    }
    let mut seats: Vec<SeatNo> = requested.iter().copied().map(SeatNo).collect();
    seats.sort();
    if seats.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::Invalid("seatNos must not repeat a seat".into()));
    }
    if let Some(unknown) = seats.iter().find(|s| !schedule_seats.contains(s)) {
        return Err(Error::Invalid(format!("seat {unknown} is not in this schedule")));
    }
    Ok(seats)
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
        (status = 403, response = QueueNotAdmitted),
        (status = 404, description = "The schedule does not exist (`SCHEDULE_NOT_FOUND`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "A seat is in another live reservation (`SEAT_UNAVAILABLE`), or a request with \
            this Idempotency-Key is still running (`IDEMPOTENCY_IN_PROGRESS`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "This Idempotency-Key was used for another request (`IDEMPOTENCY_KEY_REUSED`).",
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
    let request = serde_json::to_vec(&body)?;
    let request: [&[u8]; 2] = [b"POST /reservations", &request];
    // A retry of a request that went through is answered as before, even if the queue token
    // has been spent since.
    if let Some(answer) = idempotency::stored(&s.db, SCHEMA, &ticket.identity, &key, &request).await? {
        return settle(&s, ticket.identity, answer, wait, |st| st != Status::Pending, None, None).await;
    }
    let admitted = ticket.admit().await?;
    let who = admitted.identity;
    let (concert_id, schedule_seats) =
        s.schedules.get(&s.db, body.schedule_id).await?.ok_or(Error::ScheduleNotFound)?;
    let seats = validate_seats(&body.seat_nos, &schedule_seats)?;
    let r = Reservation {
        id: ReservationId::new(),
        user_id: who.user_id,
        schedule_id: body.schedule_id,
        concert_id,
        seat_nos: seats,
        status: Status::Pending,
        amount: None,
        held_until: None,
        failure_reason: None,
        queue_token: admitted.token.unwrap_or_default(),
        paid: false,
        created_at: Utc::now(),
    };
    let early = wait.0.map(|_| s.local.waiters.watch(r.id));
    let new = announced(&s.outbox, r)?;
    let (answer, entries) = if key.0.is_none() {
        // No transaction: there is no answer to keep for a retry. Written in one statement with
        // the requests that arrive meanwhile.
        let (answer, stored) = inserted(s.inserts.run(new).await?)?;
        let entries = stored.entries;
        s.local.saved(stored.row, stored.version, None);
        (servicekit::answered(&s.outbox, answer), Some(entries))
    } else {
        let outbox = s.outbox.clone();
        let answer = servicekit::idempotent(&s.outbox, &s.db, &who, &key, &request, |txn| {
            // Not remembered: the row is only stored once the transaction commits.
            Box::pin(async move {
                let mut done = store::insert_each_unless_taken(txn, &[new], &outbox).await?;
                let done = done.pop().ok_or(Error::Db(sea_orm::DbErr::RecordNotInserted))?;
                Ok(inserted(done)?.0)
            })
        })
        .await?;
        (answer, None)
    };
    settle(&s, who, answer, wait, |st| st != Status::Pending, early, entries).await
}

/// A new reservation with the `ReservationRequested` that announces it.
fn announced(outbox: &messaging::Outbox, r: Reservation) -> Result<store::NewReservation, Error> {
    let requested = ReservationRequested {
        reservation_id: r.id,
        user_id: r.user_id,
        schedule_id: r.schedule_id,
        seat_nos: r.seat_nos.clone(),
        queue_token: r.queue_token.clone(),
    };
    let event = outbox.row(&Envelope::new(NAME, r.id, requested))?;
    Ok(store::NewReservation { row: r, events: vec![event] })
}

/// The answer to an insert, and the row as stored; `SEAT_UNAVAILABLE` when a seat was taken.
fn inserted(done: store::Inserted) -> Result<(StoredResponse, store::Stored), Error> {
    match done {
        store::Inserted::Taken(seat) => Err(Error::SeatUnavailable(seat)),
        store::Inserted::Stored(stored) => Ok((accepted(&stored.row)?, stored)),
    }
}

/// `202 {id, status}` with the reservation's `Location`.
fn accepted(r: &Reservation) -> Result<StoredResponse, Error> {
    Ok(StoredResponse::json(StatusCode::ACCEPTED, &Accepted { id: r.id, status: r.status.as_str() })?
        .with_location(format!("/reservations/{}", r.id)))
}

/// Pays for a HELD reservation from the caller's wallet (`PaymentRequested`). It is PAYING until
/// the wallet answers: CONFIRMED, or FAILED with the seats released.
#[utoipa::path(
    post,
    path = "/reservations/{id}/payment",
    tag = NAME,
    params(("id" = ReservationId, Path, description = "The reservation."), MaybeKey, PreferWait, QueueTicket),
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
) -> Result<Response, Problem> {
    let path = format!("POST /reservations/{id}/payment");
    if let Some(answer) =
        idempotency::stored(&s.db, SCHEMA, &ticket.identity, &key, &[path.as_bytes()]).await?
    {
        return settle(&s, ticket.identity, answer, wait, |st| st != Status::Paying, None, None).await;
    }
    let who = ticket.admit().await?.identity;
    let early = wait.0.map(|_| s.local.waiters.watch(id));
    let origin = Origin::Request { user: who.user_id };
    // Without a key there is no answer to keep: one compare-and-set (written with the other
    // requests' that arrive meanwhile), unless the row moves meanwhile.
    if key.0.is_none() {
        let pay = Input::Pay { now: Utc::now() };
        if let Some((r, entries)) = saga::apply_requested(&s.saves, id, pay, who.user_id).await? {
            let answer = servicekit::answered(&s.outbox, accepted(&r)?);
            return settle(&s, who, answer, wait, |st| st != Status::Paying, early, entries).await;
        }
    }
    let answer = servicekit::idempotent(&s.outbox, &s.db, &who, &key, &[path.as_bytes()], |txn| {
        let outbox = s.outbox.clone();
        Box::pin(async move {
            let pay = Input::Pay { now: Utc::now() };
            let r = saga::apply(txn, &outbox, id, pay, origin).await?;
            Ok(accepted(&r)?)
        })
    })
    .await?;
    settle(&s, who, answer, wait, |st| st != Status::Paying, early, None).await
}

/// Answers at once, or with `Prefer: wait`, once the reservation settles (or the wait ends).
/// `early` is a watch registered before the request's own commit: when the answer is that
/// commit's (not a replay), the reservation was unsettled then, so instead of reading it at once
/// the wait starts with the first change signalled since (one read fewer per request). `own` is
/// the length of the timeline that commit left, when known: a settled view a consumer of this
/// process offers with a longer one is a later state, and answers without a read.
async fn settle(
    s: &AppState,
    who: Identity,
    answer: idempotency::Answer,
    wait: PreferWait,
    settled: impl Fn(Status) -> bool,
    early: Option<Watch>,
    own: Option<usize>,
) -> Result<Response, Problem> {
    let (Some(limit), Some(id)) = (
        wait.0,
        answer.stored.body.get("id").and_then(|v| v.as_str()).and_then(|v| v.parse::<ReservationId>().ok()),
    ) else {
        return Ok(answer.into_response());
    };
    let deadline = tokio::time::Instant::now() + limit;
    let (watch, mut look) = match early {
        Some(watch) if !answer.replayed && watch.id() == id => (watch, false),
        _ => (s.local.waiters.watch(id), true),
    };
    let mut seen = watch.since();
    loop {
        if look
            && let Some(view) = own.and_then(|entries| watch.offered_after(entries))
            && settled(view.reservation.status)
            && view.reservation.user_id == who.user_id
        {
            let view = View::of(view.reservation.clone(), Some(view.timeline.clone()));
            return Ok((StatusCode::OK, Json(view)).into_response());
        }
        if look {
            // Counted before the read, so a change committed in between still wakes us.
            seen = watch.count();
            let (r, timeline) =
                store::get_with_timeline(&s.db, id, who.user_id).await?.ok_or(Error::NotFound)?;
            if settled(r.status) || tokio::time::Instant::now() >= deadline {
                let status = if settled(r.status) { StatusCode::OK } else { StatusCode::ACCEPTED };
                let mut res = (status, Json(View::of(r, Some(timeline)))).into_response();
                if answer.replayed {
                    res.headers_mut()
                        .insert(idempotency::REPLAYED, axum::http::HeaderValue::from_static("true"));
                }
                return Ok(res);
            }
        }
        look = true;
        let wake = deadline.min(tokio::time::Instant::now() + RECHECK);
        let _ = tokio::time::timeout_at(wake, watch.after(seen)).await;
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
        (status = 500, response = Internal),
    )
)]
async fn get_reservation(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(id): ApiPath<ReservationId>,
) -> Result<Json<View>, Problem> {
    let (r, timeline) = store::get_with_timeline(&s.db, id, who.user_id).await?.ok_or(Error::NotFound)?;
    Ok(Json(View::of(r, Some(timeline))))
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
    let rows = store::list(&s.db, who.user_id, page.starting_after, limit + 1).await?;
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
    use sea_orm::TransactionTrait;
    let txn = s.db.begin().await?;
    let r = saga::apply(&txn, &s.outbox, id, Input::Cancel, Origin::Request { user: who.user_id }).await?;
    let timeline = store::timeline(&txn, id).await?;
    s.outbox.commit(txn).await?;
    Ok(Json(View::of(r, Some(timeline))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_seat_limit_is_the_rule() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ReservationRequest::schema()).unwrap();
        assert_eq!(schema["properties"]["seatNos"]["maxItems"], MAX_SEATS);
    }

    #[test]
    fn seat_lists_are_checked_against_the_schedule() {
        let schedule: Vec<SeatNo> = (1..=50).map(SeatNo).collect();
        assert_eq!(validate_seats(&[3, 1], &schedule).unwrap(), vec![SeatNo(1), SeatNo(3)]);
        for bad in [vec![], vec![1, 2, 3, 4, 5], vec![2, 2], vec![51], vec![0], vec![-1]] {
            assert!(validate_seats(&bad, &schedule).is_err(), "{bad:?}");
        }
    }
}
