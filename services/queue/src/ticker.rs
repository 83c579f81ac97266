//! The admission ticker: at the start of every tick window, under a Redis lease so one replica
//! admits at a time, it drops expired actives and admits the next waiting tokens.

use crate::Settings;
use crate::store;
use platform::queue_guard::QueueKeys;
use tokio_util::sync::CancellationToken;

/// Runs until `shutdown`.
pub async fn run(
    redis: platform::pools::Redis,
    keys: QueueKeys,
    settings: Settings,
    shutdown: CancellationToken,
) {
    let holder = uuid::Uuid::new_v4().to_string();
    let tick_ms = settings.tick.as_millis().max(1) as i64;
    loop {
        // Wake at the start of the next tick window, so every replica tries once per window.
        let now = chrono::Utc::now().timestamp_millis();
        let wait = std::time::Duration::from_millis((tick_ms - now.rem_euclid(tick_ms)) as u64);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        if let Err(e) = tick_once(&redis, &keys, &settings, &holder).await {
            tracing::warn!(error = %e, "admission tick failed; trying again next tick");
        }
    }
    tracing::info!(task = "ticker[queue]", "stopped: shutdown requested");
}

/// One tick of every room under the lease; `None` when another replica holds it. Each room
/// admits at the configured pace: a sale's room is its own line, not a share of one.
pub async fn tick_once(
    redis: &platform::pools::Redis,
    keys: &QueueKeys,
    settings: &Settings,
    holder: &str,
) -> Result<Option<(u64, u64)>, Box<dyn std::error::Error + Send + Sync>> {
    let mut conn = redis.clone();
    if !store::acquire_lease(&mut conn, keys, holder, settings.tick).await? {
        return Ok(None);
    }
    let outcome = tick_rooms(&mut conn, keys, settings).await;
    store::release_lease(&mut conn, keys, holder).await?;
    let (expired, admitted, waiting, active) = outcome?;
    metrics::counter!("queue_admitted_total").increment(admitted);
    metrics::counter!("queue_expired_total").increment(expired);
    metrics::gauge!("queue_waiting").set(waiting as f64);
    metrics::gauge!("queue_active").set(active as f64);
    Ok(Some((expired, admitted)))
}

/// Ticks every room: `(expired, admitted, waiting, active)` summed over them.
async fn tick_rooms(
    conn: &mut platform::pools::Redis,
    keys: &QueueKeys,
    settings: &Settings,
) -> Result<(u64, u64, u64, u64), redis::RedisError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut sum = (0, 0, 0, 0);
    for room in store::rooms(conn, keys).await? {
        let (expired, admitted) = store::tick(conn, &room, settings, now).await?;
        let (waiting, active) = store::sizes(conn, &room).await?;
        sum = (sum.0 + expired, sum.1 + admitted, sum.2 + waiting, sum.3 + active);
    }
    Ok(sum)
}
