//! dead-letters: the dead-letter stream over HTTP, for operators (admins): what each consumer
//! could not handle and why, the message itself, and the two ways out: replay it to its original
//! subject (every consumer of it sees it again and dedupes by its inbox), or discard it. What
//! `ticketing dlq` does from a shell, for the organizer's page.
//!
//! Its NATS user is the one that may republish any event subject (a replay puts the original
//! message back where it was published), and read and delete dead letters; it may create no
//! consumer and change no stream (`messaging::permissions`). No service holds both a consumer and
//! that right.

mod error;
mod http;

use axum::Router;
use messaging::Runtime;
use servicekit::{Service, StartError};

/// The service name (its NATS user, its Postgres role).
pub const NAME: &str = "dead-letters";

/// The dead-letters service.
pub struct DeadLetters;

impl Service for DeadLetters {
    const NAME: &'static str = NAME;
    const ABOUT: &'static str = "the dead letters for operators: list, inspect, replay, discard";
    type Api = http::Api;

    fn routes(rt: &Runtime) -> Result<Router, StartError> {
        let state = http::AppState { bus: rt.bus.clone(), jwt: rt.config.jwt.clone() };
        Ok(http::routes().with_state(state))
    }
}
