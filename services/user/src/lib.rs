//! user: accounts. Anyone opens one with an email and a password (kept as an Argon2id hash) and
//! signs in for a bearer token, signed with the system's private key like the tokens every
//! service verifies; admins block accounts (a blocked account cannot sign in, and
//! `UserStatusChanged` tells the reservation service) and make organizers.

mod domain;
mod error;
mod http;
mod password;
mod store;

use axum::Router;
use messaging::Runtime;
use platform::{config::Vars, rate_limit::RateLimit};
use servicekit::{Service, StartError};
use std::time::Duration;

pub use domain::AccountStatus;

/// The service name (`ticketing serve user`, its Postgres role and NATS user).
pub const NAME: &str = "user";
/// The Postgres schema it owns (`user` is a reserved word in SQL).
pub const SCHEMA: &str = "users";

/// How long a session lasts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The lifetime of a signed-in token (`TICKETING_SESSION_TTL_SECS`, default 3600; at most
    /// `TICKETING_JWT_MAX_LIFETIME_SECS`).
    pub session_ttl: Duration,
}

impl platform::config::Settings for Settings {
    fn read(vars: &mut Vars<'_>) -> Self {
        let session_ttl = vars.secs("TICKETING_SESSION_TTL_SECS", 3600);
        let max = vars.secs("TICKETING_JWT_MAX_LIFETIME_SECS", platform::auth::DEFAULT_MAX_LIFETIME_SECS);
        if session_ttl.is_zero() || session_ttl > max {
            vars.fail("TICKETING_SESSION_TTL_SECS", "must be 1 to TICKETING_JWT_MAX_LIFETIME_SECS seconds");
        }
        Self { session_ttl }
    }
}

/// The user service.
pub struct Users;

impl Service for Users {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "accounts: sign-up, sign-in (tokens), blocking";
    type Api = http::Api;

    fn settings(config: &platform::Config) -> Result<(), platform::ConfigError> {
        config.settings::<platform::rate_limit::RateSettings>()?;
        config.settings::<Settings>().map(drop)
    }

    /// Refuses to start without a key to sign tokens with (`TICKETING_JWT_PRIVATE_KEY`, or the
    /// development secret).
    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let settings: Settings = rt.config.settings()?;
        let jwt = rt.config.jwt.clone();
        jwt.mint(contracts::UserId::new(), platform::auth::Role::User, settings.session_ttl).map_err(
            |e| StartError::Setup { what: "the user service's token signer", message: e.to_string() },
        )?;
        let outbox = messaging::Outbox::new(SCHEMA, rt.config.prefix.clone());
        rt.spawn_relay(SCHEMA);
        rt.spawn_pruner(SCHEMA);
        let state = http::AppState { db: rt.db.clone(), outbox, jwt: jwt.clone(), settings };
        // Signing up and in are limited per client address (their only POSTs): guessing
        // passwords is as slow as a person.
        let limit = RateLimit::new("accounts", &rt.config.settings()?, jwt);
        Ok(limit.on(http::routes()).with_state(state))
    }
}
