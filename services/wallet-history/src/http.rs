//! `GET /wallets/me/history`.

use crate::{
    AppState, NAME,
    store::{self, Entry},
};
use axum::{Json, Router, extract::State, routing::get};
use platform::{
    Problem,
    auth::Identity,
    openapi::{BadRequest, Internal, Shared, Unauthenticated},
    paging::{PageQuery, Paged},
    problem::ApiQuery,
};
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    paths(list_history),
    tags((name = NAME, description = "The caller's wallet history: charges, payments and refunds, newest first.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new().route("/wallets/me/history", get(list_history))
}

/// The caller's wallet history, newest first.
#[utoipa::path(
    get,
    path = "/wallets/me/history",
    tag = NAME,
    params(PageQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries.", body = Paged<Entry>),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 500, response = Internal),
    )
)]
async fn list_history(
    State(s): State<AppState>,
    who: Identity,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Entry>>, Problem> {
    let limit = page.limit()?;
    let rows = store::page(&s.db, who.user_id, page.starting_after, limit + 1).await?;
    Ok(Json(Paged::from_overfetch(rows, limit)))
}
