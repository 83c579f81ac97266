//! The catalog routes: browsing for everyone, changes for admins.

use crate::{
    AppState, Error, NAME, domain,
    domain::ScheduleRequest,
    store::{self, Concert, Schedule},
};
use axum::{
    Json, Router,
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use chrono::Utc;
use contracts::{
    ConcertCreated, ConcertId, ConcertUpdated, Envelope, ScheduleCancelled, ScheduleChanged, ScheduleCreated,
    ScheduleId, SeatPrice,
};
use messaging::Outbox;
use platform::{
    Problem,
    auth::Admin,
    openapi::{BadRequest, Forbidden, Internal, NotFound, Shared, Unauthenticated, UnsupportedMediaType},
    paging::{PageQuery, Paged},
    problem::{ApiJson, ApiPath, ApiQuery, PROBLEM_JSON},
};
use sea_orm::{DatabaseTransaction, TransactionTrait};
use serde::{Deserialize, Serialize};

/// The catalog's OpenAPI document: every route below, with its schemas.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        list_concerts,
        create_concert,
        get_concert,
        update_concert,
        list_schedules,
        create_schedule,
        get_schedule,
        change_schedule,
        cancel_schedule
    ),
    tags((name = NAME, description = "The catalog: concerts and their schedules. Everyone browses; admins change.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/concerts", get(list_concerts).post(create_concert))
        .route("/concerts/{id}", get(get_concert).put(update_concert))
        .route("/concerts/{id}/schedules", get(list_schedules).post(create_schedule))
        .route("/concerts/{id}/schedules/{scheduleId}", get(get_schedule).put(change_schedule))
        .route("/concerts/{id}/schedules/{scheduleId}/cancellation", post(cancel_schedule))
}

/// `{name, host}`.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConcertRequest {
    /// 1-200 characters, not all blank, no control characters (kept without the blanks around
    /// it).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// Who puts it on; as `name`.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub host: String,
}

/// Lists concerts, oldest first.
#[utoipa::path(
    get,
    path = "/concerts",
    tag = NAME,
    params(PageQuery),
    responses(
        (status = 200, description = "One page of concerts.", body = Paged<Concert>),
        (status = 400, response = BadRequest),
        (status = 500, response = Internal),
    )
)]
async fn list_concerts(
    State(s): State<AppState>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Concert>>, Problem> {
    let limit = page.limit()?;
    let rows = store::list_concerts(&s.db, page.starting_after, limit + 1).await?;
    Ok(Json(Paged::from_overfetch(rows, limit)))
}

/// Shows one concert.
#[utoipa::path(
    get,
    path = "/concerts/{id}",
    tag = NAME,
    params(("id" = ConcertId, Path, description = "The concert.")),
    responses(
        (status = 200, description = "The concert.", body = Concert),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    )
)]
async fn get_concert(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<ConcertId>,
) -> Result<Json<Concert>, Problem> {
    store::get_concert(&s.db, id).await?.map(Json).ok_or(Error::ConcertNotFound.into())
}

/// Lists a concert's schedules, oldest first.
#[utoipa::path(
    get,
    path = "/concerts/{id}/schedules",
    tag = NAME,
    params(("id" = ConcertId, Path, description = "The concert."), PageQuery),
    responses(
        (status = 200, description = "One page of the concert's schedules.", body = Paged<Schedule>),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    )
)]
async fn list_schedules(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<ConcertId>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Schedule>>, Problem> {
    let limit = page.limit()?;
    if store::get_concert(&s.db, id).await?.is_none() {
        return Err(Error::ConcertNotFound.into());
    }
    let rows = store::list_schedules(&s.db, id, page.starting_after, limit + 1).await?;
    Ok(Json(Paged::from_overfetch(rows, limit)))
}

/// Creates a concert and its announcement in `txn`.
pub(crate) async fn create_concert_in(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    name: &str,
    host: &str,
) -> Result<ConcertId, Error> {
    let concert = Concert {
        id: ConcertId::new(),
        name: domain::label("name", name).map_err(Error::Invalid)?,
        host: domain::label("host", host).map_err(Error::Invalid)?,
    };
    store::insert_concert(txn, &concert).await?;
    let event = ConcertCreated { concert_id: concert.id, name: concert.name, host: concert.host };
    outbox.push(txn, &Envelope::new(NAME, concert.id, event)).await?;
    Ok(concert.id)
}

/// Adds a concert to the catalog and announces it (`ConcertCreated`). Admins only.
#[utoipa::path(
    post,
    path = "/concerts",
    tag = NAME,
    request_body = ConcertRequest,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created.", body = Concert,
            headers(("Location" = String, description = "`/concerts/{id}`"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    )
)]
async fn create_concert(
    State(s): State<AppState>,
    _admin: Admin,
    ApiJson(body): ApiJson<ConcertRequest>,
) -> Result<Response, Problem> {
    let txn = s.db.begin().await?;
    let id = create_concert_in(&txn, &s.outbox, &body.name, &body.host).await?;
    let concert = store::get_concert(&txn, id).await?.ok_or(Error::ConcertNotFound)?;
    s.outbox.commit(txn).await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/concerts/{id}"))], Json(concert)).into_response())
}

