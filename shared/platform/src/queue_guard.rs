//! The waiting-room guard (DESIGN §7): booking routes need `X-Queue-Token` naming an ACTIVE,
//! unexpired token of the caller. It reads the queue service's token hash, read-only: the one
//! use of another service's keys in the system. The key layout lives here, once, for both.

use crate::{
    Problem,
    auth::{Identity, JwtKeys},
};
use axum::{
    extract::{FromRef, FromRequestParts},
    http::{StatusCode, request::Parts},
};
use contracts::Namespace;

/// The request header carrying the queue token.
pub const HEADER: &str = "x-queue-token";

/// The waiting room's Redis keys under a namespace.
#[derive(Clone, Debug)]
pub struct QueueKeys {
    pub seq: String,
    pub waiting: String,
    pub active: String,
    pub last_tick: String,
    pub lock: String,
    token_prefix: String,
    user_prefix: String,
}

impl QueueKeys {
    /// The keys of DESIGN §7 under `ns`.
    pub fn new(ns: &Namespace) -> Self {
        Self {
            seq: ns.redis_key("queue:seq"),
            waiting: ns.redis_key("queue:waiting"),
            active: ns.redis_key("queue:active"),
            last_tick: ns.redis_key("queue:last-tick"),
            lock: ns.redis_key("queue:admission-lock"),
            token_prefix: ns.redis_key("queue:token:"),
            user_prefix: ns.redis_key("queue:user:"),
        }
    }

    /// `queue:token:` under the namespace; a token's hash is this plus the token.
    pub fn token_prefix(&self) -> &str {
        &self.token_prefix
    }

    /// The hash of one token.
    pub fn token(&self, token: &str) -> String {
        format!("{}{token}", self.token_prefix)
    }

    /// The user's live token.
    pub fn user(&self, user: &contracts::UserId) -> String {
        format!("{}{user}", self.user_prefix)
    }
}

/// What the guard needs: Redis, the key layout, and whether tokens are required at all.
#[derive(Clone)]
pub struct QueueGate {
    redis: crate::pools::Redis,
    /// Shared, not copied: the gate is cloned for every booking request.
    keys: std::sync::Arc<QueueKeys>,
    required: bool,
}

impl QueueGate {
    /// A gate; `required = false` only with `TICKETING_DEV_SKIP_QUEUE_TOKEN=true`.
    pub fn new(redis: crate::pools::Redis, ns: &Namespace, required: bool) -> Self {
        Self { redis, keys: std::sync::Arc::new(QueueKeys::new(ns)), required }
    }

    /// The gate `config` asks for (see [`GateSettings`]).
    pub fn configured(
        redis: crate::pools::Redis,
        config: &crate::Config,
    ) -> Result<Self, crate::ConfigError> {
        let settings: GateSettings = config.settings()?;
        Ok(Self::new(redis, &config.prefix, !settings.skip_token))
    }
}

/// Whether the gate asks for a token at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateSettings {
    /// Development only: booking routes accept requests without an ACTIVE queue token
    /// (`TICKETING_DEV_SKIP_QUEUE_TOKEN=true`). Off unless set.
    pub skip_token: bool,
}

impl crate::config::Settings for GateSettings {
    fn read(vars: &mut crate::config::Vars<'_>) -> Self {
        Self { skip_token: vars.parsed("TICKETING_DEV_SKIP_QUEUE_TOKEN", false, "true or false") }
    }
}

/// An admitted caller: the caller may book. Carries the token (absent only when the
/// development bypass is on and none was sent).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admitted {
    pub identity: Identity,
    pub token: Option<String>,
}

/// A booking request's caller and queue token, not yet checked: a handler may answer a replay
/// of an idempotent request first (that changes nothing, and the token may be spent by the
/// very request being replayed), then calls [`QueueTicket::admit`].
#[derive(Clone)]
pub struct QueueTicket {
    pub identity: Identity,
    token: Option<String>,
    gate: QueueGate,
}

