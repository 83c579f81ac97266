//! The merchant's API, `/v1/payments…`, and the knobs at `/sim/settings`; both take the API key.

use crate::{
    AppState, Settings,
    payment::{Action, Payment, PaymentId, Status},
};
use axum::{
    Json, Router,
    extract::{Path, Request, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use std::time::Duration;

/// The longest `Idempotency-Key` taken.
const MAX_KEY_LEN: usize = 255;

pub(crate) fn routes(state: AppState) -> Router<AppState> {
    let v1 = Router::new()
        .route("/v1/payments", post(create_payment))
        .route("/v1/payments/{id}", get(get_payment))
        .route("/v1/payments/{id}/cancel", post(cancel_payment))
        .route("/v1/payments/{id}/refund", post(refund_payment))
        .route_layer(middleware::from_fn_with_state(state.clone(), gateway));
    let sim = Router::new()
        .route("/sim/settings", get(get_settings).put(put_settings))
        .route_layer(middleware::from_fn_with_state(state, authorized));
    v1.merge(sim)
}

/// Why a merchant's call failed: one case each, one problem+json mapping.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("send the API key as `Authorization: Bearer <key>`")]
    Unauthorized,
    #[error("the gateway is unavailable (simulated: failNextApiCalls); nothing was done, retry later")]
    Unavailable,
    #[error(
        "send an `Idempotency-Key` header (1 to 255 visible characters, new for each payment) so a retry creates no second payment"
    )]
    IdempotencyKeyRequired,
    #[error("this Idempotency-Key was first used with a different request; use a new key for a new payment")]
    IdempotencyKeyReused,
    /// A body that is not the JSON asked for, with the status axum gives it (400, 415, 422).
    #[error("{1}")]
    Unreadable(StatusCode, String),
    #[error("{0}")]
    Invalid(String),
    #[error("there is no payment {0}")]
    NotFound(String),
    #[error("the payment is {}: a captured payment is refunded, not cancelled", .0.as_str())]
    AlreadyCaptured(Status),
    #[error("the payment is {}: only a CAPTURED payment can be refunded", .0.as_str())]
    NotCaptured(Status),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "GATEWAY_UNAVAILABLE"),
            ApiError::IdempotencyKeyRequired => (StatusCode::BAD_REQUEST, "IDEMPOTENCY_KEY_REQUIRED"),
            ApiError::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "IDEMPOTENCY_KEY_REUSED"),
            ApiError::Unreadable(status, _) => (*status, unreadable_code(*status)),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "VALIDATION_FAILED"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "PAYMENT_NOT_FOUND"),
            ApiError::AlreadyCaptured(_) => (StatusCode::CONFLICT, "ALREADY_CAPTURED"),
            ApiError::NotCaptured(_) => (StatusCode::CONFLICT, "NOT_CAPTURED"),
        };
        let body = serde_json::json!({
            "type": format!("urn:pg-sim:problem:{}", code.to_ascii_lowercase().replace('_', "-")),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": self.to_string(),
            "code": code,
        });
        let mut response = (status, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        match self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

fn unreadable_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        StatusCode::UNPROCESSABLE_ENTITY => "VALIDATION_FAILED",
        _ => "INVALID_REQUEST",
    }
}

/// Every `/v1` call: the simulated latency, the API key, then the simulated outage.
async fn gateway(State(s): State<AppState>, request: Request, next: Next) -> Response {
    let latency = s.settings().api_latency_ms;
    tokio::time::sleep(Duration::from_millis(latency)).await;
    if !s.is_authorized(request.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    // Counted after the key, so a stray unauthenticated call does not use up the failure meant
    // for the merchant under test.
    let fail = {
        let mut settings = s.settings();
        let fail = settings.fail_next_api_calls > 0;
        settings.fail_next_api_calls = settings.fail_next_api_calls.saturating_sub(1);
        fail
    };
    if fail {
        tracing::info!(path = request.uri().path(), "answered 503 (failNextApiCalls)");
        return ApiError::Unavailable.into_response();
    }
    next.run(request).await
}

async fn authorized(State(s): State<AppState>, request: Request, next: Next) -> Response {
    if !s.is_authorized(request.headers()) {
        return ApiError::Unauthorized.into_response();
    }
    next.run(request).await
}

impl AppState {
    fn is_authorized(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, key)| key.trim().as_bytes());
        let expected = self.0.api_key.as_bytes();
        // Compared in constant time, like a real gateway's secret key.
        given.is_some_and(|given| {
            given.len() == expected.len()
                && given.iter().zip(expected).fold(0, |acc, (a, b)| acc | (a ^ b)) == 0
        })
    }
}