/// Renames a concert or changes its host, and announces it (`ConcertUpdated`). Admins only.
#[utoipa::path(
    put,
    path = "/concerts/{id}",
    tag = NAME,
    params(("id" = ConcertId, Path, description = "The concert.")),
    request_body = ConcertRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The concert as it is now.", body = Concert),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    )
)]
async fn update_concert(
    State(s): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<ConcertId>,
    ApiJson(body): ApiJson<ConcertRequest>,
) -> Result<Json<Concert>, Problem> {
    let concert = Concert {
        id,
        name: domain::label("name", &body.name).map_err(Error::Invalid)?,
        host: domain::label("host", &body.host).map_err(Error::Invalid)?,
    };
    let txn = s.db.begin().await?;
    if !store::update_concert(&txn, &concert).await? {
        return Err(Error::ConcertNotFound.into());
    }
    let event = ConcertUpdated { concert_id: id, name: concert.name.clone(), host: concert.host.clone() };
    s.outbox.push(&txn, &Envelope::new(NAME, id, event)).await?;
    s.outbox.commit(txn).await?;
    Ok(Json(concert))
}

/// Creates a validated schedule and its announcement in `txn`.
pub(crate) async fn create_schedule_in(
    txn: &DatabaseTransaction,
    outbox: &Outbox,
    concert: ConcertId,
    req: &ScheduleRequest,
    seats: Vec<SeatPrice>,
) -> Result<Schedule, Error> {
    // As Postgres keeps them (microseconds), so the answer and the announcement say what a read says.
    use chrono::SubsecRound;
    let schedule = Schedule {
        id: ScheduleId::new(),
        concert_id: concert,
        starts_at: req.starts_at.trunc_subsecs(6),
        seat_count: i32::try_from(seats.len()).unwrap_or(i32::MAX),
        sales_open_at: req.sales_open_at.map(|t| t.trunc_subsecs(6)),
        cancelled_at: None,
    };
    store::insert_schedule(txn, &schedule).await?;
    let event = ScheduleCreated {
        schedule_id: schedule.id,
        concert_id: concert,
        starts_at: schedule.starts_at,
        seats,
        sales_open_at: schedule.sales_open_at,
    };
    outbox.push(txn, &Envelope::new(NAME, schedule.id, event)).await?;
    Ok(schedule)
}

/// Adds a schedule with its seats and prices, and announces it (`ScheduleCreated`); the seat
/// service builds the inventory from that. Admins only.
#[utoipa::path(
    post,
    path = "/concerts/{id}/schedules",
    tag = NAME,
    params(("id" = ConcertId, Path, description = "The concert.")),
    request_body = domain::ScheduleShape,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created.", body = Schedule,
            headers(("Location" = String, description = "`/concerts/{id}/schedules/{scheduleId}`"))),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "In its shape, but starting in the past, listing a seat twice, or with a \
            `seatCount` that is not the number of seats listed (`SCHEDULE_REFUSED`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn create_schedule(
    State(s): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<ConcertId>,
    ApiJson(body): ApiJson<ScheduleRequest>,
) -> Result<Response, Problem> {
    let seats = domain::plan_schedule(&body, Utc::now()).map_err(Error::from)?;
    let txn = s.db.begin().await?;
    if store::get_concert(&txn, id).await?.is_none() {
        return Err(Error::ConcertNotFound.into());
    }
    let schedule = create_schedule_in(&txn, &s.outbox, id, &body, seats).await?;
    s.outbox.commit(txn).await?;
    let location = format!("/concerts/{id}/schedules/{}", schedule.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(schedule)).into_response())
}

/// One schedule of a concert.
#[utoipa::path(
    get,
    path = "/concerts/{id}/schedules/{scheduleId}",
    tag = NAME,
    params(
        ("id" = ConcertId, Path, description = "The concert."),
        ("scheduleId" = ScheduleId, Path, description = "The schedule."),
    ),
    responses(
        (status = 200, description = "The schedule.", body = Schedule),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    )
)]
async fn get_schedule(
    State(s): State<AppState>,
    ApiPath((concert, id)): ApiPath<(ConcertId, ScheduleId)>,
) -> Result<Json<Schedule>, Problem> {
    store::get_schedule(&s.db, concert, id).await?.map(Json).ok_or(Error::ScheduleNotFound.into())
}

