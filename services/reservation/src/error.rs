//! What the reservation service answers when a request or an input cannot be done: one case
//! each, one mapping to problem+json.

use crate::domain::{Limit, Refusal};
use axum::http::StatusCode;
use contracts::SeatNo;
use platform::{
    Problem,
    problem::{ApiError, AsProblem},
};

/// Why a reservation request, or an input to a reservation, did not go through.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is not as documented (seats out of bounds, repeated).
    #[error("{0}")]
    Invalid(String),
    /// A seat number the schedule does not have: the request is as documented, the schedule
    /// is smaller.
    #[error("seat {0} is not in this schedule")]
    SeatNotInSchedule(SeatNo),
    /// No reservation of this id is the caller's (or, for an event, exists at all).
    #[error("the reservation was not found")]
    NotFound,
    #[error("no such schedule")]
    ScheduleNotFound,
    /// A seat is in someone else's live reservation. The seat service would only reject the
    /// hold: said at once, before a saga starts (what a flash sale is mostly made of).
    #[error("seat {0} is held, being reserved, or sold; choose another")]
    SeatUnavailable(SeatNo),
    /// The user's share of the schedule allows no more ([`crate::domain::over_limit`]).
    #[error("{0}")]
    LimitReached(Limit),
    /// The reservation's state refuses the action ([`crate::decide`]).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// What a shared layer answered (authentication, the waiting room, idempotency).
    #[error(transparent)]
    Problem(#[from] Problem),
    /// A write combiner had as many requests waiting as it keeps: nothing was done.
    #[error(transparent)]
    Busy(#[from] platform::combine::Busy),
    /// A write combiner's writer gave no answer (it panicked, or the process is stopping).
    #[error(transparent)]
    Unanswered(#[from] platform::combine::Unanswered),
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::Invalid(_) => AsProblem::Code(StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            Error::SeatNotInSchedule(_) => {
                AsProblem::Code(StatusCode::UNPROCESSABLE_ENTITY, "SEAT_NOT_IN_SCHEDULE")
            }
            Error::NotFound => AsProblem::Code(StatusCode::NOT_FOUND, "NOT_FOUND"),
            Error::ScheduleNotFound => AsProblem::Code(StatusCode::NOT_FOUND, "SCHEDULE_NOT_FOUND"),
            Error::SeatUnavailable(_) => AsProblem::Code(StatusCode::CONFLICT, "SEAT_UNAVAILABLE"),
            Error::LimitReached(Limit::Blocked) => AsProblem::Code(StatusCode::FORBIDDEN, "USER_BLOCKED"),
            Error::LimitReached(Limit::TooFast { .. }) => {
                AsProblem::Code(StatusCode::TOO_MANY_REQUESTS, "VELOCITY_LIMIT")
            }
            Error::LimitReached(_) => AsProblem::Code(StatusCode::CONFLICT, "LIMIT_REACHED"),
            Error::Refused(Refusal::HoldExpired) => AsProblem::Code(StatusCode::CONFLICT, "HOLD_EXPIRED"),
            Error::Refused(Refusal::NotPayable(_)) => AsProblem::Code(StatusCode::CONFLICT, "NOT_PAYABLE"),
            Error::Refused(Refusal::NotCancellable(_)) => {
                AsProblem::Code(StatusCode::CONFLICT, "NOT_CANCELLABLE")
            }
            Error::Problem(p) => AsProblem::Passed(p),
            Error::Busy(_) => AsProblem::Overloaded,
            Error::Db(_) | Error::Json(_) | Error::Unanswered(_) => AsProblem::Internal,
        }
    }
}
