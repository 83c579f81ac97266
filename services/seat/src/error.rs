//! What the seat service answers when a request cannot be done: one case each, one mapping.

use axum::http::StatusCode;
use platform::{
    Problem,
    problem::{ApiError, AsProblem},
};

/// Why a seat request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A filter the seat map does not know.
    #[error("{0}")]
    Invalid(&'static str),
    #[error("the schedule was not found")]
    ScheduleNotFound,
    /// What a shared layer answered (the path, the query).
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::Invalid(_) => AsProblem::Code(StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            Error::ScheduleNotFound => AsProblem::Code(StatusCode::NOT_FOUND, "NOT_FOUND"),
            Error::Problem(p) => AsProblem::Passed(p),
            Error::Db(_) => AsProblem::Internal,
        }
    }
}
