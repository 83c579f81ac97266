//! The waiting room against real Redis (and NATS for its consumer).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod admission;
mod events;
mod guard;
mod http;
mod joins;
mod openapi;
mod rooms;

use platform::queue_guard::QueueKeys;
use queue::Settings;
use std::time::Duration;
use testkit::TestEnv;

/// Queue settings for a test, with the given capacity and pace.
pub fn settings(max_active: u32, admit_per_tick: u32) -> Settings {
    Settings {
        max_active,
        admit_per_tick,
        tick: Duration::from_millis(1000),
        active_ttl: Duration::from_secs(600),
        restore_min: Duration::from_secs(60),
        live_every: Duration::from_millis(1000),
    }
}

pub fn keys(env: &TestEnv) -> QueueKeys {
    QueueKeys::new(&env.ns)
}

pub async fn conn(env: &TestEnv) -> platform::pools::Redis {
    env.redis.clone()
}

/// Milliseconds at the start of a tick window far from any other test's.
pub fn base_ms() -> i64 {
    chrono::Utc::now().timestamp_millis() / 1000 * 1000
}
