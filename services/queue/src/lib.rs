//! queue: the waiting room (DESIGN §7). Users join and get a token that waits in FIFO order
//! (an INCR sequence as score, so no ties); an admission tick, one replica at a time under a
//! Redis lease, makes the next tokens ACTIVE at a controlled rate up to a capacity. Booking
//! routes accept only ACTIVE tokens (`platform::queue_guard`). A completed reservation spends
//! its token at once; a failed one restores it.
//!
//! Besides the global room, each schedule's sale may have a room of its own (joining names
//! the schedule): it admits at the same pace on its own, only its tokens book that schedule
//! while it has users, and once the seat service announces the schedule sold out every token
//! of it not spent reads SOLD_OUT at once, the waiting ones without ever being admitted.

mod domain;
mod error;
mod handlers;
mod http;
mod live;
mod scripts;
mod settings;
pub mod store;
pub mod ticker;

use axum::{Router, extract::FromRef};
use contracts::Stream;
use messaging::{RedisInbox, Runtime};
use platform::{auth::JwtKeys, queue_guard::QueueKeys, rate_limit::RateLimit, redis_acl::RedisKeys};
use servicekit::{Service, StartError};
use std::sync::Arc;

pub use domain::{TokenStatus, eta_seconds};
pub use settings::Settings;

/// The service name (consumer names).
pub const NAME: &str = "queue";

/// What the HTTP handlers need.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub redis: platform::pools::Redis,
    /// Shared, not copied: the state is cloned for every request.
    pub keys: Arc<QueueKeys>,
    pub settings: Settings,
    pub jwt: JwtKeys,
    /// The rooms this process's requests wait on.
    pub rooms: live::Rooms,
}

impl AppState {
    /// State over a runtime's connections, with the settings of its configuration.
    pub fn new(rt: &Runtime) -> Result<Self, platform::ConfigError> {
        Ok(Self {
            redis: rt.redis.clone(),
            keys: Arc::new(QueueKeys::new(&rt.config.prefix)),
            settings: rt.config.settings()?,
            jwt: rt.config.jwt.clone(),
            rooms: live::Rooms::default(),
        })
    }
}

/// The waiting-room service.
pub struct Queue;

impl Service for Queue {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "the waiting room: queue tokens, fair admission";
    const REDIS: RedisKeys = RedisKeys { read_write: &["queue:*", "inbox:queue__*"], read_only: &[] };
    type Api = http::Api;

    fn settings(config: &platform::Config) -> Result<(), platform::ConfigError> {
        config.settings::<Settings>()?;
        config.settings::<platform::rate_limit::RateSettings>().map(drop)
    }

    /// Starts the admission ticker and the token consumer.
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let state = AppState::new(rt)?;
        let tokens = handlers::Tokens { keys: (*state.keys).clone(), settings: state.settings.clone() };
        for stream in [Stream::Reservation, Stream::Catalog, Stream::Seat, Stream::User] {
            rt.spawn_consumer(
                rt.declared(NAME, stream)?,
                RedisInbox::new(state.redis.clone(), rt.config.prefix.clone(), tokens.clone()),
            )?;
        }
        rt.spawn(
            "ticker[queue]",
            ticker::run(
                state.redis.clone(),
                (*state.keys).clone(),
                state.settings.clone(),
                rt.shutdown.clone(),
            ),
        );
        rt.spawn(
            "live[queue]",
            state.rooms.clone().run(
                state.redis.clone(),
                (*state.keys).clone(),
                state.settings.live_every,
                rt.shutdown.clone(),
            ),
        );
        // Joining is rate limited per user and per client address (its only POST).
        let limit = RateLimit::new("queue join", &rt.config.settings()?, state.jwt.clone());
        Ok(limit.on(http::routes()).with_state(state))
    }
}
