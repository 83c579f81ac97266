//! `POST /wallets/me/charges`, `GET /wallets/me`.

use crate::{AppState, NAME, domain, error::Error, store};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use contracts::{ChargeCompleted, ChargeFailed, ChargeId, Envelope, UserId, Won};
use platform::{
    Problem,
    auth::Identity,
    idempotency::{MaybeKey, StoredResponse},
    openapi::{BadRequest, Internal, Shared, Unauthenticated, UnsupportedMediaType},
    problem::{ApiJson, PROBLEM_JSON},
};
use serde::{Deserialize, Serialize};

/// The wallet service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(get_wallet, charge_wallet),
    tags((name = NAME, description = "Prepaid wallets: top up the caller's own; reservations are paid from it.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new().route("/wallets/me", get(get_wallet)).route("/wallets/me/charges", post(charge_wallet))
}

/// A top-up.
#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargeRequest {
    /// In won, 1-10,000,000.
    #[schema(minimum = 1, maximum = 10_000_000)]
    #[serde(deserialize_with = "platform::whole::number")]
    pub amount: i64,
}

/// The balance after a top-up.
#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Charged {
    balance: Won,
}

/// The caller's wallet.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct Wallet {
    user_id: UserId,
    balance: Won,
}

/// Shows the caller's balance (0 for a wallet never topped up).
#[utoipa::path(
    get,
    path = "/wallets/me",
    tag = NAME,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's wallet.", body = Wallet),
        (status = 401, response = Unauthenticated),
        (status = 500, response = Internal),
    )
)]
async fn get_wallet(
    State(state): State<AppState>,
    who: Identity,
) -> Result<Json<serde_json::Value>, Problem> {
    let balance = store::balance(&state.db, who.user_id).await?;
    Ok(Json(serde_json::to_value(Wallet { user_id: who.user_id, balance })?))
}

/// Tops up the caller's wallet (`ChargeCompleted`); a top-up the balance cap refuses is
/// announced too (`ChargeFailed`, for the history), and answered 422 `BALANCE_LIMIT`.
#[utoipa::path(
    post,
    path = "/wallets/me/charges",
    tag = NAME,
    params(MaybeKey),
    request_body = ChargeRequest,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Charged.", body = Charged),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 409, description = "A request with this Idempotency-Key is still running (`IDEMPOTENCY_IN_PROGRESS`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 415, response = UnsupportedMediaType),
        (status = 422, description = "The balance would pass 1,000,000,000,000 won (`BALANCE_LIMIT`), or this \
            Idempotency-Key was used for another request (`IDEMPOTENCY_KEY_REUSED`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn charge_wallet(
    State(state): State<AppState>,
    who: Identity,
    key: MaybeKey,
    ApiJson(body): ApiJson<ChargeRequest>,
) -> Result<Response, Problem> {
    let amount = domain::charge_amount(body.amount).map_err(Error::Invalid)?;
    let request = serde_json::to_vec(&body)?;
    let outbox = state.outbox.clone();
    servicekit::idempotent(
        &state.outbox,
        &state.db,
        &who,
        &key,
        &[b"POST /wallets/me/charges", &request],
        |txn| {
            Box::pin(async move {
                let charge_id = ChargeId::new();
                // The wallet's row, locked: the cap is decided on the balance it will change.
                let before = store::balance_for_update(txn, who.user_id).await?;
                if let Err(reason) = domain::decide_charge(before, amount) {
                    // Refused, and recorded as such (the history shows the failed top-up).
                    let event = ChargeFailed { charge_id, user_id: who.user_id, amount, reason };
                    outbox.push(txn, &Envelope::new(NAME, who.user_id, event)).await?;
                    return StoredResponse::problem(&Problem::from(Error::BalanceLimit));
                }
                let balance = store::credit(txn, who.user_id, amount).await.map_err(over_the_cap)?;
                store::insert_charge(txn, charge_id, who.user_id, amount, balance).await?;
                let event = ChargeCompleted { charge_id, user_id: who.user_id, amount, balance };
                outbox.push(txn, &Envelope::new(NAME, who.user_id, event)).await?;
                StoredResponse::json(StatusCode::OK, &Charged { balance })
            })
        },
    )
    .await
    .map(IntoResponse::into_response)
}

/// The balance cap is also a check constraint (a wallet made by a racing first top-up has no
/// row to lock); hitting it is the caller's problem, not ours.
fn over_the_cap(e: sea_orm::DbErr) -> Error {
    if e.to_string().contains("wallets_balance_check") { Error::BalanceLimit } else { Error::Db(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_charge_bounds_are_the_rule() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(ChargeRequest::schema()).unwrap();
        assert_eq!(schema["properties"]["amount"]["minimum"], 1);
        assert_eq!(schema["properties"]["amount"]["maximum"], domain::MAX_CHARGE.0);
    }
}
