//! ranking: the read side's leaderboards, in Redis. Concerts are ranked by confirmed seats over
//! all time and over a sliding window (per-minute buckets of the sale's own time, so a replayed
//! event lands in the right minute); sold-out schedules by how fast they sold out. Names come
//! from the catalog's events, never from the concert service's tables. Every effect runs in
//! the Redis inbox script, so a redelivered event counts once.

mod domain;
mod handlers;
mod http;
mod keys;

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{ConsumerSpec, RedisInbox, Runtime};
use platform::auth::JwtKeys;
use servicekit::StartError;

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

/// The service's OpenAPI document (served at `GET /openapi/ranking.json`).
pub fn openapi() -> utoipa::openapi::OpenApi {
    <http::Api as utoipa::OpenApi>::openapi()
}

/// The ranking routes, and their document.
pub fn router(state: AppState) -> Router {
    servicekit::routes(NAME, http::routes().with_state(state), openapi())
}

/// Starts the three consumers; returns the routes.
pub fn start(rt: &Runtime) -> Result<Router, StartError> {
    let keys = Keys::new(&rt.config.prefix);
    for stream in [Stream::Catalog, Stream::Reservation, Stream::Seat] {
        rt.spawn_consumer(
            ConsumerSpec::declared(NAME, stream)?,
            RedisInbox::new(
                rt.redis.clone(),
                rt.config.prefix.clone(),
                handlers::Rankings { keys: keys.clone() },
            ),
        );
    }
    Ok(router(AppState { redis: rt.redis.clone(), keys, jwt: JwtKeys::new(&rt.config.jwt_secret) }))
}

#[cfg(test)]
mod consumer_filters {
    use super::*;
    use messaging::{RedisHandler as _, check_filters};

    #[test]
    fn each_consumer_is_given_exactly_the_events_its_handler_takes() {
        let rankings = handlers::Rankings { keys: Keys::new(&contracts::Namespace::new("t").unwrap()) };
        for stream in [Stream::Catalog, Stream::Reservation, Stream::Seat] {
            check_filters(&ConsumerSpec::declared(NAME, stream).unwrap(), |k| rankings.handles(k)).unwrap();
        }
    }
}
