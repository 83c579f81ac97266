//! `POST /users`, `POST /sessions`, `GET /users/me`; admin: `GET /users/{id}`,
//! `PUT /users/{id}/status`, `PUT /users/{id}/role`.

use crate::{
    NAME, Settings,
    domain::{self, AccountStatus, Email, SignInRefused},
    error::Error,
    password, store,
};
use axum::{
    Json, Router,
    extract::{FromRef, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post, put},
};
use chrono::{DateTime, Utc};
use contracts::{Envelope, UserId, UserStatusChanged};
use messaging::Outbox;
use platform::{
    Problem,
    auth::{Admin, Identity, JwtKeys, Role},
    openapi::{BadRequest, Forbidden, Internal, NotFound, Shared, Unauthenticated, UnsupportedMediaType},
    problem::{ApiJson, ApiPath, PROBLEM_JSON},
};
use sea_orm::{DatabaseConnection, TransactionTrait};
use serde::{Deserialize, Serialize};

/// The user service's OpenAPI document.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(sign_up, sign_in, me, get_user, set_status, set_role),
    tags((name = NAME, description = "Accounts: sign up, sign in for a bearer token; admins block accounts and make organizers.")),
    modifiers(&Shared)
)]
pub struct Api;

/// What the routes need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub db: DatabaseConnection,
    /// `users.outbox`: status changes.
    pub outbox: Outbox,
    pub jwt: JwtKeys,
    pub settings: Settings,
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/users", post(sign_up))
        .route("/users/me", get(me))
        .route("/users/{id}", get(get_user))
        .route("/users/{id}/status", put(set_status))
        .route("/users/{id}/role", put(set_role))
        .route("/sessions", post(sign_in))
}

/// An email and a password: a new account's, or a sign-in's.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Credentials {
    /// An address like `name@example.com`; its case does not matter. The pattern is
    /// `domain::EMAIL_PATTERN` (a test holds them equal).
    #[schema(
        example = "ann@example.com",
        max_length = 254,
        pattern = r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
    )]
    pub email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128, format = Password)]
    pub password: String,
}

/// An account (never its password).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    id: UserId,
    email: String,
    /// `user`, or `admin` for organizers.
    #[schema(value_type = String, example = "user")]
    role: &'static str,
    status: AccountStatus,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<store::Account> for Account {
    fn from(a: store::Account) -> Self {
        Account {
            id: a.id,
            email: a.email,
            role: domain::role_str(a.role),
            status: a.status,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

/// A signed-in session: the bearer token every service takes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    /// Send it as `Authorization: Bearer <token>`.
    token: String,
    /// When the token stops being taken; sign in again after.
    expires_at: DateTime<Utc>,
    user: Account,
}

/// A new status.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusChange {
    pub status: AccountStatus,
}

/// A new role.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleChange {
    /// `user` or `admin`.
    #[schema(value_type = String, example = "admin")]
    pub role: Role,
}

