//! The waiting room's Redis operations: each one script call, one round trip.

use crate::{Settings, error::Error};
use crate::{
    domain::TokenStatus,
    scripts::{JOIN, LEAVE, POLL, RELEASE_LOCK, TICK},
};
use contracts::{ScheduleId, UserId};
use platform::queue_guard::QueueKeys;
use redis::RedisError;
use std::time::Duration;

/// How long a waiting token (and the user's pointer to it) lives without being admitted.
pub const WAITING_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long an expired token stays readable (so a poller sees EXPIRED, not 404).
pub const RETENTION: Duration = Duration::from_secs(600);

/// A token as a poll sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub user: String,
    pub status: TokenStatus,
    /// 1-based place in the waiting queue; 0 unless waiting.
    pub position: u64,
    /// When an active token stops being active (ms since the epoch).
    pub active_until: Option<i64>,
    /// The schedule whose sale's room the token waits in; `None` in the global room.
    pub schedule: Option<ScheduleId>,
    /// Its place's score while waiting: the tick that admits it moves the room's
    /// admitted-through to this or beyond.
    pub score: Option<i64>,
    /// While it waits for a sale yet to open: when it opens (ms since the epoch).
    pub opens_at: Option<i64>,
}

impl Token {
    /// A token just joined (or found) waiting at `position`.
    pub fn waiting(user: UserId, position: u64, schedule: Option<ScheduleId>, opens_at: Option<i64>) -> Self {
        Self {
            user: user.to_string(),
            status: TokenStatus::Waiting,
            position,
            active_until: None,
            schedule,
            score: None,
            opens_at,
        }
    }

    /// `last`, read once more after Redis forgot it: it expired long enough ago.
    pub fn gone(last: &Token) -> Self {
        Self {
            status: TokenStatus::Expired,
            position: 0,
            active_until: None,
            score: None,
            opens_at: None,
            ..last.clone()
        }
    }
}

/// A join's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Joined {
    pub token: String,
    /// Whether the token is new (else the user's live one).
    pub created: bool,
    /// 1-based place in the waiting queue; 0 when the live token is already active.
    pub position: u64,
    /// When the room's sale opens, if it is yet to (ms since the epoch).
    pub opens_at: Option<i64>,
}

/// Joins (or re-finds the live token of) `user` in the room of `keys`.
pub async fn join(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    user: UserId,
    now_ms: i64,
) -> Result<Joined, Error> {
    let fresh = uuid::Uuid::new_v4().to_string();
    let (token, created, rank, opens): (String, i64, i64, String) = JOIN
        .key(&keys.seq)
        .key(&keys.waiting)
        .key(keys.user(&user))
        .key(&keys.sold_out)
        .key(&keys.rooms)
        .key(&keys.schedules)
        .key(&keys.sale)
        .key(&keys.blocked)
        .arg(keys.token_prefix())
        .arg(&fresh)
        .arg(user.to_string())
        .arg(now_ms)
        .arg(WAITING_TTL.as_secs())
        .arg(room_arg(keys))
        .invoke_async(conn)
        .await?;
    match rank {
        -2 => Err(Error::SoldOut),
        -3 => Err(Error::ScheduleNotFound),
        -4 => Err(Error::Blocked),
        _ => Ok(Joined {
            token,
            created: created == 1,
            position: u64::try_from(rank + 1).unwrap_or(0),
            opens_at: opens.parse().ok(),
        }),
    }
}

/// The room's schedule as the scripts take it ('' for the global room).
fn room_arg(keys: &QueueKeys) -> String {
    keys.schedule.map(|s| s.to_string()).unwrap_or_default()
}

/// Reads a token; `None` when unknown.
pub async fn poll(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    token: &str,
    now_ms: i64,
) -> Result<Option<Token>, RedisError> {
    let answer: Option<Polled> =
        POLL.arg(keys.token(token)).arg(token).arg(now_ms).arg(keys.prefix()).invoke_async(conn).await?;
    Ok(answer.map(token_of))
}

/// What `POLL` answers of a known token: user, status, rank, activeUntil, room, score, opensAt.
type Polled = (String, String, i64, String, String, String, String);

fn token_of((user, status, rank, until, room, score, opens): Polled) -> Token {
    Token {
        user,
        status: TokenStatus::parse(&status),
        position: u64::try_from(rank + 1).unwrap_or(0),
        active_until: until.parse().ok(),
        schedule: room.parse().ok().map(ScheduleId),
        score: score.parse().ok(),
        opens_at: opens.parse().ok(),
    }
}

