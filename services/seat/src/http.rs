//! `GET /schedules/{id}/seats[?status=AVAILABLE]` and its live form,
//! `GET /schedules/{id}/seats/events`.

use crate::{AppState, NAME, domain::SeatStatus, error::Error, store};
use axum::{
    Json, Router,
    extract::State,
    response::{Response, sse::Event},
    routing::get,
};
use contracts::{Bucket, ScheduleId, SeatNo, Won};
use platform::{
    Problem,
    openapi::{BadRequest, Internal, Misdirected, NotFound, ServerSentEvent, Shared},
    problem::{ApiPath, ApiQuery},
};
use serde::{Deserialize, Serialize};

/// The seat service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_seats, seat_events),
    tags((name = NAME, description = "Seat inventory: what each schedule's seats cost and whether they are free.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/schedules/{id}/seats", get(list_seats))
        .route("/schedules/{id}/seats/events", get(seat_events))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct SeatQuery {
    /// Only seats in this state.
    #[param(value_type = Option<SeatStatus>)]
    status: Option<String>,
}

/// One seat: its number, price and state.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Seat)]
struct SeatView {
    seat_no: SeatNo,
    price: Won,
    #[schema(value_type = SeatStatus)]
    status: &'static str,
}

/// A schedule's seats, by seat number.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct SeatMap {
    schedule_id: ScheduleId,
    seats: Vec<SeatView>,
}

/// Lists a schedule's seats, by seat number.
#[utoipa::path(
    get,
    path = "/schedules/{id}/seats",
    tag = NAME,
    params(("id" = ScheduleId, Path, description = "The schedule."), SeatQuery),
    responses(
        (status = 200, description = "The seats.", body = SeatMap),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
        (status = 500, response = Internal),
    )
)]
async fn list_seats(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiQuery(q): ApiQuery<SeatQuery>,
) -> Result<Json<SeatMap>, Problem> {
    s.kept.check(Bucket::of(id), &format_args!("schedule {id}"))?;
    let status = match q.status.as_deref() {
        None => None,
        Some(raw) => {
            Some(SeatStatus::parse(raw).ok_or(Error::Invalid("status must be AVAILABLE, HELD or SOLD"))?)
        }
    };
    let seats = map_of(&s, id).await?;
    Ok(Json(view(id, &seats, status)))
}

/// The schedule's seats as recently read (`SeatMaps`); 404 for an unknown schedule.
async fn map_of(s: &AppState, id: ScheduleId) -> Result<crate::live::Map, Problem> {
    Ok(s.maps
        .get(id, async { Ok::<_, sea_orm::DbErr>(store::inventory(&s.db, id, None).await?.map(|i| i.seats)) })
        .await?
        .ok_or(Error::ScheduleNotFound)?)
}

/// The map of `seats` in state `status` (all with `None`).
fn view(schedule_id: ScheduleId, seats: &[crate::domain::Seat], status: Option<SeatStatus>) -> SeatMap {
    SeatMap {
        schedule_id,
        seats: seats
            .iter()
            .filter(|seat| status.is_none_or(|wanted| seat.status == wanted))
            .map(|s| SeatView { seat_no: s.seat_no, price: s.price, status: s.status.as_str() })
            .collect(),
    }
}

/// Streams a schedule's seats as Server-Sent Events: an event `seats` (a SeatMap, every seat) at
/// once, and again whenever a seat of it is held, sold or released, within a quarter of a
/// second; a seat map on a page stays current without polling. The stream stays open until
/// the client leaves.
#[utoipa::path(
    get,
    path = "/schedules/{id}/seats/events",
    tag = NAME,
    params(("id" = ScheduleId, Path, description = "The schedule.")),
    responses(
        (status = 200, description = "`text/event-stream`: events `seats`, each data a SeatMap.",
         body = ServerSentEvent, content_type = "text/event-stream"),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 421, response = Misdirected),
        (status = 500, response = Internal),
    )
)]
async fn seat_events(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<ScheduleId>,
) -> Result<Response, Problem> {
    s.kept.check(Bucket::of(id), &format_args!("schedule {id}"))?;
    let first = map_of(&s, id).await?;
    let mut maps = s.watched.watch(id, first);
    maps.mark_changed();
    let events = futures::stream::unfold(maps, move |mut maps| async move {
        maps.changed().await.ok()?;
        let seats = maps.borrow_and_update().clone();
        let event = Event::default().event("seats").json_data(view(id, &seats, None)).unwrap_or_default();
        Some((Ok::<_, std::convert::Infallible>(event), maps))
    });
    Ok(platform::http::event_stream(events))
}