fn refuse(status: StatusCode, code: &str, detail: &str) -> Problem {
    Problem::new(status, code, detail)
}

impl QueueTicket {
    /// Admits the caller if the token is ACTIVE, unexpired and theirs.
    pub async fn admit(self) -> Result<Admitted, Problem> {
        let QueueTicket { identity, token, gate } = self;
        if !gate.required {
            return Ok(Admitted { identity, token });
        }
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Err(refuse(
                StatusCode::UNAUTHORIZED,
                "QUEUE_TOKEN_REQUIRED",
                "join the waiting room (POST /queue/tokens) and send X-Queue-Token once it is ACTIVE",
            ));
        };
        if uuid::Uuid::parse_str(&token).is_err() {
            return Err(refuse(StatusCode::UNAUTHORIZED, "QUEUE_TOKEN_UNKNOWN", "no such queue token"));
        }
        let mut conn = gate.redis.clone();
        let (user, status, active_until): (Option<String>, Option<String>, Option<i64>) = redis::cmd("HMGET")
            .arg(gate.keys.token(&token))
            .arg("user")
            .arg("status")
            .arg("activeUntil")
            .query_async(&mut conn)
            .await
            .map_err(|_| Problem::unavailable("the waiting room cannot be checked"))?;
        let Some(user) = user else {
            return Err(refuse(StatusCode::UNAUTHORIZED, "QUEUE_TOKEN_UNKNOWN", "no such queue token"));
        };
        if user != identity.user_id.to_string() {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "QUEUE_TOKEN_FOREIGN",
                "this queue token belongs to another user",
            ));
        }
        let now = chrono::Utc::now().timestamp_millis();
        match status.as_deref() {
            Some("ACTIVE") if active_until.is_some_and(|u| u > now) => {
                Ok(Admitted { identity, token: Some(token) })
            }
            Some("WAITING") => Err(refuse(
                StatusCode::FORBIDDEN,
                "QUEUE_NOT_ADMITTED",
                "this queue token is still waiting; poll GET /queue/tokens/{token} until it is ACTIVE",
            )),
            _ => Err(refuse(
                StatusCode::FORBIDDEN,
                "QUEUE_TOKEN_EXPIRED",
                "this queue token has expired; join again",
            )),
        }
    }
}

impl<S> FromRequestParts<S> for QueueTicket
where
    QueueGate: FromRef<S>,
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let identity = Identity::from_request_parts(parts, state).await?;
        let token = parts.headers.get(HEADER).and_then(|v| v.to_str().ok()).map(|t| t.trim().to_owned());
        Ok(QueueTicket { identity, token, gate: QueueGate::from_ref(state) })
    }
}

impl<S> FromRequestParts<S> for Admitted
where
    QueueGate: FromRef<S>,
    JwtKeys: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        QueueTicket::from_request_parts(parts, state).await?.admit().await
    }
}

impl utoipa::IntoParams for QueueTicket {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![crate::openapi::header_parameter(
            "X-Queue-Token",
            true,
            "An ACTIVE waiting-room token of the caller (POST /queue/tokens, then poll until ACTIVE); \
             it travels with the reservation, so a failed one gives it back",
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(utoipa::openapi::Type::String)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Uuid)))
                .build(),
        )]
    }
}

#[cfg(test)]
mod settings {
    use super::GateSettings;
    use crate::config::read_settings;

    fn read(value: Option<&str>) -> Result<GateSettings, crate::ConfigError> {
        let value = value.map(str::to_owned);
        read_settings(&|k: &str| if k == "TICKETING_DEV_SKIP_QUEUE_TOKEN" { value.clone() } else { None })
    }

    #[test]
    fn the_token_bypass_is_off_unless_asked_for() {
        assert!(!read(None).unwrap().skip_token);
        assert!(read(Some("true")).unwrap().skip_token);
        assert!(read(Some("yes")).unwrap_err().names("TICKETING_DEV_SKIP_QUEUE_TOKEN"));
    }
}
