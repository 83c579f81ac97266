//! The shell every service is made of, on top of the messaging backbone: its routes served with
//! their OpenAPI document, the state of routes that need only the database, the outbox and the
//! JWT keys, and the requests whose effect pushes events. The backbone (`messaging`) knows
//! nothing of HTTP; what joins the two lives here.

use axum::{Router, extract::FromRef};
use messaging::{MessagingError, Outbox, Runtime};
use platform::{
    Problem,
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
}

/// A service's routes, with its OpenAPI document served at `GET /openapi/<name>.json`.
pub fn routes(name: &str, routes: Router, doc: utoipa::openapi::OpenApi) -> Router {
    routes.merge(platform::http::openapi_router(name, doc))
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
            jwt: JwtKeys::new(&rt.config.jwt_secret),
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
