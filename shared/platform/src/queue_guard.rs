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

/// The Redis keys of one waiting room under a namespace: the global room (`queue:waiting`, ...)
/// or the room of one schedule's sale (`queue:room:{<schedule>}:waiting`, ...; the braces keep
/// a room's keys in one Redis Cluster slot). Token hashes, the admission lease, the set of
/// rooms with tokens and the set of known schedules are shared by every room.
///
/// The scripts that start from a token find its room's keys from the hash's `room` field with
/// [`ROOM_LUA`], which builds them as [`QueueKeys::room`] does.
#[derive(Clone, Debug)]
pub struct QueueKeys {
    pub seq: String,
    pub waiting: String,
    pub active: String,
    pub last_tick: String,
    /// Set (to when) once the room's schedule is sold out.
    pub sold_out: String,
    /// The highest waiting score any tick admitted.
    pub admitted_through: String,
    /// A sale's opening (hash: `opensAt` ms, and the `salt` its draw is made with), for a
    /// schedule that goes on sale later than it is announced.
    pub sale: String,
    pub lock: String,
    /// The schedules whose rooms have waiting or active tokens.
    pub rooms: String,
    /// The schedules the catalog has announced: only those have rooms.
    pub schedules: String,
    /// The users an admin has blocked: they join no room, and their tokens were taken away.
    pub blocked: String,
    /// `Some` for a schedule's room.
    pub schedule: Option<contracts::ScheduleId>,
    base: String,
    token_prefix: String,
    user_prefix: String,
}

/// Lua: `room_base(prefix, room)` answers the key prefix of a token's room, where `prefix` is
/// [`QueueKeys::prefix`] and `room` the token hash's `room` field (false or empty for the global
/// room). Scripts append `waiting`, `active`, `sold-out` or `user:<id>` to it.
pub const ROOM_LUA: &str = r#"
local function room_base(prefix, room)
  if room and room ~= '' then return prefix .. 'room:{' .. room .. '}:' end
  return prefix
end
"#;

impl QueueKeys {
    /// The global room's keys under `ns`.
    pub fn new(ns: &Namespace) -> Self {
        let prefix = ns.redis_key("queue:");
        Self::of(&prefix, prefix.clone(), None)
    }

    fn of(prefix: &str, base: String, schedule: Option<contracts::ScheduleId>) -> Self {
        Self {
            seq: format!("{base}seq"),
            waiting: format!("{base}waiting"),
            active: format!("{base}active"),
            last_tick: format!("{base}last-tick"),
            sold_out: format!("{base}sold-out"),
            admitted_through: format!("{base}admitted-through"),
            sale: format!("{base}sale"),
            user_prefix: format!("{base}user:"),
            lock: format!("{prefix}admission-lock"),
            rooms: format!("{prefix}rooms"),
            schedules: format!("{prefix}schedules"),
            blocked: format!("{prefix}blocked"),
            token_prefix: format!("{prefix}token:"),
            schedule,
            base,
        }
    }

    /// The keys of `schedule`'s room (`None`: the global room) beside these.
    pub fn room(&self, schedule: Option<contracts::ScheduleId>) -> Self {
        let prefix = self.prefix();
        match schedule {
            Some(s) => Self::of(prefix, format!("{prefix}room:{{{s}}}:"), Some(s)),
            None => Self::of(prefix, prefix.to_owned(), None),
        }
    }

    /// `queue:` under the namespace: every waiting-room key starts with it.
    pub fn prefix(&self) -> &str {
        self.token_prefix.strip_suffix("token:").unwrap_or(&self.token_prefix)
    }

    /// The room's key prefix ([`ROOM_LUA`]'s `room_base`).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `queue:token:` under the namespace; a token's hash is this plus the token.
    pub fn token_prefix(&self) -> &str {
        &self.token_prefix
    }

    /// The hash of one token.
    pub fn token(&self, token: &str) -> String {
        format!("{}{token}", self.token_prefix)
    }

