//! What the delivery log answers when a request cannot be done: one case each, one mapping.

use crate::DeliveryStatus;
use axum::http::StatusCode;
use platform::problem::{ApiError, AsProblem};

/// Why a delivery-log request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the delivery was not found")]
    DeliveryNotFound,
    /// Only a FAILED delivery is sent again.
    #[error("the delivery is {}; only a FAILED delivery can be retried", .0.as_str())]
    NotRetryable(DeliveryStatus),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::DeliveryNotFound => AsProblem::Code(StatusCode::NOT_FOUND, "NOT_FOUND"),
            Error::NotRetryable(_) => AsProblem::Code(StatusCode::CONFLICT, "NOT_RETRYABLE"),
        }
    }
}
