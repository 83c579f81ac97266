//! The waiting room's Redis scripts. Each operation is one script, so it is atomic and costs
//! one round trip. Token hashes live at `<token prefix><token>` with fields `user`, `status`
//! (WAITING | ACTIVE | EXPIRED), `seq`, `activeUntil` (ms), `room` (the schedule of a sale's
//! room; absent in the global room), and `spent` or `left` once used or given up. A room's
//! keys (`QueueKeys::room`) are passed in by the scripts that know the room, and found from the
//! token's `room` with `room_base` (`ROOM_LUA`) by those that start from a token.

use messaging::IdempotentScript;
use platform::queue_guard::ROOM_LUA;
use redis::Script;
use std::sync::LazyLock;

/// A script with the room helper in front.
fn with_rooms(body: &str) -> String {
    format!("{ROOM_LUA}{body}")
}

/// Lua: `let_go(base, key, token, retention)` takes token `token` (hash `key`) out of its room
/// (`base`, as `room_base` answers) as a leave does: neither waiting nor admitted, EXPIRED and
/// marked left (a late failure of its reservation must not put it back), kept `retention` s.
const LEAVE_LUA: &str = r#"
local function let_go(base, key, token, retention)
  redis.call('ZREM', base .. 'waiting', token)
  redis.call('ZREM', base .. 'active', token)
  redis.call('HSET', key, 'status', 'EXPIRED', 'left', '1')
  redis.call('HDEL', key, 'activeUntil')
  redis.call('EXPIRE', key, retention)
end
"#;

fn with_rooms_and_leave(body: &str) -> String {
    with_rooms(&format!("{LEAVE_LUA}{body}"))
}

/// Join: returns the user's live token in the room, or makes a new one. A sale's room admits
/// no one once its schedule is sold out, and exists only for a schedule the catalog announced.
/// Before a sale opens its room takes joins in a random order: a token's score is a keyed hash
/// of its user (the sale's secret `salt`, drawn when the schedule was announced), below every
/// score given after the opening (the sequence, from 1). So the order among early joiners is
/// a draw no one can predict, made once per user: leaving and joining again before the opening
/// finds the same place. From the opening on, first come first served.
/// KEYS: seq, waiting, user key, sold-out, rooms, schedules, sale (the room's), blocked users.
/// ARGV: token prefix, new token, user, now ms, waiting TTL s, the room's schedule ('' for the
/// global room). Answers `{token, created (0|1), rank (-1 when active), opensAt ('' unless the
/// sale is yet to open)}`, or `{'', 0, -2, ''}` when the sale is sold out, `{'', 0, -3, ''}` when
/// its schedule is unknown and `{'', 0, -4, ''}` when an admin has blocked the user.
pub static JOIN: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local prefix, now, room = ARGV[1], tonumber(ARGV[4]), ARGV[6]
local draw, opens = nil, ''
if redis.call('SISMEMBER', KEYS[8], ARGV[3]) == 1 then return {'', 0, -4, ''} end
if room ~= '' then
  if redis.call('EXISTS', KEYS[4]) == 1 then return {'', 0, -2, ''} end
  if redis.call('SISMEMBER', KEYS[6], room) == 0 then return {'', 0, -3, ''} end
  local sale = redis.call('HMGET', KEYS[7], 'opensAt', 'salt')
  if sale[1] and now < tonumber(sale[1]) then
    opens = sale[1]
    draw = tonumber(string.sub(redis.sha1hex(sale[2] .. ':' .. ARGV[3]), 1, 12), 16) - 281474976710656
  end
end
local existing = redis.call('GET', KEYS[3])
if existing then
  local h = redis.call('HMGET', prefix .. existing, 'status', 'activeUntil')
  if h[1] == 'WAITING' then
    return {existing, 0, redis.call('ZRANK', KEYS[2], existing) or -1, opens}
  elseif h[1] == 'ACTIVE' and tonumber(h[2]) > now then
    return {existing, 0, -1, opens}
  end
end
local token = ARGV[2]
local seq = redis.call('INCR', KEYS[1])
redis.call('ZADD', KEYS[2], draw or seq, token)
redis.call('HSET', prefix .. token, 'user', ARGV[3], 'status', 'WAITING', 'seq', seq)
if room ~= '' then
  redis.call('HSET', prefix .. token, 'room', room)
  redis.call('SADD', KEYS[5], room)
end
redis.call('EXPIRE', prefix .. token, ARGV[5])
redis.call('SET', KEYS[3], token, 'EX', ARGV[5])
return {token, 1, redis.call('ZRANK', KEYS[2], token), opens}
"#,
    )
});