/// The body of `POST /v1/payments`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct NewPaymentBody {
    order_id: String,
    amount: i64,
    currency: Option<String>,
    return_url: Option<String>,
}

/// A checked payment request; what an `Idempotency-Key` is held to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NewPayment {
    order_id: String,
    amount: u64,
    currency: String,
    return_url: Option<String>,
}

impl NewPaymentBody {
    fn check(self) -> Result<NewPayment, ApiError> {
        let invalid = |m: &str| ApiError::Invalid(m.to_owned());
        let len = self.order_id.chars().count();
        if !(1..=100).contains(&len) || self.order_id.chars().any(char::is_control) {
            return Err(invalid("orderId must be 1 to 100 characters, none of them control characters"));
        }
        let amount = u64::try_from(self.amount)
            .ok()
            .filter(|a| *a > 0)
            .ok_or_else(|| invalid("amount must be a whole number of won greater than 0"))?;
        let currency = self.currency.unwrap_or_else(|| "KRW".into());
        if currency != "KRW" {
            return Err(invalid("currency must be KRW, the only currency the simulator takes"));
        }
        if let Some(url) = &self.return_url {
            if url.len() > 2048 {
                return Err(invalid("returnUrl must be at most 2048 bytes"));
            }
            crate::http_url(url).map_err(|m| ApiError::Invalid(format!("returnUrl {m}")))?;
        }
        Ok(NewPayment { order_id: self.order_id, amount, currency, return_url: self.return_url })
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| (1..=MAX_KEY_LEN).contains(&k.len()))
        .map(str::to_owned)
        .ok_or(ApiError::IdempotencyKeyRequired)
}

/// Creates a READY payment; the buyer pays at its `checkoutUrl`. The same `Idempotency-Key`
/// with the same request answers the payment it created (200, `Idempotent-Replayed: true`).
async fn create_payment(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewPaymentBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let Json(body) = body.map_err(|r| ApiError::Unreadable(r.status(), r.body_text()))?;
    let request = body.check()?;
    // Looked up and inserted under one lock: two concurrent retries create one payment.
    let mut ledger = s.ledger();
    if let Some((first, id)) = ledger.idempotency.get(&key) {
        if *first != request {
            return Err(ApiError::IdempotencyKeyReused);
        }
        let payment = ledger.payments.get(id).cloned().ok_or_else(|| ApiError::NotFound(id.to_string()))?;
        return Ok((StatusCode::OK, [("idempotent-replayed", "true")], Json(payment)).into_response());
    }
    let id = PaymentId::new();
    let payment = Payment {
        checkout_url: format!("{}/checkout/{id}", s.public_url()),
        id: id.clone(),
        order_id: request.order_id.clone(),
        amount: request.amount,
        currency: request.currency.clone(),
        status: Status::Ready,
        return_url: request.return_url.clone(),
        created_at: chrono::Utc::now(),
        captured_at: None,
        cancelled_at: None,
        refunded_at: None,
        declined_at: None,
    };
    ledger.payments.insert(id.clone(), payment.clone());
    ledger.idempotency.insert(key, (request, id.clone()));
    drop(ledger);
    tracing::info!(payment = %id, order = %payment.order_id, amount = payment.amount, "payment created");
    let location = format!("/v1/payments/{id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(payment)).into_response())
}

async fn get_payment(State(s): State<AppState>, Path(id): Path<String>) -> Result<Json<Payment>, ApiError> {
    s.ledger().payments.get(id.as_str()).cloned().map(Json).ok_or(ApiError::NotFound(id))
}

/// READY → CANCELLED; a cancelled or declined payment is answered as it is.
async fn cancel_payment(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    match s.transition(&id, Action::Cancel) {
        Some(result) => result.map(Json).map_err(ApiError::AlreadyCaptured),
        None => Err(ApiError::NotFound(id)),
    }
}

/// CAPTURED → REFUNDED; a refunded payment is answered as it is.
async fn refund_payment(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Payment>, ApiError> {
    match s.transition(&id, Action::Refund) {
        Some(result) => result.map(Json).map_err(ApiError::NotCaptured),
        None => Err(ApiError::NotFound(id)),
    }
}

async fn get_settings(State(s): State<AppState>) -> Json<Settings> {
    Json(s.settings().clone())
}

/// Replaces every knob; fields left out take their defaults.
async fn put_settings(
    State(s): State<AppState>,
    body: Result<Json<Settings>, JsonRejection>,
) -> Result<Json<Settings>, ApiError> {
    let Json(settings) = body.map_err(|r| ApiError::Unreadable(r.status(), r.body_text()))?;
    settings.check().map_err(ApiError::Invalid)?;
    tracing::info!(?settings, "settings replaced");
    *s.settings() = settings.clone();
    Ok(Json(settings))
}
