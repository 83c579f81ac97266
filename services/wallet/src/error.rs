//! What the wallet answers when a request cannot be done: one case each, one mapping.

use axum::http::StatusCode;
use platform::{
    Problem,
    problem::{ApiError, AsProblem},
};

/// Why a wallet request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks a rule of the wallet (an amount out of bounds).
    #[error("{0}")]
    Invalid(String),
    /// The charge would take the balance past its cap.
    #[error("this charge would take the balance over 1,000,000,000,000 won")]
    BalanceLimit,
    /// What a shared layer answered (authentication, idempotency).
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::Invalid(_) => AsProblem::Code(StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            Error::BalanceLimit => AsProblem::Code(StatusCode::UNPROCESSABLE_ENTITY, "BALANCE_LIMIT"),
            Error::Problem(p) => AsProblem::Passed(p),
            Error::Db(_) | Error::Json(_) => AsProblem::Internal,
        }
    }
}
