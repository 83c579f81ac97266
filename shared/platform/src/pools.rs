//! Connection pools for Postgres (sea-orm) and Redis (deadpool).

use crate::Config;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use std::time::Duration;

/// Opens the Postgres pool.
pub async fn connect_db(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Database::connect(opts).await
}

/// Opens the Postgres pool the configuration names.
pub async fn connect_db_from(config: &Config) -> Result<DatabaseConnection, DbErr> {
    connect_db(config.database_url.expose(), config.database_max_connections).await
}

/// Why the Redis pool could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    #[error("Redis is unreachable: {0}")]
    Unreachable(String),
}

/// Creates the Redis pool and checks that Redis answers.
pub async fn connect_redis(url: &str) -> Result<deadpool_redis::Pool, RedisSetupError> {
    let pool = deadpool_redis::Config::from_url(url)
        .builder()
        .map_err(|e| RedisSetupError::Config(e.to_string()))?
        .max_size(64)
        .runtime(deadpool_redis::Runtime::Tokio1)
        .build()
        .map_err(|e| RedisSetupError::Config(e.to_string()))?;
    let mut conn = pool.get().await.map_err(|e| RedisSetupError::Unreachable(e.to_string()))?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| RedisSetupError::Unreachable(e.to_string()))?;
    Ok(pool)
}
