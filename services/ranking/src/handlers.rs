//! Catalog names, confirmed sales and sell-outs become rankings; each effect is one inbox script.

use crate::keys::Keys;
use contracts::{ConcertCreated, ConcertUpdated, Event, ReservationCompleted, SoldOut};
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

/// KEYS[2..]: all-time ZSET, the sale's minute bucket. ARGV[2..]: concert, seats, bucket TTL.
static CONFIRMED: LazyLock<IdempotentScript> = LazyLock::new(|| {
    IdempotentScript::new(
        r#"
redis.call('ZINCRBY', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZINCRBY', KEYS[3], ARGV[3], ARGV[2])
redis.call('EXPIRE', KEYS[3], ARGV[4])
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
        [ConcertCreated::TYPE, ConcertUpdated::TYPE, ReservationCompleted::TYPE, SoldOut::TYPE]
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
                CONFIRMED
                    .prepare(inbox)
                    .key(&k.confirmed)
                    .key(k.minute(at.timestamp().div_euclid(60)))
                    .arg(e.concert_id.to_string())
                    .arg(e.seat_nos.len())
                    .arg(BUCKET_TTL_SECS)
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
