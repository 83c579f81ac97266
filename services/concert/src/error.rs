//! What the catalog answers when a request cannot be done: one case each, one mapping.

use axum::http::StatusCode;
use platform::{
    Problem,
    problem::{ApiError, AsProblem},
};

/// Why a catalog request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks a rule of the catalog (a blank name, a schedule in the past, …).
    #[error("{0}")]
    Invalid(String),
    #[error("the concert was not found")]
    ConcertNotFound,
    /// What a shared layer answered (authentication, paging).
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::Invalid(_) => AsProblem::Code(StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            Error::ConcertNotFound => AsProblem::Code(StatusCode::NOT_FOUND, "NOT_FOUND"),
            Error::Problem(p) => AsProblem::Passed(p),
            Error::Db(_) => AsProblem::Internal,
        }
    }
}
