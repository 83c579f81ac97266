//! What the catalog answers when a request cannot be done: one case each, one mapping.

use axum::http::StatusCode;
use platform::{
    Problem,
    problem::{ApiError, AsProblem},
};

impl From<crate::domain::PlanError> for Error {
    fn from(e: crate::domain::PlanError) -> Self {
        match e {
            crate::domain::PlanError::Malformed(m) => Error::Invalid(m),
            crate::domain::PlanError::Refused(m) => Error::Refused(m),
        }
    }
}

/// Why a catalog request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks a rule of the catalog (a blank name, a schedule in the past, …).
    #[error("{0}")]
    Invalid(String),
    /// A request in a documented shape that breaks a rule no shape can say (a schedule in the
    /// past, a seat listed twice).
    #[error("{0}")]
    Refused(String),
    #[error("the concert was not found")]
    ConcertNotFound,
    #[error("the concert has no such schedule")]
    ScheduleNotFound,
    /// A cancelled schedule stays as it is.
    #[error("the schedule is cancelled: it cannot be changed")]
    ScheduleCancelled,
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
            Error::Refused(_) => AsProblem::Code(StatusCode::UNPROCESSABLE_ENTITY, "SCHEDULE_REFUSED"),
            Error::ConcertNotFound | Error::ScheduleNotFound => {
                AsProblem::Code(StatusCode::NOT_FOUND, "NOT_FOUND")
            }
            Error::ScheduleCancelled => AsProblem::Code(StatusCode::CONFLICT, "SCHEDULE_CANCELLED"),
            Error::Problem(p) => AsProblem::Passed(p),
            Error::Db(_) => AsProblem::Internal,
        }
    }
}
