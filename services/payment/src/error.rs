//! What the payment service answers when a request cannot be done: one case each, one mapping.

use axum::http::StatusCode;
use platform::{
    Problem,
    problem::{ApiError, AsProblem},
};

/// Why a payment request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The webhook names a gateway this service does not use.
    #[error("no gateway named {0:?}: webhooks are taken at /payments/webhooks/pg-sim")]
    UnknownGateway(String),
    /// The webhook's signature or timestamp does not check out (forged, altered or replayed late).
    #[error("the webhook's signature does not verify: {0}")]
    BadSignature(String),
    /// A signed webhook whose body is not a payment event.
    #[error("the webhook's body is not a payment event: {0}")]
    BadWebhook(String),
    /// A signed webhook about a payment this service never made, or for another amount.
    #[error("{0}")]
    Mismatch(String),
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::UnknownGateway(_) => AsProblem::Code(StatusCode::NOT_FOUND, "UNKNOWN_GATEWAY"),
            Error::BadSignature(_) => AsProblem::Code(StatusCode::UNAUTHORIZED, "INVALID_SIGNATURE"),
            Error::BadWebhook(_) => AsProblem::Code(StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            Error::Mismatch(_) => AsProblem::Code(StatusCode::UNPROCESSABLE_ENTITY, "UNKNOWN_PAYMENT"),
            Error::Problem(p) => AsProblem::Passed(p),
            Error::Db(_) => AsProblem::Internal,
        }
    }
}
