//! What the waiting room answers when a request cannot be done: one case each, one mapping.

use axum::http::StatusCode;
use platform::{
    Problem,
    problem::{ApiError, AsProblem},
};

/// Why a waiting-room request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No token of this id is the caller's.
    #[error("the queue token was not found")]
    TokenNotFound,
    /// A sale's room was asked for a schedule the catalog has not announced.
    #[error("no schedule with this id (one created a moment ago is announced within a second)")]
    ScheduleNotFound,
    /// The schedule whose room was asked for is sold out: there is nothing to wait for.
    #[error("this schedule is sold out")]
    SoldOut,
    /// An admin has blocked the caller's account: it waits for nothing it could book.
    #[error("your account is blocked: it cannot join a waiting room")]
    Blocked,
    /// Redis did not answer; the caller may retry.
    #[error("the waiting room is unavailable; retry shortly")]
    Unavailable(#[from] redis::RedisError),
    /// What a shared layer answered (authentication).
    #[error(transparent)]
    Problem(#[from] Problem),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::TokenNotFound => AsProblem::Code(StatusCode::NOT_FOUND, "NOT_FOUND"),
            Error::ScheduleNotFound => AsProblem::Code(StatusCode::NOT_FOUND, "SCHEDULE_NOT_FOUND"),
            Error::SoldOut => AsProblem::Code(StatusCode::CONFLICT, "SOLD_OUT"),
            Error::Blocked => AsProblem::Code(StatusCode::FORBIDDEN, "USER_BLOCKED"),
            Error::Unavailable(_) => AsProblem::Code(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            Error::Problem(p) => AsProblem::Passed(p),
        }
    }
}
