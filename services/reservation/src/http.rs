//! `POST /reservations`, `GET /reservations[/{id}]`, `POST /reservations/{id}/payment`,
//! `DELETE /reservations/{id}`.

use crate::{
    AppState, NAME, SCHEMA,
    domain::{Input, Refusal, Reservation, Status},
    saga::{self, ApplyError},
    store::{self, TimelineEntry},
};
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
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
    paging::{PageQuery, Paged, PreferWait},
    problem::{ApiJson, ApiPath, ApiQuery},
};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Seats one reservation may hold.
pub const MAX_SEATS: usize = 4;
/// The queue token header (checked by the waiting-room guard).
pub const QUEUE_TOKEN: &str = "x-queue-token";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/reservations", post(create_reservation).get(list_reservations))
        .route("/reservations/{id}", get(get_reservation).delete(cancel_reservation))
        .route("/reservations/{id}/payment", post(pay_reservation))
}

/// `{scheduleId, seatNos}`.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReservationRequest {
    pub schedule_id: ScheduleId,
    pub seat_nos: Vec<i32>,
}

/// A reservation as the API shows it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct View {
    id: ReservationId,
    user_id: UserId,
    status: &'static str,
    schedule_id: ScheduleId,
    concert_id: ConcertId,
    seat_nos: Vec<SeatNo>,
    amount: Option<Won>,
    held_until: Option<DateTime<Utc>>,
    failure_reason: Option<ReservationFailureReason>,
    created_at: DateTime<Utc>,
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

fn internal(e: impl std::error::Error + 'static) -> Problem {
    Problem::internal(&e)
}

fn refused(r: Refusal) -> Problem {
    match r {
        Refusal::HoldExpired => Problem::new(
            StatusCode::CONFLICT,
            "HOLD_EXPIRED",
            "the seats were held until a time that has passed",
        ),
        Refusal::NotPayable(s) => Problem::new(
            StatusCode::CONFLICT,
            "NOT_PAYABLE",
            format!("the reservation is {}; only a HELD reservation can be paid", s.as_str()),
        ),
        Refusal::NotCancellable(s) => Problem::new(
            StatusCode::CONFLICT,
            "NOT_CANCELLABLE",
            format!("the reservation is {}; only a HELD reservation can be cancelled", s.as_str()),
        ),
    }
}

fn apply_problem(e: ApplyError) -> Problem {
    match e {
        ApplyError::NotFound => Problem::not_found("the reservation"),
        ApplyError::Refused(r) => refused(r),
        ApplyError::Db(e) => internal(e),
    }
}

/// Sorted, unique, 1-4 seats that the schedule has.
fn validate_seats(requested: &[i32], schedule_seats: &[SeatNo]) -> Result<Vec<SeatNo>, Problem> {
    if requested.is_empty() || requested.len() > MAX_SEATS {
        return Err(Problem::validation(format!("seatNos must list 1-{MAX_SEATS} seats")));
    }
    let mut seats: Vec<SeatNo> = requested.iter().copied().map(SeatNo).collect();
    seats.sort();
    if seats.windows(2).any(|w| w[0] == w[1]) {
        return Err(Problem::validation("seatNos must not repeat a seat"));
    }
    if let Some(unknown) = seats.iter().find(|s| !schedule_seats.contains(s)) {
        return Err(Problem::validation(format!("seat {unknown} is not in this schedule")));
    }
    Ok(seats)
}

async fn create_reservation(
    State(s): State<AppState>,
    who: Identity,
    key: MaybeKey,
    wait: PreferWait,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ReservationRequest>,
) -> Result<Response, Problem> {
    let (concert_id, schedule_seats) = store::schedule(&s.db, body.schedule_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| Problem::new(StatusCode::NOT_FOUND, "SCHEDULE_NOT_FOUND", "no such schedule"))?;
    let seats = validate_seats(&body.seat_nos, &schedule_seats)?;
    let queue_token = headers.get(QUEUE_TOKEN).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let request = serde_json::to_vec(&body).map_err(internal)?;
    let answer = idempotency::run(&s.db, SCHEMA, &who, &key, &[b"POST /reservations", &request], |txn| {
        let outbox = s.outbox.clone();
        Box::pin(async move {
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
                queue_token,
                paid: false,
                created_at: Utc::now(),
            };
            store::insert(txn, &r).await.map_err(internal)?;
            let requested = ReservationRequested {
                reservation_id: r.id,
                user_id: r.user_id,
                schedule_id: r.schedule_id,
                seat_nos: r.seat_nos.clone(),
                queue_token: r.queue_token.clone(),
            };
            outbox.push(txn, &Envelope::new(NAME, r.id, requested)).await.map_err(internal)?;
            store::record(txn, r.id, &["ReservationRequested"]).await.map_err(internal)?;
            Ok(StoredResponse::json(
                StatusCode::ACCEPTED,
                &serde_json::json!({"id": r.id, "status": "PENDING"}),
            )?
            .with_location(format!("/reservations/{}", r.id)))
        })
    })
    .await?;
    settle(&s, who, answer, wait, |st| st != Status::Pending).await
}

