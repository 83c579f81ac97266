//! RFC 9457 `application/problem+json` errors with a stable `code`.

use axum::{
    Json,
    extract::rejection::{JsonRejection, PathRejection, QueryRejection},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};

/// The media type of every error answer.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// `{type, title, status, detail, code}`; `code` is what clients match on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({
    "type": "urn:ticketing:problem:not-found",
    "title": "Not Found",
    "status": 404,
    "detail": "the concert was not found",
    "code": "NOT_FOUND"
}))]
pub struct Problem {
    /// `urn:ticketing:problem:<code in kebab case>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// What went wrong, for a program: stable, SCREAMING_SNAKE_CASE.
    pub code: String,
    /// Seconds after which a retry may succeed, sent as `Retry-After` (not in the body).
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

impl Problem {
    /// A problem with the given status, stable code and human-readable detail.
    pub fn new(status: StatusCode, code: &str, detail: impl Into<String>) -> Self {
        Self {
            kind: format!("urn:ticketing:problem:{}", code.to_ascii_lowercase().replace('_', "-")),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
            code: code.to_owned(),
            retry_after: None,
        }
    }

    /// The same problem, telling the caller to retry after `seconds` (`Retry-After`).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 for input that does not pass validation.
    pub fn validation(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_FAILED", detail)
    }

    /// 404 for a resource that does not exist (or is not the caller's to see).
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NOT_FOUND", format!("{what} was not found"))
    }

    /// 500 that tells the caller nothing internal; the cause is logged in full with a reference
    /// the caller can quote.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        let reference = uuid::Uuid::now_v7();
        tracing::error!(error = %cause, source = ?cause.source(), %reference, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            format!("something went wrong on our side; quote reference {reference} when reporting it"),
        )
    }

    /// 503 while a dependency is down; the caller may retry.
    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", detail)
    }

    /// 503 when no database connection came free in time (the database is down, or every
    /// connection busy for longer than `TICKETING_DATABASE_ACQUIRE_TIMEOUT_MS`): nothing was
    /// done, and the caller may retry in a second. Counted in `db_pool_acquire_timeouts_total`.
    pub fn no_database_connection() -> Self {
        metrics::counter!("db_pool_acquire_timeouts_total").increment(1);
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "DATABASE_UNAVAILABLE",
            "no database connection came free in time; nothing was done, retry in a moment",
        )
        .retry_after(1)
    }

    /// 503 when this process has more to do than it can take on (load shed): nothing was done,
    /// and the caller may retry in a second.
    pub fn overloaded(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "OVERLOADED", detail).retry_after(1)
    }

    /// The status as an axum status code.
    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = self.retry_after;
        let mut res = (status, Json(self)).into_response();
        res.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        if let Some(seconds) = retry_after {
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        res
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.code, self.detail)
    }
}

impl std::error::Error for Problem {}

/// How a crate's error is answered over HTTP ([`ApiError`]).
pub enum AsProblem<'a> {
    /// One of the crate's own cases: its status and stable code; the error's message is the
    /// detail.
    Code(StatusCode, &'static str),
    /// A problem a shared layer answered already (authentication, the waiting room, idempotency).
    Passed(&'a Problem),
    /// More than this process can take on now: 503 `OVERLOADED` with `Retry-After`; the error's
    /// message is the detail ([`Problem::overloaded`]).
    Overloaded,
    /// Nothing the caller can act on: 500, logged in full ([`Problem::internal`]); or 503
    /// `DATABASE_UNAVAILABLE` with `Retry-After` when it is a database connection not had in
    /// time ([`Problem::no_database_connection`]).
    Internal,
}

/// A crate's `Error` enum (thiserror): each variant is a case a caller can meet, and this is its
/// one mapping to problem+json. `?` turns it into a [`Problem`] in a route.
pub trait ApiError: std::error::Error + 'static {
    /// How this error is answered.
    fn as_problem(&self) -> AsProblem<'_>;
}