/// Leaves the waiting room; `false` when the token is not the user's.
pub async fn leave(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    token: &str,
    user: UserId,
) -> Result<bool, RedisError> {
    let left: i64 = LEAVE
        .arg(keys.token(token))
        .arg(token)
        .arg(user.to_string())
        .arg(RETENTION.as_secs())
        .arg(keys.prefix())
        .invoke_async(conn)
        .await?;
    Ok(left == 1)
}

/// One admission tick of the room of `keys` at `now_ms`: `(expired, admitted)`.
pub async fn tick(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    settings: &Settings,
    now_ms: i64,
) -> Result<(u64, u64), RedisError> {
    TICK.key(&keys.waiting)
        .key(&keys.active)
        .key(&keys.last_tick)
        .key(&keys.sold_out)
        .key(&keys.rooms)
        .key(&keys.admitted_through)
        .key(&keys.sale)
        .arg(keys.token_prefix())
        .arg(now_ms)
        .arg(settings.max_active)
        .arg(settings.admit_per_tick)
        .arg(settings.active_ttl.as_millis() as u64)
        .arg(settings.tick.as_millis() as u64)
        .arg(RETENTION.as_secs())
        .arg(room_arg(keys))
        .invoke_async(conn)
        .await
}

/// The rooms to tick: the global one, then every sale's room with waiting or active tokens.
pub async fn rooms(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
) -> Result<Vec<QueueKeys>, RedisError> {
    let schedules: Vec<String> = redis::cmd("SMEMBERS").arg(&keys.rooms).query_async(conn).await?;
    let sales = schedules.iter().filter_map(|s| s.parse().ok()).map(|s| keys.room(Some(ScheduleId(s))));
    Ok(std::iter::once(keys.room(None)).chain(sales).collect())
}

/// Takes the admission lease for `lease` unless another replica holds it.
pub async fn acquire_lease(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    holder: &str,
    lease: Duration,
) -> Result<bool, RedisError> {
    let set: Option<String> = redis::cmd("SET")
        .arg(&keys.lock)
        .arg(holder)
        .arg("NX")
        .arg("PX")
        .arg(lease.as_millis() as u64)
        .query_async(conn)
        .await?;
    Ok(set.is_some())
}

/// Releases the lease if this holder still has it.
pub async fn release_lease(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    holder: &str,
) -> Result<(), RedisError> {
    let _: i64 = RELEASE_LOCK.key(&keys.lock).arg(holder).invoke_async(conn).await?;
    Ok(())
}

/// The room's `(waiting, active)` counts.
pub async fn sizes(conn: &mut platform::pools::Redis, keys: &QueueKeys) -> Result<(u64, u64), RedisError> {
    redis::pipe().zcard(&keys.waiting).zcard(&keys.active).query_async(conn).await
}

/// Whether the room's sale is sold out (never for the global room).
pub async fn sold_out(conn: &mut platform::pools::Redis, keys: &QueueKeys) -> Result<bool, RedisError> {
    if keys.schedule.is_none() {
        return Ok(false);
    }
    redis::cmd("EXISTS").arg(&keys.sold_out).query_async(conn).await
}

/// How far the room's admission went and whether its sale is sold out (see [`RoomState`]).
pub async fn room_state(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
) -> Result<RoomState, RedisError> {
    let (through, sold_out): (Option<i64>, bool) =
        redis::pipe().get(&keys.admitted_through).exists(&keys.sold_out).query_async(conn).await?;
    Ok(RoomState {
        admitted_through: through.unwrap_or(i64::MIN),
        sold_out: sold_out && keys.schedule.is_some(),
    })
}

/// What a room tells its waiting tokens without reading each one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoomState {
    /// The highest score a tick admitted: a token waiting at a higher score is still waiting.
    pub admitted_through: i64,
    /// The sale is sold out: every token of it reads SOLD_OUT or EXPIRED.
    pub sold_out: bool,
}

impl RoomState {
    /// Whether a token last read as `token` may read otherwise now: it was admitted, or the
    /// sale closed. Only then is it worth reading again.
    pub fn moved(&self, token: &Token) -> bool {
        match (token.status, token.score) {
            (TokenStatus::Waiting, Some(score)) => self.sold_out || score <= self.admitted_through,
            (TokenStatus::Waiting, None) | (TokenStatus::Active, _) => self.sold_out,
            _ => false,
        }
    }
}
