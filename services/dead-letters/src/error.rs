//! What the dead-letters service answers when a request cannot be done.

use axum::http::StatusCode;
use platform::{
    Problem,
    problem::{ApiError, AsProblem},
};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No dead letter has that sequence (never, or replayed or discarded since).
    #[error("no dead letter {0}: it was replayed or discarded, or never was")]
    NotFound(u64),
    /// A letter with nothing to publish (an outbox row JetStream refused).
    #[error("{0}")]
    NotReplayable(String),
    #[error(transparent)]
    Problem(#[from] Problem),
    #[error("NATS: {0}")]
    Nats(messaging::MessagingError),
}

impl Error {
    /// The error of an operation on dead letter `seq`.
    pub fn of(seq: u64, e: messaging::MessagingError) -> Self {
        match e {
            messaging::MessagingError::NotFound(_) => Error::NotFound(seq),
            messaging::MessagingError::NotReplayable(why) => Error::NotReplayable(why),
            other => Error::Nats(other),
        }
    }
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::NotFound(_) => AsProblem::Code(StatusCode::NOT_FOUND, "NOT_FOUND"),
            Error::NotReplayable(_) => AsProblem::Code(StatusCode::CONFLICT, "NOT_REPLAYABLE"),
            Error::Problem(p) => AsProblem::Passed(p),
            Error::Nats(_) => AsProblem::Internal,
        }
    }
}
