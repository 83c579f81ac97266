//! `POST /wallets/me/charges`, `GET /wallets/me`.

use crate::{AppState, NAME, SCHEMA, domain, store};
use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use contracts::{ChargeCompleted, ChargeId, Envelope, UserId, Won};
use platform::{
    Problem,
    auth::Identity,
    idempotency::{self, MaybeKey, StoredResponse},
    problem::ApiJson,
};
use serde::{Deserialize, Serialize};

pub fn routes() -> Router<AppState> {
    Router::new().route("/wallets/me", get(get_wallet)).route("/wallets/me/charges", post(charge_wallet))
}

/// A top-up.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargeRequest {
    pub amount: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Wallet {
    user_id: UserId,
    balance: Won,
}

async fn get_wallet(
    State(state): State<AppState>,
    who: Identity,
) -> Result<Json<serde_json::Value>, Problem> {
    let balance = store::balance(&state.db, who.user_id).await.map_err(|e| Problem::internal(&e))?;
    Ok(Json(
        serde_json::to_value(Wallet { user_id: who.user_id, balance }).map_err(|e| Problem::internal(&e))?,
    ))
}

async fn charge_wallet(
    State(state): State<AppState>,
    who: Identity,
    key: MaybeKey,
    ApiJson(body): ApiJson<ChargeRequest>,
) -> Result<Response, Problem> {
    let amount = domain::charge_amount(body.amount).map_err(Problem::validation)?;
    let request = serde_json::to_vec(&body).map_err(|e| Problem::internal(&e))?;
    idempotency::run(&state.db, SCHEMA, &who, &key, &[b"POST /wallets/me/charges", &request], |txn| {
        Box::pin(async move {
            let balance = store::credit(txn, who.user_id, amount).await.map_err(balance_problem)?;
            let charge_id = ChargeId::new();
            store::insert_charge(txn, charge_id, who.user_id, amount, balance)
                .await
                .map_err(|e| Problem::internal(&e))?;
            let event = ChargeCompleted { charge_id, user_id: who.user_id, amount, balance };
            state
                .outbox
                .push(txn, &Envelope::new(NAME, who.user_id, event))
                .await
                .map_err(|e| Problem::internal(&e))?;
            StoredResponse::json(StatusCode::OK, &serde_json::json!({ "balance": balance }))
        })
    })
    .await
    .map(IntoResponse::into_response)
}

/// The balance cap is a check constraint; hitting it is the caller's problem, not ours.
fn balance_problem(e: sea_orm::DbErr) -> Problem {
    if e.to_string().contains("wallets_balance_check") {
        Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "BALANCE_LIMIT",
            "this charge would take the balance over 1,000,000,000,000 won",
        )
    } else {
        Problem::internal(&e)
    }
}
