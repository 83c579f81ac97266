//! ranking: the read side's leaderboards, in Redis. Concerts are ranked by confirmed seats over
//! all time and over a sliding window (per-minute buckets of the sale's own time, so a replayed
//! event lands in the right minute); sold-out schedules by how fast they sold out. Names come
//! from the catalog's events, never from the concert service's tables. Every effect runs in
//! the Redis inbox script, so a redelivered event counts once.

mod domain;
mod error;
mod handlers;
mod http;
mod keys;

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{RedisInbox, Runtime};
use platform::{auth::JwtKeys, redis_acl::RedisKeys};
use servicekit::{Service, StartError};

pub use domain::Window;
pub use keys::Keys;

/// The service name (consumer names).
pub const NAME: &str = "ranking";

/// What the HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub redis: platform::pools::Redis,
    pub keys: Keys,
    pub jwt: JwtKeys,
}

/// The ranking service.
pub struct Ranking;

impl Service for Ranking {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "read side: concert and sell-out rankings";
    const REDIS: RedisKeys = RedisKeys { read_write: &["ranking:*", "inbox:ranking__*"], read_only: &[] };
    type Api = http::Api;

    /// Starts the three consumers.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let keys = Keys::new(&rt.config.prefix);
        for stream in [Stream::Catalog, Stream::Reservation, Stream::Seat] {
            rt.spawn_consumer(
                rt.declared(NAME, stream)?,
                RedisInbox::new(
                    rt.redis.clone(),
                    rt.config.prefix.clone(),
                    handlers::Rankings { keys: keys.clone() },
                ),
            )?;
        }
        Ok(http::routes().with_state(AppState { redis: rt.redis.clone(), keys, jwt: rt.config.jwt.clone() }))
    }
}
