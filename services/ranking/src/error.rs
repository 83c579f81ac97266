//! What the rankings answer when a request cannot be done: one case each, one mapping.

use axum::http::StatusCode;
use platform::problem::{ApiError, AsProblem};

/// Why a ranking request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A window or a limit out of bounds.
    #[error("{0}")]
    Invalid(String),
    /// Redis did not answer; the caller may retry.
    #[error("the rankings are unavailable; retry shortly")]
    Unavailable(#[from] redis::RedisError),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::Invalid(_) => AsProblem::Code(StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            Error::Unavailable(_) => AsProblem::Code(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        }
    }
}
