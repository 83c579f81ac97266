//! What the user service answers when a request cannot be done: one case each, one mapping.

use axum::http::StatusCode;
use platform::problem::{ApiError, AsProblem};

/// Why an account request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks a rule of accounts (an email's shape, a password's length).
    #[error("{0}")]
    Invalid(String),
    #[error("an account with this email exists already")]
    EmailTaken,
    #[error("the email or the password is wrong")]
    InvalidCredentials,
    #[error("this account is blocked; ask the organizer")]
    Blocked,
    #[error("no such account")]
    NotFound,
    /// A password could not be hashed.
    #[error("{0}")]
    Hashing(String),
    /// No token could be signed (the service has no signing key).
    #[error("signing a token: {0}")]
    Signing(#[from] platform::auth::KeyError),
}

impl ApiError for Error {
    fn as_problem(&self) -> AsProblem<'_> {
        match self {
            Error::Invalid(_) => AsProblem::Code(StatusCode::BAD_REQUEST, "VALIDATION_FAILED"),
            Error::EmailTaken => AsProblem::Code(StatusCode::CONFLICT, "EMAIL_TAKEN"),
            Error::InvalidCredentials => AsProblem::Code(StatusCode::UNAUTHORIZED, "INVALID_CREDENTIALS"),
            Error::Blocked => AsProblem::Code(StatusCode::FORBIDDEN, "USER_BLOCKED"),
            Error::NotFound => AsProblem::Code(StatusCode::NOT_FOUND, "NOT_FOUND"),
            Error::Hashing(_) | Error::Signing(_) => AsProblem::Internal,
        }
    }
}