/// A user blocked or unblocked (`UserStatusChanged`). KEYS[2..]: blocked users, rooms with
/// tokens. ARGV[2..]: user, status, `QueueKeys::prefix`, retention s. Blocked, the user joins no
/// room again, and every token of theirs (waiting or admitted, in any room) is taken away as a
/// leave takes it: no place is held, and no admission, for someone who may not book. Answers how
/// many tokens it took.
pub static USER_STATUS: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(&with_rooms_and_leave(
        r#"
if ARGV[3] ~= 'BLOCKED' then
  redis.call('SREM', KEYS[2], ARGV[2])
  return 0
end
redis.call('SADD', KEYS[2], ARGV[2])
local taken = 0
local function take(room)
  local base = room_base(ARGV[4], room)
  local user = base .. 'user:' .. ARGV[2]
  local token = redis.call('GET', user)
  if not token then return end
  let_go(base, ARGV[4] .. 'token:' .. token, token, ARGV[5])
  redis.call('DEL', user)
  taken = taken + 1
end
take('')
for _, room in ipairs(redis.call('SMEMBERS', KEYS[3])) do take(room) end
return taken
"#,
    ))
});

/// Poll: ARGV: token key, token, now ms, `QueueKeys::prefix`.
/// Answers nil for an unknown token, else `{user, status, rank (-1 unless waiting),
/// activeUntil, room, score (its place's score while waiting, else ''), opensAt (while a
/// waiting token's sale is yet to open, else '')}`. A token of a sold-out sale that was neither spent nor given up reads
/// SOLD_OUT, whether it was waiting or admitted.
pub static POLL: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&with_rooms(
        r#"
local h = redis.call('HMGET', ARGV[1], 'user', 'status', 'activeUntil', 'room', 'spent', 'left')
if not h[1] then return nil end
local base = room_base(ARGV[4], h[4])
local status, rank, score, opens = h[2], -1, '', ''
if h[4] and h[5] ~= '1' and h[6] ~= '1' and redis.call('EXISTS', base .. 'sold-out') == 1 then
  status = 'SOLD_OUT'
elseif status == 'WAITING' then
  rank = redis.call('ZRANK', base .. 'waiting', ARGV[2]) or -1
  score = redis.call('ZSCORE', base .. 'waiting', ARGV[2]) or ''
  local at = h[4] and redis.call('HGET', base .. 'sale', 'opensAt')
  if at and tonumber(at) > tonumber(ARGV[3]) then opens = at end
elseif status == 'ACTIVE' and tonumber(h[3]) <= tonumber(ARGV[3]) then
  status = 'EXPIRED'
end
return {h[1], status, rank, h[3] or '', h[4] or '', score, opens}
"#,
    ))
});

/// Leave: ARGV: token key, token, user, retention s, `QueueKeys::prefix`.
/// The token is EXPIRED and marked left: a late failure of its reservation must not put it
/// back in the queue. Answers 1 when the token was the user's, 0 otherwise.
pub static LEAVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&with_rooms_and_leave(
        r#"
local h = redis.call('HMGET', ARGV[1], 'user', 'room')
if h[1] ~= ARGV[3] then return 0 end
local base = room_base(ARGV[5], h[2])
let_go(base, ARGV[1], ARGV[2], ARGV[4])
local user = base .. 'user:' .. ARGV[3]
if redis.call('GET', user) == ARGV[2] then redis.call('DEL', user) end
return 1
"#,
    ))
});

/// Admission tick: drops expired actives, then admits `min(maxActive - active, admitPerTick)`
/// waiting tokens in FIFO order. Time is cut into tick windows (`floor(now / tick)`); a window
/// admits once, however many replicas tick in it, so together they never exceed the rate. The
/// last window is kept as its start in milliseconds, not its number, so a change of the tick's
/// length (a restart with another setting) neither stalls admission nor admits twice.
/// KEYS: waiting, active, last tick, sold-out, rooms, admitted-through (the highest score ever
/// admitted: a waiting token whose score is above it has not been), sale. ARGV: token prefix,
/// now ms, maxActive, admitPerTick, active TTL ms, tick ms, retention s, the room's schedule
/// ('' when global). Answers `{expired, admitted}`.
/// A sale's room (KEYS: also sold-out, rooms, sale; ARGV: also its schedule) admits no one
/// before its sale opens or once sold out, and leaves the set of rooms once sold out or empty.
pub static TICK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r#"
local prefix, now, room = ARGV[1], tonumber(ARGV[2]), ARGV[8]
if room ~= '' and redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('SREM', KEYS[5], room)
  return {0, 0}