/// Opens an account (ACTIVE, role `user`).
#[utoipa::path(
    post,
    path = "/users",
    tag = NAME,
    request_body = Credentials,
    responses(
        (status = 201, description = "The account; `Location` names it.", body = Account),
        (status = 400, response = BadRequest),
        (status = 409, description = "An account with this email exists already (`EMAIL_TAKEN`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, description = "Too many requests from this address (`RATE_LIMITED`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn sign_up(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, Problem> {
    let email = Email::parse(&body.email).map_err(Error::Invalid)?;
    domain::check_password(&body.password).map_err(Error::Invalid)?;
    // A taken email is answered before hashing: no CPU spent for a request that changes nothing.
    if store::by_email(&s.db, &email).await?.is_some() {
        return Err(Error::EmailTaken.into());
    }
    let hash = password::hash(body.password).await.map_err(Error::Hashing)?;
    let account = store::insert(&s.db, UserId::new(), &email, &hash).await?.ok_or(Error::EmailTaken)?;
    tracing::info!(user = %account.id, "account opened");
    let location = format!("/users/{}", account.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(Account::from(account))).into_response())
}

/// Signs in: answers a bearer token for the account.
#[utoipa::path(
    post,
    path = "/sessions",
    tag = NAME,
    request_body = Credentials,
    responses(
        (status = 201, description = "Signed in.", body = Session),
        (status = 400, response = BadRequest),
        (status = 401, description = "The email or the password is wrong (`INVALID_CREDENTIALS`); which one is not said.",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 403, description = "The account is blocked (`USER_BLOCKED`).", body = Problem, content_type = PROBLEM_JSON),
        (status = 415, response = UnsupportedMediaType),
        (status = 429, description = "Too many requests from this address (`RATE_LIMITED`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn sign_in(
    State(s): State<AppState>,
    ApiJson(body): ApiJson<Credentials>,
) -> Result<Response, Problem> {
    // An email that cannot be an address has no account: the same answer as a wrong password.
    let account = match Email::parse(&body.email) {
        Ok(email) => store::by_email(&s.db, &email).await?,
        Err(_) => None,
    };
    let matches = password::verify(body.password, account.as_ref().map(|a| a.password_hash.clone())).await;
    domain::sign_in(account.as_ref().map(|a| a.status), matches).map_err(refused)?;
    let account = account.ok_or(Error::InvalidCredentials)?;
    let token = s.jwt.mint(account.id, account.role, s.settings.session_ttl).map_err(Error::from)?;
    let ttl = chrono::Duration::from_std(s.settings.session_ttl).unwrap_or_default();
    let session = Session { token, expires_at: Utc::now() + ttl, user: account.into() };
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

fn refused(why: SignInRefused) -> Error {
    match why {
        SignInRefused::Blocked => Error::Blocked,
        SignInRefused::InvalidCredentials => Error::InvalidCredentials,
    }
}

/// The caller's account.
#[utoipa::path(
    get,
    path = "/users/me",
    tag = NAME,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller's account.", body = Account),
        (status = 401, response = Unauthenticated),
        (status = 404, description = "The token is not an account's (one minted by `ticketing token`).",
            body = Problem, content_type = PROBLEM_JSON),
        (status = 500, response = Internal),
    )
)]
async fn me(State(s): State<AppState>, who: Identity) -> Result<Json<Account>, Problem> {
    let account = store::by_id(&s.db, who.user_id).await?.ok_or(Error::NotFound)?;
    Ok(Json(account.into()))
}

/// An account. Admins only.
#[utoipa::path(
    get,
    path = "/users/{id}",
    tag = NAME,
    params(("id" = UserId, Path, description = "The account.")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account.", body = Account),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 500, response = Internal),
    )
)]
async fn get_user(
    State(s): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<UserId>,
) -> Result<Json<Account>, Problem> {
    let account = store::by_id(&s.db, id).await?.ok_or(Error::NotFound)?;
    Ok(Json(account.into()))
}

/// Blocks or unblocks an account (`UserStatusChanged`): a blocked account cannot sign in, its
/// live reservations that are not being paid fail (`USER_BLOCKED`, their seats released), and
/// it cannot start new ones. Admins only.
#[utoipa::path(
    put,
    path = "/users/{id}/status",
    tag = NAME,
    params(("id" = UserId, Path, description = "The account.")),
    request_body = StatusChange,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account with its status.", body = Account),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    )
)]
async fn set_status(
    State(s): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<StatusChange>,
) -> Result<Json<Account>, Problem> {
    // The change and its event commit together; the reservation service fails a blocked
    // user's live reservations and refuses new ones when the event reaches it.
    let txn = s.db.begin().await?;
    let (account, changed) = store::set_status(&txn, id, body.status).await?.ok_or(Error::NotFound)?;
    if changed {
        let event =
            UserStatusChanged { user_id: id, status: body.status.into(), changed_at: account.updated_at };
        s.outbox.push(&txn, &Envelope::new(NAME, id, event)).await?;
    }
    s.outbox.commit(txn).await?;
    if changed {
        tracing::info!(user = %id, status = body.status.as_str(), by = %admin.user_id, "account status set");
    }
    Ok(Json(account.into()))
}

/// Makes an account an organizer (`admin`) or a buyer (`user`) again; its next sign-in's token
/// carries the role. Admins only.
#[utoipa::path(
    put,
    path = "/users/{id}/role",
    tag = NAME,
    params(("id" = UserId, Path, description = "The account.")),
    request_body = RoleChange,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The account with its role.", body = Account),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthenticated),
        (status = 403, response = Forbidden),
        (status = 404, response = NotFound),
        (status = 415, response = UnsupportedMediaType),
        (status = 500, response = Internal),
    )
)]
async fn set_role(
    State(s): State<AppState>,
    Admin(admin): Admin,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<RoleChange>,
) -> Result<Json<Account>, Problem> {
    let (account, _) = store::set_role(&s.db, id, body.role).await?.ok_or(Error::NotFound)?;
    tracing::info!(user = %id, role = domain::role_str(body.role), by = %admin.user_id, "account role set");
    Ok(Json(account.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_email_and_password_are_the_rule() {
        use utoipa::PartialSchema;
        let schema = serde_json::to_value(Credentials::schema()).unwrap_or_default();
        let email = &schema["properties"]["email"];
        assert_eq!(email["pattern"], domain::EMAIL_PATTERN);
        assert_eq!(email["maxLength"], domain::MAX_EMAIL);
        let password = &schema["properties"]["password"];
        assert_eq!(
            (&password["minLength"], &password["maxLength"]),
            (&domain::MIN_PASSWORD.into(), &domain::MAX_PASSWORD.into())
        );
    }
}
