//! The waiting room's Redis scripts. Each operation is one script, so it is atomic and costs
//! one round trip. Token hashes live at `<token prefix><token>` with fields `user`, `status`
//! (WAITING | ACTIVE | EXPIRED), `seq`, `activeUntil` (ms).

use messaging::IdempotentScript;
use redis::Script;
use std::sync::LazyLock;

/// Join: returns the user's live token, or makes a new one at the tail of the queue.
/// KEYS: seq, waiting, user key. ARGV: token prefix, new token, user, now ms, waiting TTL s.
/// Answers `{token, created (0|1), rank (-1 when active)}`.
pub static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local prefix, now = ARGV[1], tonumber(ARGV[4])
local existing = redis.call('GET', KEYS[3])
if existing then
  local h = redis.call('HMGET', prefix .. existing, 'status', 'activeUntil')
  if h[1] == 'WAITING' then
    return {existing, 0, redis.call('ZRANK', KEYS[2], existing) or -1}
  elseif h[1] == 'ACTIVE' and tonumber(h[2]) > now then
    return {existing, 0, -1}
  end
end
local token = ARGV[2]
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], seq, token)
redis.call('HSET', prefix .. token, 'user', ARGV[3], 'status', 'WAITING', 'seq', seq)
redis.call('EXPIRE', prefix .. token, ARGV[5])
redis.call('SET', KEYS[3], token, 'EX', ARGV[5])
return {token, 1, redis.call('ZRANK', KEYS[2], token)}
"#,
    )
});

/// Poll: KEYS: waiting. ARGV: token key, token, now ms.
/// Answers nil for an unknown token, else `{user, status, rank (-1 unless waiting), activeUntil}`.
pub static POLL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local h = redis.call('HMGET', ARGV[1], 'user', 'status', 'activeUntil')
if not h[1] then return nil end
local status, rank = h[2], -1
if status == 'WAITING' then
  rank = redis.call('ZRANK', KEYS[1], ARGV[2]) or -1
elseif status == 'ACTIVE' and tonumber(h[3]) <= tonumber(ARGV[3]) then
  status = 'EXPIRED'
end
return {h[1], status, rank, h[3] or ''}
"#,
    )
});

/// Leave: KEYS: waiting, active, user key. ARGV: token key, token, user, retention s.
/// The token is EXPIRED and marked left: a late failure of its reservation must not put it
/// back in the queue. Answers 1 when the token was the user's, 0 otherwise.
pub static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
if redis.call('HGET', ARGV[1], 'user') ~= ARGV[3] then return 0 end
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('HSET', ARGV[1], 'status', 'EXPIRED', 'left', '1')
redis.call('HDEL', ARGV[1], 'activeUntil')
redis.call('EXPIRE', ARGV[1], ARGV[4])
if redis.call('GET', KEYS[3]) == ARGV[2] then redis.call('DEL', KEYS[3]) end
return 1
"#,
    )
});

/// Admission tick: drops expired actives, then admits `min(maxActive - active, admitPerTick)`
/// waiting tokens in FIFO order. Time is cut into tick windows (`floor(now / tick)`); a window
/// admits once, however many replicas tick in it, so together they never exceed the rate. The
/// last window is kept as its start in milliseconds, not its number, so a change of the tick's
/// length (a restart with another setting) neither stalls admission nor admits twice.
/// KEYS: waiting, active, last tick. ARGV: token prefix, now ms, maxActive, admitPerTick,
/// active TTL ms, tick ms, retention s. Answers `{expired, admitted}`.
pub static TICK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local prefix, now = ARGV[1], tonumber(ARGV[2])
local tick = tonumber(ARGV[6])
local window = math.floor(now / tick) * tick
if window <= tonumber(redis.call('GET', KEYS[3]) or '-1') then return {0, 0} end
redis.call('SET', KEYS[3], window)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
for _, t in ipairs(expired) do
  redis.call('HSET', prefix .. t, 'status', 'EXPIRED')
  redis.call('HDEL', prefix .. t, 'activeUntil')
  redis.call('EXPIRE', prefix .. t, ARGV[7])
end
if #expired > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now) end
local n = math.min(tonumber(ARGV[3]) - redis.call('ZCARD', KEYS[2]), tonumber(ARGV[4]))
local admitted = 0
if n > 0 then
  local popped = redis.call('ZPOPMIN', KEYS[1], n)
  local ttl = tonumber(ARGV[5])
  for i = 1, #popped, 2 do
    local t = popped[i]
    redis.call('ZADD', KEYS[2], now + ttl, t)
    redis.call('HSET', prefix .. t, 'status', 'ACTIVE', 'activeUntil', now + ttl)
    redis.call('PEXPIRE', prefix .. t, ttl + tonumber(ARGV[7]) * 1000)
    admitted = admitted + 1
  end
end
return {#expired, admitted}
"#,
    )
});

/// Releases the admission lease only if we still hold it. KEYS: lock. ARGV: holder.
pub static RELEASE_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0",
    )
});

/// ReservationCompleted: the token expires at once, frees its active slot, and is marked spent.
/// KEYS[2..]: active, waiting, token key. ARGV[2..]: token, user, retention s.
pub static COMPLETE: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
if redis.call('HGET', KEYS[4], 'user') ~= ARGV[3] then return end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('HSET', KEYS[4], 'status', 'EXPIRED', 'spent', '1')
redis.call('HDEL', KEYS[4], 'activeUntil')
redis.call('EXPIRE', KEYS[4], ARGV[4])
"#,
    )
});

/// ReservationFailed (one its user did not cause): a live active token keeps at least
/// `restoreMin` of active time; one that expired goes back to the head of the waiting queue,
/// unless its user has joined again since (a restore never gives one user two tokens). A
/// waiting or foreign token is left alone, and so is one a completed reservation spent (a late
/// failure of an older reservation must not hand out a second slot) or one its user left
/// (leaving gives the place up).
/// KEYS[2..]: active, waiting, token key, user key. ARGV[2..]: token, user, now ms,
/// restoreMin ms, waiting TTL s, restore (0 when the user caused the failure: nothing changes).
pub static RESTORE: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
if ARGV[7] ~= '1' then return end
local h = redis.call('HMGET', KEYS[4], 'user', 'status', 'activeUntil', 'spent', 'left')
if h[1] ~= ARGV[3] or h[2] == 'WAITING' or h[4] == '1' or h[5] == '1' then return end
local now = tonumber(ARGV[4])
if h[2] == 'ACTIVE' and tonumber(h[3]) > now then
  local keep = math.max(tonumber(h[3]), now + tonumber(ARGV[5]))
  redis.call('ZADD', KEYS[2], keep, ARGV[2])
  redis.call('HSET', KEYS[4], 'activeUntil', keep)
  if redis.call('PTTL', KEYS[4]) < keep - now then redis.call('PEXPIRE', KEYS[4], keep - now + 60000) end
  return
end
local current = redis.call('GET', KEYS[5])
if current and current ~= ARGV[2] then return end
local head = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
local score = 0
if #head > 0 then score = math.min(0, tonumber(head[2]) - 1) end
redis.call('ZREM', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], score, ARGV[2])
redis.call('HSET', KEYS[4], 'status', 'WAITING')
redis.call('HDEL', KEYS[4], 'activeUntil')
redis.call('EXPIRE', KEYS[4], ARGV[6])
redis.call('SET', KEYS[5], ARGV[2], 'EX', ARGV[6])
"#,
    )
});