impl<E: ApiError> From<E> for Problem {
    fn from(e: E) -> Self {
        match e.as_problem() {
            AsProblem::Code(status, code) => {
                if status.is_server_error() {
                    // The caller learns only the case; the cause is logged.
                    tracing::warn!(error = %e, source = ?std::error::Error::source(&e), code, "request failed");
                }
                Problem::new(status, code, e.to_string())
            }
            AsProblem::Passed(problem) => problem.clone(),
            AsProblem::Overloaded => Problem::overloaded(e.to_string()),
            AsProblem::Internal if crate::pools::no_connection(&e) => Problem::no_database_connection(),
            AsProblem::Internal => Problem::internal(&e),
        }
    }
}

/// A database error no route expects: 500, logged with a reference ([`Problem::internal`]);
/// 503 with `Retry-After` when no connection came free in time
/// ([`Problem::no_database_connection`]).
impl From<sea_orm::DbErr> for Problem {
    fn from(e: sea_orm::DbErr) -> Self {
        if crate::pools::no_connection(&e) { Self::no_database_connection() } else { Self::internal(&e) }
    }
}

/// A value that would not serialize: 500, logged with a reference ([`Problem::internal`]).
impl From<serde_json::Error> for Problem {
    fn from(e: serde_json::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        match r {
            JsonRejection::MissingJsonContentType(_) => Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UNSUPPORTED_MEDIA_TYPE",
                "send the body as JSON with Content-Type: application/json",
            ),
            JsonRejection::JsonSyntaxError(e) => Self::new(
                StatusCode::BAD_REQUEST,
                "MALFORMED_JSON",
                format!("the body is not valid JSON: {}", e.body_text()),
            ),
            JsonRejection::JsonDataError(e) => Self::validation(e.body_text()),
            other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::new(StatusCode::PAYLOAD_TOO_LARGE, "BODY_TOO_LARGE", "the request body is too large")
            }
            other => Self::new(other.status(), "BAD_REQUEST", other.body_text()),
        }
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "INVALID_PATH", r.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Self::validation(r.body_text())
    }
}

/// `Json<T>` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(Problem))]
pub struct ApiJson<T>(pub T);

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// `Path<T>` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(Problem))]
pub struct ApiPath<T>(pub T);

/// `Query<T>` whose rejections are problem+json.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(Problem))]
pub struct ApiQuery<T>(pub T);

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Error {
        #[error("seat {0} is taken")]
        Taken(u32),
        #[error(transparent)]
        Shared(Problem),
        #[error("database: {0}")]
        Db(String),
        #[error("database: {0}")]
        Pool(#[from] sea_orm::DbErr),
    }

    impl ApiError for Error {
        fn as_problem(&self) -> AsProblem<'_> {
            match self {
                Error::Taken(_) => AsProblem::Code(StatusCode::CONFLICT, "SEAT_TAKEN"),
                Error::Shared(p) => AsProblem::Passed(p),
                Error::Db(_) | Error::Pool(_) => AsProblem::Internal,
            }
        }
    }

    #[test]
    fn a_crate_error_is_answered_by_its_case_passed_on_or_kept_internal() {
        let taken = Problem::from(Error::Taken(7));
        assert_eq!(
            (taken.status, taken.code.as_str(), taken.detail.as_str()),
            (409, "SEAT_TAKEN", "seat 7 is taken")
        );
        assert_eq!(taken.kind, "urn:ticketing:problem:seat-taken");
        let shared = Problem::validation("limit must be 1-100");
        assert_eq!(Problem::from(Error::Shared(shared.clone())), shared);
        let internal = Problem::from(Error::Db("connection reset by peer".into()));
        assert_eq!((internal.status, internal.code.as_str()), (500, "INTERNAL"));
        assert!(!internal.detail.contains("connection reset"), "{}", internal.detail);
        let waited =
            Problem::from(Error::from(sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout)));
        assert_eq!(
            (waited.status, waited.code.as_str(), waited.retry_after),
            (503, "DATABASE_UNAVAILABLE", Some(1)),
            "no connection in time: nothing done, try again"
        );
    }
}
