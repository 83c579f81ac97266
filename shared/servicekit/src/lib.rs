//! The shell every service is made of, on top of the messaging backbone: its routes served with
//! their OpenAPI document, the state of routes that need only the database, the outbox and the
//! JWT keys, and the requests whose effect pushes events. The backbone (`messaging`) knows
//! nothing of HTTP; what joins the two lives here.

use axum::{Router, extract::FromRef};
use messaging::{MessagingError, Outbox, Runtime};
use platform::{
    Config, ConfigError, Problem,
    auth::{Identity, JwtKeys},
    idempotency::{self, Answer, Effect, MaybeKey, StoredResponse},
};
use sea_orm::{DatabaseConnection, DatabaseTransaction};

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Its settings are wrong (every problem, each naming its variable).
    #[error(transparent)]
    Settings(#[from] platform::ConfigError),
    /// Its streams or consumers could not be set up.
    #[error(transparent)]
    Messaging(#[from] MessagingError),
    /// Something else it needs could not be made.
    #[error("cannot make {what}: {message}")]
    Setup { what: &'static str, message: String },
}

/// A service of DESIGN §3: what `ticketing serve <name>` starts, documents and checks. A
/// service's crate implements it once; everything else of its shell is here.
pub trait Service {
    /// Its name: consumer names, event `source`, `ticketing serve <name>`, and its document at
    /// `GET /openapi/<name>.json`.
    const NAME: &'static str;
    /// What it does, in a line (`ticketing services`).
    const ABOUT: &'static str;
    /// Its routes' OpenAPI document.
    type Api: utoipa::OpenApi;
    /// The Redis keys it uses: its Redis user may touch these alone (`ticketing redis acl`).
    const REDIS: platform::redis_acl::RedisKeys = platform::redis_acl::RedisKeys::NONE;

    /// Reads its own settings from the configuration, so that every problem is reported before
    /// anything starts. A service without settings of its own has nothing to read.
    fn settings(config: &Config) -> Result<(), ConfigError> {
        let _ = config;
        Ok(())
    }

    /// Spawns its consumers, relay and tickers on `rt`; answers its routes, with their state.
    fn routes(rt: &Runtime) -> Result<Router, StartError>;
}

/// The OpenAPI document of `S`'s routes.
pub fn openapi<S: Service>() -> utoipa::openapi::OpenApi {
    <S::Api as utoipa::OpenApi>::openapi()
}

/// Starts `S` on `rt`: its routes, and its document served at `GET /openapi/<name>.json`.
pub fn start<S: Service>(rt: &Runtime) -> Result<Router, StartError> {
    Ok(S::routes(rt)?.merge(platform::http::openapi_router(S::NAME, openapi::<S>())))
}

/// A service as a value, for a table of the services a binary runs.
#[derive(Clone, Copy)]
pub struct ServiceDef {
    pub name: &'static str,
    pub about: &'static str,
    /// [`start`]: spawns its workers, answers its routes with their document.
    pub start: fn(&Runtime) -> Result<Router, StartError>,
    /// [`openapi`]: the document of its routes.
    pub openapi: fn() -> utoipa::openapi::OpenApi,
    /// [`Service::settings`]: reads its settings, naming every problem.
    pub settings: fn(&Config) -> Result<(), ConfigError>,
    /// [`Service::REDIS`]: the Redis keys it uses.
    pub redis: platform::redis_acl::RedisKeys,
}

impl ServiceDef {
    /// `S` as a value.
    pub const fn of<S: Service>() -> Self {
        Self {
            name: S::NAME,
            about: S::ABOUT,
            start: start::<S>,
            openapi: openapi::<S>,
            settings: S::settings,
            redis: S::REDIS,
        }
    }
}

/// The state of a service whose routes need only its database, its outbox and the JWT keys.
#[derive(Clone, FromRef)]
pub struct ServiceState {
    pub db: DatabaseConnection,
    pub outbox: Outbox,
    pub jwt: JwtKeys,
}

impl ServiceState {
    /// State over a runtime's connections, writing to `<schema>.outbox`.
    pub fn new(rt: &Runtime, schema: &str) -> Self {
        Self {
            db: rt.db.clone(),
            outbox: Outbox::new(schema, rt.config.prefix.clone()),
            jwt: rt.config.jwt.clone(),
        }
    }
}

/// [`platform::idempotency::run`] on the outbox's schema, waking its relay once the effect has
/// committed: for requests whose effect pushes events.
pub async fn idempotent<F>(
    outbox: &Outbox,
    db: &DatabaseConnection,
    who: &Identity,
    key: &MaybeKey,
    request: &[&[u8]],
    effect: F,
) -> Result<Answer, Problem>
where
    F: for<'t> FnOnce(&'t DatabaseTransaction) -> Effect<'t>,
{
    let answer = idempotency::run(db, outbox.schema(), who, key, request, effect).await?;
    outbox.committed();
    Ok(answer)
}

/// The answer to a request without `Idempotency-Key` whose effect has just committed outside
/// [`idempotent`] (there is no answer to keep for a retry): wakes the outbox's relay, and
/// answers as new.
pub fn answered(outbox: &Outbox, stored: StoredResponse) -> Answer {
    outbox.committed();
    Answer { stored, replayed: false }
}
