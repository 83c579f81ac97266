//! Errors of the messaging layer.

/// Why a messaging operation failed.
#[derive(Debug, thiserror::Error)]
pub enum MessagingError {
    #[error("cannot reach NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("JetStream {operation} failed: {message}")]
    JetStream { operation: &'static str, message: String },
    #[error("database: {0}")]
    Db(#[from] sea_orm::DbErr),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("invalid definition in nats/{file}: {message}")]
    Definition { file: String, message: String },
    #[error("{0}")]
    NotFound(String),
    /// A dead letter with nothing to publish again.
    #[error("{0}")]
    NotReplayable(String),
    /// A consumer's filters and its handler disagree on which events it takes.
    #[error("consumer filters: {0}")]
    Filters(String),
}

impl MessagingError {
    /// Wraps any JetStream error with the operation that failed.
    pub(crate) fn js(operation: &'static str, e: impl std::fmt::Display) -> Self {
        MessagingError::JetStream { operation, message: e.to_string() }
    }
}
