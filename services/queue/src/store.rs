//! The waiting room's Redis operations: each one script call, one round trip.

use crate::Settings;
use crate::{
    domain::TokenStatus,
    scripts::{JOIN, LEAVE, POLL, RELEASE_LOCK, TICK},
};
use contracts::UserId;
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
}

/// Joins (or re-finds the live token of) `user`: `(token, created, position)`, position 0 when
/// the live token is already active.
pub async fn join(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    user: UserId,
    now_ms: i64,
) -> Result<(String, bool, u64), RedisError> {
    let fresh = uuid::Uuid::new_v4().to_string();
    let (token, created, rank): (String, i64, i64) = JOIN
        .key(&keys.seq)
        .key(&keys.waiting)
        .key(keys.user(&user))
        .arg(keys.token_prefix())
        .arg(&fresh)
        .arg(user.to_string())
        .arg(now_ms)
        .arg(WAITING_TTL.as_secs())
        .invoke_async(conn)
        .await?;
    Ok((token, created == 1, u64::try_from(rank + 1).unwrap_or(0)))
}

/// Reads a token; `None` when unknown.
pub async fn poll(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    token: &str,
    now_ms: i64,
) -> Result<Option<Token>, RedisError> {
    let answer: Option<(String, String, i64, String)> =
        POLL.key(&keys.waiting).arg(keys.token(token)).arg(token).arg(now_ms).invoke_async(conn).await?;
    Ok(answer.map(|(user, status, rank, until)| Token {
        user,
        status: TokenStatus::parse(&status),
        position: u64::try_from(rank + 1).unwrap_or(0),
        active_until: until.parse().ok(),
    }))
}

/// Leaves the waiting room; `false` when the token is not the user's.
pub async fn leave(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    token: &str,
    user: UserId,
) -> Result<bool, RedisError> {
    let left: i64 = LEAVE
        .key(&keys.waiting)
        .key(&keys.active)
        .key(keys.user(&user))
        .arg(keys.token(token))
        .arg(token)
        .arg(user.to_string())
        .arg(RETENTION.as_secs())
        .invoke_async(conn)
        .await?;
    Ok(left == 1)
}

/// One admission tick at `now_ms`: `(expired, admitted)`.
pub async fn tick(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    settings: &Settings,
    now_ms: i64,
) -> Result<(u64, u64), RedisError> {
    TICK.key(&keys.waiting)
        .key(&keys.active)
        .key(&keys.last_tick)
        .arg(keys.token_prefix())
        .arg(now_ms)
        .arg(settings.max_active)
        .arg(settings.admit_per_tick)
        .arg(settings.active_ttl.as_millis() as u64)
        .arg(settings.tick.as_millis() as u64)
        .arg(RETENTION.as_secs())
        .invoke_async(conn)
        .await
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

/// `(waiting, active)` counts.
pub async fn sizes(conn: &mut platform::pools::Redis, keys: &QueueKeys) -> Result<(u64, u64), RedisError> {
    redis::pipe().zcard(&keys.waiting).zcard(&keys.active).query_async(conn).await
}