async fn pay_reservation(
    State(s): State<AppState>,
    who: Identity,
    key: MaybeKey,
    wait: PreferWait,
    ApiPath(id): ApiPath<ReservationId>,
) -> Result<Response, Problem> {
    let path = format!("POST /reservations/{id}/payment");
    let answer = idempotency::run(&s.db, SCHEMA, &who, &key, &[path.as_bytes()], |txn| {
        let outbox = s.outbox.clone();
        Box::pin(async move {
            if store::get(txn, id, who.user_id).await.map_err(internal)?.is_none() {
                return Err(Problem::not_found("the reservation"));
            }
            let r = saga::apply(txn, &outbox, id, Input::Pay { now: Utc::now() }, None, None)
                .await
                .map_err(apply_problem)?;
            Ok(StoredResponse::json(
                StatusCode::ACCEPTED,
                &serde_json::json!({"id": r.id, "status": r.status.as_str()}),
            )?
            .with_location(format!("/reservations/{id}")))
        })
    })
    .await?;
    settle(&s, who, answer, wait, |st| st != Status::Paying).await
}

/// Answers at once, or with `Prefer: wait`, once the reservation settles (or the wait ends).
async fn settle(
    s: &AppState,
    who: Identity,
    answer: idempotency::Answer,
    wait: PreferWait,
    settled: impl Fn(Status) -> bool,
) -> Result<Response, Problem> {
    let (Some(limit), Some(id)) = (
        wait.0,
        answer.stored.body.get("id").and_then(|v| v.as_str()).and_then(|v| v.parse::<ReservationId>().ok()),
    ) else {
        return Ok(answer.into_response());
    };
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let r = store::get(&s.db, id, who.user_id)
            .await
            .map_err(internal)?
            .ok_or_else(|| Problem::not_found("the reservation"))?;
        if settled(r.status) || tokio::time::Instant::now() >= deadline {
            let status = if settled(r.status) { StatusCode::OK } else { StatusCode::ACCEPTED };
            let timeline = store::timeline(&s.db, id).await.map_err(internal)?;
            let mut res = (status, Json(View::of(r, Some(timeline)))).into_response();
            if answer.replayed {
                res.headers_mut().insert(idempotency::REPLAYED, axum::http::HeaderValue::from_static("true"));
            }
            return Ok(res);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn get_reservation(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(id): ApiPath<ReservationId>,
) -> Result<Json<View>, Problem> {
    let r = store::get(&s.db, id, who.user_id)
        .await
        .map_err(internal)?
        .ok_or_else(|| Problem::not_found("the reservation"))?;
    let timeline = store::timeline(&s.db, id).await.map_err(internal)?;
    Ok(Json(View::of(r, Some(timeline))))
}

async fn list_reservations(
    State(s): State<AppState>,
    who: Identity,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<View>>, Problem> {
    let limit = page.limit()?;
    let rows = store::list(&s.db, who.user_id, page.starting_after, limit + 1).await.map_err(internal)?;
    let page = Paged::from_overfetch(rows, limit);
    Ok(Json(Paged {
        data: page.data.into_iter().map(|r| View::of(r, None)).collect(),
        has_more: page.has_more,
    }))
}

async fn cancel_reservation(
    State(s): State<AppState>,
    who: Identity,
    ApiPath(id): ApiPath<ReservationId>,
) -> Result<Json<View>, Problem> {
    use sea_orm::TransactionTrait;
    let txn = s.db.begin().await.map_err(internal)?;
    if store::get(&txn, id, who.user_id).await.map_err(internal)?.is_none() {
        return Err(Problem::not_found("the reservation"));
    }
    let r = saga::apply(&txn, &s.outbox, id, Input::Cancel, None, None).await.map_err(apply_problem)?;
    let timeline = store::timeline(&txn, id).await.map_err(internal)?;
    txn.commit().await.map_err(internal)?;
    Ok(Json(View::of(r, Some(timeline))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seat_lists_are_checked_against_the_schedule() {
        let schedule: Vec<SeatNo> = (1..=50).map(SeatNo).collect();
        assert_eq!(validate_seats(&[3, 1], &schedule).unwrap(), vec![SeatNo(1), SeatNo(3)]);
        for bad in [vec![], vec![1, 2, 3, 4, 5], vec![2, 2], vec![51], vec![0], vec![-1]] {
            assert!(validate_seats(&bad, &schedule).is_err(), "{bad:?}");
        }
    }
}
