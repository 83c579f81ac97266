//! `GET /payments?reservationId=`, `POST /payments/webhooks/{gateway}`.

use crate::{NAME, domain, error::Error, gateway::Gateway, store};
use axum::{
    Json, Router,
    extract::{FromRef, State},
    http::HeaderMap,
    routing::{get, post},
};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use contracts::{PaymentFailureReason, PaymentId, ReservationId, Won};
use messaging::Outbox;
use platform::{
    Problem,
    auth::{Identity, JwtKeys, Role},
    openapi::{BadRequest, Internal, Shared, Unauthenticated},
    problem::{ApiPath, ApiQuery, PROBLEM_JSON},
};
use sea_orm::DatabaseConnection;
use serde::{Deserialize, Serialize};

/// The one gateway this service talks to, as its webhook path names it.
pub const GATEWAY: &str = "pg-sim";

/// What the HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub jwt: JwtKeys,
    pub gateway: Gateway,
}

/// The payment service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(list_payments, take_webhook),
    tags((name = NAME, description = "Card payments through the external gateway: a reservation paid with \
        `{\"method\": \"CARD\"}` gets a payment here whose `checkoutUrl` the buyer opens to confirm it.")),
    modifiers(&Shared)
)]
pub struct Api;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/payments", get(list_payments))
        .route("/payments/webhooks/{gateway}", post(take_webhook))
}

/// Which reservation's payments to show.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct PaymentsQuery {
    /// The reservation.
    reservation_id: ReservationId,
}

/// A card payment of a reservation.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CardPayment {
    id: PaymentId,
    reservation_id: ReservationId,
    amount: Won,
    status: domain::Status,
    /// The gateway's page where the buyer confirms it, once created.
    #[serde(skip_serializing_if = "Option::is_none")]
    checkout_url: Option<String>,
    /// The deadline: a capture after it is refunded.
    pay_by: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failure_reason: Option<PaymentFailureReason>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// Lists the card payments of one of the caller's reservations, newest first: each attempt
/// with its status and, while it waits for the buyer, the gateway page to confirm it on.
#[utoipa::path(
    get,
    path = "/payments",
    tag = NAME,
    params(PaymentsQuery),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The reservation's card payments (none if it was never paid by card).",
            body = [CardPayment]),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 500, response = Internal),
    )
)]
async fn list_payments(
    State(s): State<AppState>,
    who: Identity,
    ApiQuery(q): ApiQuery<PaymentsQuery>,
) -> Result<Json<Vec<CardPayment>>, Problem> {
    let all = store::of_reservation(&s.db, q.reservation_id).await.map_err(Error::from)?;
    let shown = all
        .into_iter()
        .filter(|p| who.role == Role::Admin || p.payment.user_id == who.user_id)
        .map(|s| CardPayment {
            id: s.payment.id,
            reservation_id: s.payment.reservation_id,
            amount: s.payment.amount,
            status: s.payment.status,
            checkout_url: (s.payment.status == domain::Status::Ready && !s.payment.refund_wanted)
                .then_some(s.payment.checkout_url)
                .flatten(),
            pay_by: s.payment.pay_by,
            failure_reason: s.payment.failure_reason,
            created_at: s.created_at,
            updated_at: s.updated_at,
        })
        .collect();
    Ok(Json(shown))
}

/// A gateway's webhook body: what happened, and the payment as it stands.
#[derive(Debug, Deserialize)]
struct Webhook {
    #[serde(rename = "type")]
    kind: String,
    data: crate::gateway::Remote,
}

/// What a webhook did.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Taken {
    /// Whether this webhook id was taken before (a copy or a replay): nothing changed.
    duplicate: bool,
    /// The payment's status after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<domain::Status>,
}

/// Takes the gateway's webhook: its Standard Webhooks signature and timestamp (within five
/// minutes) are checked, and each `webhook-id` is taken once; a copy or a replay changes nothing.
#[utoipa::path(
    post,
    path = "/payments/webhooks/{gateway}",
    tag = NAME,
    params(("gateway" = String, Path, description = "The gateway: `pg-sim`.")),
    request_body(content = String, description = "`{type, data}` as the gateway sends it, signed \
        (`webhook-id`, `webhook-timestamp`, `webhook-signature`)."),
    responses(
        (status = 200, description = "Taken, or a copy of one taken.", body = Taken),
        (status = 400, response = BadRequest),
        (status = 401, description = "The signature or its timestamp does not verify (`INVALID_SIGNATURE`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such gateway (`UNKNOWN_GATEWAY`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 422, description = "About a payment this service did not make, or of another amount \
            (`UNKNOWN_PAYMENT`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn take_webhook(
    State(s): State<AppState>,
    ApiPath(gateway): ApiPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Taken>, Problem> {
    if gateway != GATEWAY {
        return Err(Error::UnknownGateway(gateway).into());
    }
    s.gateway.verify(&body, &headers).map_err(Error::BadSignature)?;
    let hook: Webhook = serde_json::from_slice(&body).map_err(|e| Error::BadWebhook(e.to_string()))?;
    let id = headers
        .get(standardwebhooks::HEADER_WEBHOOK_ID)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::BadSignature("no webhook-id".into()))?;
    let payment = hook
        .data
        .order_id
        .parse::<uuid::Uuid>()
        .map(PaymentId)
        .map_err(|_| Error::Mismatch(format!("no payment {:?} was made here", hook.data.order_id)))?;
    // The id is taken in the same transaction as the change: a webhook that fails is not
    // remembered, so the gateway's retry is taken.
    let taken = crate::webhook_once(&s.db, &s.outbox, id, payment, &hook.data).await?;
    tracing::info!(webhook = id, kind = %hook.kind, %payment, ?taken, "gateway webhook");
    Ok(Json(match taken {
        None => Taken { duplicate: true, status: None },
        Some(status) => Taken { duplicate: false, status: Some(status) },
    }))
}
