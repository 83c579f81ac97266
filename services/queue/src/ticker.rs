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

/// One tick under the lease; `None` when another replica holds it.
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
    let outcome = store::tick(&mut conn, keys, settings, chrono::Utc::now().timestamp_millis()).await;
    store::release_lease(&mut conn, keys, holder).await?;
    let (expired, admitted) = outcome?;
    metrics::counter!("queue_admitted_total").increment(admitted);
    metrics::counter!("queue_expired_total").increment(expired);
    if let Ok((waiting, active)) = store::sizes(&mut conn, keys).await {
        metrics::gauge!("queue_waiting").set(waiting as f64);
        metrics::gauge!("queue_active").set(active as f64);
    }
    Ok(Some((expired, admitted)))
}