/// Moves a schedule: when it starts and when its sale opens (absent: on sale from now); its
/// seats and prices stay. Announces `ScheduleChanged`: the inventory and the waiting room
/// follow. Admins only.
#[utoipa::path(
    put,
    path = "/concerts/{id}/schedules/{scheduleId}",
    tag = NAME,
    params(
        ("id" = ConcertId, Path, description = "The concert."),
        ("scheduleId" = ScheduleId, Path, description = "The schedule."),
    ),
    request_body = domain::ScheduleChange,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Moved.", body = Schedule),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "The schedule is cancelled (`SCHEDULE_CANCELLED`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "Starting in the past, or a sale opening after the start \
            (`SCHEDULE_REFUSED`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn change_schedule(
    State(s): State<AppState>,
    _admin: Admin,
    ApiPath((concert, id)): ApiPath<(ConcertId, ScheduleId)>,
    ApiJson(body): ApiJson<domain::ScheduleChange>,
) -> Result<Json<Schedule>, Problem> {
    domain::plan_times(body.starts_at, body.sales_open_at, Utc::now()).map_err(Error::from)?;
    let txn = s.db.begin().await?;
    let schedule = store::move_schedule(&txn, concert, id, body.starts_at, body.sales_open_at)
        .await?
        .ok_or(Error::ScheduleNotFound)?;
    if schedule.cancelled_at.is_some() {
        return Err(Error::ScheduleCancelled.into());
    }
    let event = ScheduleChanged {
        schedule_id: id,
        concert_id: concert,
        starts_at: schedule.starts_at,
        sales_open_at: schedule.sales_open_at,
    };
    s.outbox.push(&txn, &Envelope::new(NAME, id, event)).await?;
    s.outbox.commit(txn).await?;
    Ok(Json(schedule))
}

/// Cancels a schedule. Announces `ScheduleCancelled`: its seats are no longer sold, every live
/// reservation of it fails (`SCHEDULE_CANCELLED`, seats released, a payment in flight given
/// back) and every confirmed one is refunded to its buyer's wallet. Cancelling again changes
/// nothing and answers the same. Admins only.
#[utoipa::path(
    post,
    path = "/concerts/{id}/schedules/{scheduleId}/cancellation",
    tag = NAME,
    params(
        ("id" = ConcertId, Path, description = "The concert."),
        ("scheduleId" = ScheduleId, Path, description = "The schedule."),
    ),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Cancelled (`cancelledAt` says when).", body = Schedule),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    )
)]
async fn cancel_schedule(
    State(s): State<AppState>,
    _admin: Admin,
    ApiPath((concert, id)): ApiPath<(ConcertId, ScheduleId)>,
) -> Result<Json<Schedule>, Problem> {
    let txn = s.db.begin().await?;
    let (schedule, now_cancelled) =
        store::cancel_schedule(&txn, concert, id, Utc::now()).await?.ok_or(Error::ScheduleNotFound)?;
    if let (true, Some(cancelled_at)) = (now_cancelled, schedule.cancelled_at) {
        let event = ScheduleCancelled { schedule_id: id, concert_id: concert, cancelled_at };
        s.outbox.push(&txn, &Envelope::new(NAME, id, event)).await?;
        s.outbox.commit(txn).await?;
    } else {
        txn.rollback().await?;
    }
    Ok(Json(schedule))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_label_pattern_takes_exactly_the_labels_that_pass() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ConcertRequest::schema()).unwrap();
        for field in ["name", "host"] {
            assert_eq!(schema["properties"][field]["pattern"], schema["properties"]["name"]["pattern"]);
            assert_eq!(
                (&schema["properties"][field]["minLength"], &schema["properties"][field]["maxLength"]),
                (&1.into(), &200.into())
            );
        }
        let pattern = regex::Regex::new(schema["properties"]["name"]["pattern"].as_str().unwrap()).unwrap();
        let mut cases: Vec<String> =
            ["", " ", "a", " a ", "\u{feff}", "\u{3000}", "\u{2007}x", "\u{0}", "a\u{9f}", "Ì", "😀"]
                .map(String::from)
                .to_vec();
        cases.extend((0u32..0x3100).filter_map(char::from_u32).map(|c| format!("{c}")));
        cases.extend((0u32..0x3100).filter_map(char::from_u32).map(|c| format!("x{c}")));
        for raw in cases {
            assert_eq!(pattern.is_match(&raw), domain::label("name", &raw).is_ok(), "{raw:?}");
        }
    }
}
