use crate::support::{ordered_spec, publish_event, sample};
use messaging::{
    Applied, HandleError, IdempotentScript, InboxKey, Incoming, RedisHandler, RedisInbox, run_consumer,
};
use std::{sync::Arc, time::Duration};
use testkit::{TestEnv, eventually};

/// Counts released seats per schedule in Redis: one INCRBY per event, inside the inbox script.
struct SeatCounter {
    key: String,
    script: IdempotentScript,
}

impl RedisHandler for SeatCounter {
    async fn handle(
        &self,
        conn: &mut platform::pools::Redis,
        inbox: &InboxKey,
        msg: &Incoming,
    ) -> Result<Applied, HandleError> {
        let event = msg.decode::<contracts::SeatsReleased>()?;
        let answer: i64 = self
            .script
            .prepare(inbox)
            .key(&self.key)
            .arg(event.payload.seat_nos.len())
            .invoke_async(conn)
            .await?;
        Ok(messaging::applied(answer))
    }
}

#[tokio::test]
async fn redis_effect_and_event_id_are_recorded_together_and_once() {
    let env = TestEnv::new().await.unwrap();
    let key = env.ns.redis_key("released");
    let counter = SeatCounter {
        key: key.clone(),
        script: IdempotentScript::new("redis.call('INCRBY', KEYS[2], ARGV[2])"),
    };
    let inbox = Arc::new(RedisInbox::new(env.redis.clone(), env.ns.clone(), counter));
    tokio::spawn(run_consumer(env.bus.clone(), ordered_spec(), inbox, env.shutdown.clone()));

    let event = sample();
    publish_event(&env, &event, "first").await;
    publish_event(&env, &event, "second").await;
    let other = sample();
    publish_event(&env, &other, "third").await;

    // One message at a time in stream order: once `other` is applied, both copies of `event`
    // have been handled.
    let other_inbox = env.ns.redis_key(&format!("inbox:probe__SEAT:{}", other.id));
    let pool = env.redis.clone();
    let n: i64 = eventually("the later event applied", Duration::from_secs(10), || {
        let (pool, key, other_inbox) = (pool.clone(), key.clone(), other_inbox.clone());
        async move {
            let mut conn = pool.clone();
            let done: bool = redis::cmd("EXISTS").arg(&other_inbox).query_async(&mut conn).await.ok()?;
            if !done {
                return None;
            }
            redis::cmd("GET").arg(&key).query_async(&mut conn).await.ok()
        }
    })
    .await;
    assert_eq!(n, 2, "the duplicate copy counted again");
    // The id is remembered as long as the SEAT stream keeps the message, plus a day: a replay
    // JetStream can still make finds it.
    let mut conn = env.redis.clone();
    let ttl: i64 = redis::cmd("TTL").arg(&other_inbox).query_async(&mut conn).await.unwrap();
    let kept = messaging::definitions::stream_config(contracts::Stream::Seat, &env.ns, 1).unwrap().max_age;
    let day = 24 * 3600;
    assert!((kept.as_secs() as i64 + day - ttl).abs() < 60, "TTL {ttl} s, the stream keeps {kept:?}");
}