end
if room ~= '' and now < tonumber(redis.call('HGET', KEYS[7], 'opensAt') or '0') then return {0, 0} end
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
  if #popped > 0 then
    local through = tonumber(popped[#popped])
    local before = tonumber(redis.call('GET', KEYS[6]) or '')
    if before == nil or through > before then redis.call('SET', KEYS[6], popped[#popped]) end
  end
  local ttl = tonumber(ARGV[5])
  for i = 1, #popped, 2 do
    local t = popped[i]
    redis.call('ZADD', KEYS[2], now + ttl, t)
    redis.call('HSET', prefix .. t, 'status', 'ACTIVE', 'activeUntil', now + ttl)
    redis.call('PEXPIRE', prefix .. t, ttl + tonumber(ARGV[7]) * 1000)
    admitted = admitted + 1
  end
end
if room ~= '' and redis.call('ZCARD', KEYS[1]) == 0 and redis.call('ZCARD', KEYS[2]) == 0 then
  redis.call('SREM', KEYS[5], room)
  redis.call('DEL', KEYS[6])
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
/// KEYS[2..]: token key. ARGV[2..]: token, user, retention s, `QueueKeys::prefix`.
pub static COMPLETE: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(&with_rooms(
        r#"
local h = redis.call('HMGET', KEYS[2], 'user', 'room')
if h[1] ~= ARGV[3] then return end
local base = room_base(ARGV[5], h[2])
redis.call('ZREM', base .. 'active', ARGV[2])
redis.call('ZREM', base .. 'waiting', ARGV[2])
redis.call('HSET', KEYS[2], 'status', 'EXPIRED', 'spent', '1')
redis.call('HDEL', KEYS[2], 'activeUntil')
redis.call('EXPIRE', KEYS[2], ARGV[4])
"#,
    ))
});

/// ReservationFailed (one its user did not cause): a live active token keeps at least
/// `restoreMin` of active time; one that expired goes back to the head of its room's waiting
/// queue, unless its user has joined again since (a restore never gives one user two tokens). A
/// waiting or foreign token is left alone, and so is one a completed reservation spent (a late
/// failure of an older reservation must not hand out a second slot), one its user left
/// (leaving gives the place up), or one of a sale that is sold out.
/// KEYS[2..]: token key. ARGV[2..]: token, user, now ms, restoreMin ms, waiting TTL s, restore
/// (0 when the user caused the failure: nothing changes), `QueueKeys::prefix`.
pub static RESTORE: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(&with_rooms(
        r#"
if ARGV[7] ~= '1' then return end
local h = redis.call('HMGET', KEYS[2], 'user', 'status', 'activeUntil', 'spent', 'left', 'room')
if h[1] ~= ARGV[3] or h[2] == 'WAITING' or h[4] == '1' or h[5] == '1' then return end
local base = room_base(ARGV[8], h[6])
if h[6] and redis.call('EXISTS', base .. 'sold-out') == 1 then return end
local active, waiting, user = base .. 'active', base .. 'waiting', base .. 'user:' .. ARGV[3]
if h[6] then redis.call('SADD', ARGV[8] .. 'rooms', h[6]) end
local now = tonumber(ARGV[4])
if h[2] == 'ACTIVE' and tonumber(h[3]) > now then
  local keep = math.max(tonumber(h[3]), now + tonumber(ARGV[5]))
  redis.call('ZADD', active, keep, ARGV[2])
  redis.call('HSET', KEYS[2], 'activeUntil', keep)
  if redis.call('PTTL', KEYS[2]) < keep - now then redis.call('PEXPIRE', KEYS[2], keep - now + 60000) end
  return
end
local current = redis.call('GET', user)
if current and current ~= ARGV[2] then return end
local head = redis.call('ZRANGE', waiting, 0, 0, 'WITHSCORES')
local score = 0
if #head > 0 then score = math.min(0, tonumber(head[2]) - 1) end
redis.call('ZREM', active, ARGV[2])
redis.call('ZADD', waiting, score, ARGV[2])
redis.call('HSET', KEYS[2], 'status', 'WAITING')
redis.call('HDEL', KEYS[2], 'activeUntil')
redis.call('EXPIRE', KEYS[2], ARGV[6])
redis.call('SET', user, ARGV[2], 'EX', ARGV[6])
"#,
    ))
});

/// SoldOut or ScheduleCancelled: the sale's room closes. Every token of it not yet spent reads
/// SOLD_OUT (`POLL`, the booking guard: nothing is left to buy) without one write per token; its
/// queues go (UNLINK frees them off the main thread) and the ticker stops visiting it. A join is
/// refused 409; a cancelled schedule is also forgotten, so once the mark is gone a join is 404.
/// KEYS[2..]: sold-out, waiting, active, rooms (the room's), schedules. ARGV[2..]: schedule,
/// closed-at ms, how long the mark is kept s (longer than any token of the room lives), '1' to
/// forget the schedule.
pub static CLOSE: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])
redis.call('UNLINK', KEYS[3], KEYS[4])
redis.call('SREM', KEYS[5], ARGV[2])
if ARGV[5] == '1' then redis.call('SREM', KEYS[6], ARGV[2]) end
"#,
    )
});

/// ScheduleCreated and ScheduleChanged: the schedule may have a room; one whose sale opens
/// later keeps when, and the secret its room's draw is made with (`JOIN`, drawn once).
/// KEYS[2..]: schedules, sale (the room's). ARGV[2..]: schedule, opens at ms ('' when on sale
/// at once), salt.
pub static SCHEDULE: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
redis.call('SADD', KEYS[2], ARGV[2])
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[3], 'opensAt', ARGV[3])
  redis.call('HSETNX', KEYS[3], 'salt', ARGV[4])
else
  redis.call('HDEL', KEYS[3], 'opensAt')
end
"#,
    )
});
