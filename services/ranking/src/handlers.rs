//! Catalog names, confirmed sales and sell-outs become rankings; each effect is one inbox script.

use crate::keys::Keys;
use contracts::{ConcertCreated, ConcertUpdated, Event, ReservationCancelled, ReservationCompleted, SoldOut};
use messaging::{Applied, HandleError, IdempotentScript, InboxKey, Incoming, RedisHandler, applied};
use std::sync::LazyLock;

/// Minute buckets outlive the longest window a little.
const BUCKET_TTL_SECS: u64 = 25 * 3600;

/// KEYS[2..]: names, names-at. ARGV[2..]: concert, name, event time ms. The newer name wins.
static NAME: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
local at = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '-1')
if tonumber(ARGV[4]) >= at then
  redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
end
"#,
    )
});

/// KEYS[2..]: all-time ZSET, the sale's minute bucket, the sale's key. ARGV[2..]: concert,
/// seats, bucket TTL, the bucket's name. The sale's key remembers its bucket while it lives, so
/// a cancellation takes the seats out of the window they were counted in.
static CONFIRMED: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
redis.call('ZINCRBY', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZINCRBY', KEYS[3], ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[4])
redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[4])
"#,
    )
});

/// KEYS[2..]: all-time ZSET, the sale's key, sold-out ZSET, schedule → concert, the minute
/// bucket the sale's key names (or the sale's key again, when it names none). ARGV[2..]:
/// concert, seats, schedule. A sale undone leaves the counts it entered (the all-time one, and
/// its minute's while that lives), and a cancelled schedule leaves the sold-out ranking. Every
/// key it touches is declared, as a cluster needs.
static CANCELLED: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
-- A concert with nothing left sold leaves the ranking rather than rank at 0.
local function take(key)
  if tonumber(redis.call('ZINCRBY', key, -tonumber(ARGV[3]), ARGV[2])) <= 0 then
    redis.call('ZREM', key, ARGV[2])
  end
end
take(KEYS[2])
if KEYS[6] ~= KEYS[3] and redis.call('GET', KEYS[3]) == KEYS[6] and redis.call('EXISTS', KEYS[6]) == 1 then
  take(KEYS[6])
end
redis.call('DEL', KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[4])
redis.call('HDEL', KEYS[5], ARGV[4])
"#,
    )
});

/// KEYS[2..]: sold-out ZSET, schedule → concert. ARGV[2..]: schedule, seconds, concert.
static SOLD_OUT: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('HSET', KEYS[3], ARGV[2], ARGV[4])
"#,
    )
});

/// Consumes CATALOG (names), RESERVATION (sales) and SEAT (sell-outs).
pub struct Rankings {
    pub keys: Keys,
}

impl RedisHandler for Rankings {
    fn handles(&self, kind: &str) -> bool {
        [
            ConcertCreated::TYPE,
            ConcertUpdated::TYPE,
            ReservationCompleted::TYPE,
            ReservationCancelled::TYPE,
            SoldOut::TYPE,
        ]
        .contains(&kind)
    }

    async fn handle(
        &self,
        conn: &mut platform::pools::Redis,
        inbox: &InboxKey,
        msg: &Incoming,
    ) -> Result<Applied, HandleError> {
        let at = msg.envelope.occurred_at;
        let k = &self.keys;
        let answer: i64 = match msg.kind() {
            ConcertCreated::TYPE | ConcertUpdated::TYPE => {
                let (concert, name) = if msg.kind() == ConcertCreated::TYPE {
                    let e = msg.decode::<ConcertCreated>()?.payload;
                    (e.concert_id, e.name)
                } else {
                    let e = msg.decode::<ConcertUpdated>()?.payload;
                    (e.concert_id, e.name)
                };
                NAME.prepare(inbox)
                    .key(&k.names)
                    .key(&k.names_at)
                    .arg(concert.to_string())
                    .arg(name)
                    .arg(at.timestamp_millis())
                    .invoke_async(conn)
                    .await?
            }
            ReservationCompleted::TYPE => {
                let e = msg.decode::<ReservationCompleted>()?.payload;
                let bucket = k.minute(at.timestamp().div_euclid(60));
                CONFIRMED
                    .prepare(inbox)
                    .key(&k.confirmed)
                    .key(&bucket)
                    .key(k.sale(e.reservation_id))
                    .arg(e.concert_id.to_string())
                    .arg(e.seat_nos.len())
                    .arg(BUCKET_TTL_SECS)
                    .arg(&bucket)
                    .invoke_async(conn)
                    .await?
            }
            ReservationCancelled::TYPE => {
                let e = msg.decode::<ReservationCancelled>()?.payload;
                let sale = k.sale(e.reservation_id);
                // The bucket is read first so the script declares it (the script checks it again).
                let bucket: Option<String> = redis::cmd("GET").arg(&sale).query_async(conn).await?;
                CANCELLED
                    .prepare(inbox)
                    .key(&k.confirmed)
                    .key(&sale)
                    .key(&k.sold_out)
                    .key(&k.schedule_concert)
                    .key(bucket.unwrap_or_else(|| sale.clone()))
                    .arg(e.concert_id.to_string())
                    .arg(e.seat_nos.len())
                    .arg(e.schedule_id.to_string())
                    .invoke_async(conn)
                    .await?
            }
            _ => {
                let e = msg.decode::<SoldOut>()?.payload;
                SOLD_OUT
                    .prepare(inbox)
                    .key(&k.sold_out)
                    .key(&k.schedule_concert)
                    .arg(e.schedule_id.to_string())
                    .arg(e.seconds_to_sell_out)
                    .arg(e.concert_id.to_string())
                    .invoke_async(conn)
                    .await?
            }
        };
        Ok(applied(answer))
    }
}
