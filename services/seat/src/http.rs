//! `GET /schedules/{id}/seats[?status=AVAILABLE]`.

use crate::{AppState, NAME, domain::SeatStatus, error::Error, store};
use axum::{Json, Router, extract::State, routing::get};
use contracts::{ScheduleId, SeatNo, Won};
use platform::{
    Problem,
    openapi::{BadRequest, Internal, NotFound, Shared},
    problem::{ApiPath, ApiQuery},
};
use serde::{Deserialize, Serialize};

/// The seat service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_seats),
    tags((name = NAME, description = "Seat inventory: what each schedule's seats cost and whether they are free.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new().route("/schedules/{id}/seats", get(list_seats))
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
        (status = 500, response = Internal),
    )
)]
async fn list_seats(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiQuery(q): ApiQuery<SeatQuery>,
) -> Result<Json<SeatMap>, Problem> {
    let status = match q.status.as_deref() {
        None => None,
        Some(raw) => {
            Some(SeatStatus::parse(raw).ok_or(Error::Invalid("status must be AVAILABLE, HELD or SOLD"))?)
        }
    };
    let seats = s
        .maps
        .get(id, async { Ok::<_, sea_orm::DbErr>(store::inventory(&s.db, id, None).await?.map(|i| i.seats)) })
        .await?
        .ok_or(Error::ScheduleNotFound)?;
    Ok(Json(SeatMap {
        schedule_id: id,
        seats: seats
            .iter()
            .filter(|seat| status.is_none_or(|wanted| seat.status == wanted))
            .map(|s| SeatView { seat_no: s.seat_no, price: s.price, status: s.status.as_str() })
            .collect(),
    }))
}