    /// The user's live token in this room.
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

/// Reads what the guard checks of a token in one round trip. KEYS: the token's hash, the set of
/// rooms. ARGV: [`QueueKeys::prefix`], the schedule booked ('' when none is named). Answers
/// `{user, status, activeUntil, room, soldOut (0|1), guarded (0|1: the booked schedule has a
/// room of its own with users in it)}`, or nil for an unknown token.
/// It runs read-only ([`read_only`]).
static GUARD_LUA: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        r#"{ROOM_LUA}
local h = redis.call('HMGET', KEYS[1], 'user', 'status', 'activeUntil', 'room', 'spent', 'left')
if not h[1] then return nil end
local room = h[4] or ''
local sold = 0
if room ~= '' and h[5] ~= '1' and h[6] ~= '1' then
  sold = redis.call('EXISTS', room_base(ARGV[1], room) .. 'sold-out')
end
local guarded = 0
if ARGV[2] ~= '' and ARGV[2] ~= room then guarded = redis.call('SISMEMBER', KEYS[2], ARGV[2]) end
return {{h[1], h[2] or '', h[3] or '', room, sold, guarded}}
"#
    )
});
static GUARD: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(&GUARD_LUA));

/// Runs `script` (whose source is `lua`) as a read-only script: `EVALSHA_RO`, or `EVAL_RO` when
/// Redis does not hold it yet. A booking service may only read the waiting room's keys (its ACL
/// user's `%R~` patterns, `platform::redis_acl`), and Redis refuses a plain `EVALSHA` on keys
/// its caller may not write, whatever the script does with them.
async fn read_only<T: redis::FromRedisValue>(
    conn: &mut crate::pools::Redis,
    script: &redis::Script,
    lua: &str,
    keys: &[&str],
    args: &[&str],
) -> redis::RedisResult<T> {
    let by_hash =
        redis::cmd("EVALSHA_RO").arg(script.get_hash()).arg(keys.len()).arg(keys).arg(args).to_owned();
    match by_hash.query_async(conn).await {
        Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
            redis::cmd("EVAL_RO").arg(lua).arg(keys.len()).arg(keys).arg(args).query_async(conn).await
        }
        answer => answer,
    }
}

impl QueueTicket {
    /// Admits the caller if the token is ACTIVE, unexpired and theirs. With `schedule` (a
    /// booking of its seats), the token must also not be of another schedule's sale, nor of
    /// the global room while that schedule's own room has users in it: no one books past the
    /// line of the sale they book.
    pub async fn admit(self, schedule: Option<contracts::ScheduleId>) -> Result<Admitted, Problem> {
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
        let (token_key, booked) =
            (gate.keys.token(&token), schedule.map(|s| s.to_string()).unwrap_or_default());
        let answer: Option<(String, String, String, String, i64, i64)> = read_only(
            &mut conn,
            &GUARD,
            &GUARD_LUA,
            &[&token_key, &gate.keys.rooms],
            &[gate.keys.prefix(), &booked],
        )
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the waiting room cannot be read");
            Problem::unavailable("the waiting room cannot be checked")
        })?;
        let Some((user, status, active_until, room, sold_out, guarded)) = answer else {
            return Err(refuse(StatusCode::UNAUTHORIZED, "QUEUE_TOKEN_UNKNOWN", "no such queue token"));
        };
        if user != identity.user_id.to_string() {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "QUEUE_TOKEN_FOREIGN",
                "this queue token belongs to another user",
            ));
        }
        if sold_out == 1 {
            return Err(refuse(
                StatusCode::CONFLICT,
                "SOLD_OUT",
                "the schedule this queue token waited for is sold out",
            ));
        }
        if let Some(schedule) = schedule {
            if !room.is_empty() && room != schedule.to_string() {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "QUEUE_TOKEN_OTHER_SALE",
                    "this queue token is of another schedule's waiting room; join this schedule's",
                ));
            }
            if guarded == 1 {
                return Err(refuse(
                    StatusCode::FORBIDDEN,
                    "QUEUE_TOKEN_OTHER_SALE",
                    "this schedule has a waiting room of its own with users in it: join it \
                     (POST /queue/tokens with its scheduleId)",
                ));
            }
        }
        let now = chrono::Utc::now().timestamp_millis();
        match status.as_str() {
            "ACTIVE" if active_until.parse::<i64>().is_ok_and(|u| u > now) => {
                Ok(Admitted { identity, token: Some(token) })
            }
            "WAITING" => Err(refuse(
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
        QueueTicket::from_request_parts(parts, state).await?.admit(None).await
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
