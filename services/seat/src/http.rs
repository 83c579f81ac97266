//! `GET /schedules/{id}/seats[?status=AVAILABLE]`.

use crate::{AppState, domain::SeatStatus, store};
use axum::{Json, Router, extract::State, routing::get};
use contracts::{ScheduleId, SeatNo, Won};
use platform::{
    Problem,
    problem::{ApiPath, ApiQuery},
};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new().route("/schedules/{id}/seats", get(list_seats))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeatQuery {
    status: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeatView {
    seat_no: SeatNo,
    price: Won,
    status: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SeatMap {
    schedule_id: ScheduleId,
    seats: Vec<SeatView>,
}

async fn list_seats(
    State(s): State<AppState>,
    ApiPath(id): ApiPath<ScheduleId>,
    ApiQuery(q): ApiQuery<SeatQuery>,
) -> Result<Json<SeatMap>, Problem> {
    let status = match q.status.as_deref() {
        None => None,
        Some(raw) => Some(
            SeatStatus::parse(raw)
                .ok_or_else(|| Problem::validation("status must be AVAILABLE, HELD or SOLD"))?,
        ),
    };
    let seats = store::list(&s.db, id, status)
        .await
        .map_err(|e| Problem::internal(&e))?
        .ok_or_else(|| Problem::not_found("the schedule"))?;
    Ok(Json(SeatMap {
        schedule_id: id,
        seats: seats
            .into_iter()
            .map(|s| SeatView { seat_no: s.seat_no, price: s.price, status: s.status.as_str() })
            .collect(),
    }))
}
