//! Admin routes over the delivery log: `GET /external-data/deliveries`,
//! `POST /external-data/deliveries/{id}/retry`.

use crate::{
    AppState, NAME,
    domain::{DeliveryId, DeliveryStatus},
    error::Error,
    store::{self, Delivery},
};
use axum::{
    Json, Router,
    extract::State,
    routing::{get, post},
};
use platform::{
    Problem,
    auth::Admin,
    openapi::{BadRequest, Forbidden, Internal, NotFound, Shared, Unauthenticated},
    paging::{PageQuery, Paged},
    problem::{ApiPath, ApiQuery, PROBLEM_JSON},
};
use serde::Deserialize;

/// The external-data service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_deliveries, retry_delivery),
    tags((name = NAME, description = "Deliveries of completed reservations to the external data platform. Admins only.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/external-data/deliveries", get(list_deliveries))
        .route("/external-data/deliveries/{id}/retry", post(retry_delivery))
}

/// Query parameters of the delivery list.
#[derive(Clone, Copy, Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only deliveries in this state.
    #[param(inline)]
    status: Option<DeliveryStatus>,
    /// Page size, 1-100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    /// The id of the last item of the previous page.
    starting_after: Option<uuid::Uuid>,
}

/// Lists deliveries, newest first. Admins only.
#[utoipa::path(
    get,
    path = "/external-data/deliveries",
    tag = NAME,
    params(ListQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "One page of deliveries.", body = Paged<Delivery>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    )
)]
async fn list_deliveries(
    State(s): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<Paged<Delivery>>, Problem> {
    let limit = PageQuery { limit: q.limit, starting_after: q.starting_after }.limit()?;
    let rows = store::list(&s.db, q.status, q.starting_after, limit + 1).await?;
    Ok(Json(Paged::from_overfetch(rows, limit)))
}

/// Sends a FAILED delivery again: it becomes PENDING, due now, with a fresh attempt budget.
/// Admins only.
#[utoipa::path(
    post,
    path = "/external-data/deliveries/{id}/retry",
    tag = NAME,
    params(("id" = DeliveryId, Path, description = "The delivery.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The delivery, PENDING again.", body = Delivery),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 409, description = "Only a FAILED delivery can be retried (`NOT_RETRYABLE`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn retry_delivery(
    State(s): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<DeliveryId>,
) -> Result<Json<Delivery>, Problem> {
    if let Some(delivery) = store::retry(&s.db, id).await? {
        tracing::info!(delivery = %id, "delivery retried by an admin");
        return Ok(Json(delivery));
    }
    match store::get(&s.db, id).await? {
        None => Err(Error::DeliveryNotFound.into()),
        Some(d) => Err(Error::NotRetryable(d.status).into()),
    }
}
