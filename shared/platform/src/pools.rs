//! Connections: the Postgres pool (sea-orm) and the shared Redis connection.

use crate::Config;
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbErr};
use std::time::Duration;

/// How many milliseconds a connection of the pool is waited for, unless the configuration says
/// otherwise (`TICKETING_DATABASE_ACQUIRE_TIMEOUT_MS`).
pub const ACQUIRE_TIMEOUT_MS: u64 = 3_000;

/// [`ACQUIRE_TIMEOUT_MS`] as a duration.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_millis(ACQUIRE_TIMEOUT_MS);

/// Opens the Postgres pool.
pub async fn connect_db(url: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    open(url, max_connections, ACQUIRE_TIMEOUT).await
}

/// Opens the Postgres pool, whose connections are waited for at most `acquire_timeout`: past it
/// the caller gets [`sea_orm::DbErr::ConnectionAcquire`], having sent nothing ([`no_connection`]).
/// While Postgres is down, a wait is spent trying to connect.
pub async fn open(
    url: &str,
    max_connections: u32,
    acquire_timeout: Duration,
) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(acquire_timeout)
        // Ping only connections that sat idle (sqlx's default pings on every checkout: one
        // more round trip for each query and transaction).
        .test_before_acquire_if_idle_for(Duration::from_secs(30))
        // Connections are kept for good, not replaced after 30 minutes (sqlx's default). The
        // connections a busy pool opens in its first second all reach that age in the same
        // second, and each one that replaces them plans every statement again: in an hour of
        // load (docs/benchmarks.md) the pools swapped 40 connections within two seconds at
        // minute 30, and reserve -> HELD p99 rose from about 100 ms to 1.4 s for that minute.
        // A connection that breaks (Postgres restarted, failed over) is still replaced.
        .max_lifetime(None)
        .sqlx_logging(false)
        // Every connection handed out is reported with how long its caller waited for it
        // (`telemetry::PoolWaits` makes it a histogram; no log line shows it).
        .map_sqlx_postgres_pool_opts(|o| o.acquire_time_level(log::LevelFilter::Trace))
        // Plan each prepared statement once per connection. Every statement here is a short
        // keyed read or write whose best plan does not depend on its parameters, but the
        // planner's default (five custom plans, then a generic one only if it looks no costlier)
        // kept planning the seat hold afresh on every execution: planning cost more than running.
        // A condition a generic plan cannot use as an index bound, `($n IS NULL OR id < $n)`,
        // is written without the NULL (`paging::before`).
        //
        // And never plan a scan of a whole table where an index serves. A generic plan is made
        // once and kept until something invalidates it, with the table's size at that moment:
        // planned while `reservation.reservations` held a few hundred rows, the saga's save
        // found its rows by a sequential scan, kept doing so at thousands, and spent most of
        // its time there. Every statement here reaches its rows by a key; one that has no index
        // to use still gets its sequential scan (the setting only makes it the last resort).
        .map_sqlx_postgres_opts(|o| {
            o.options([("plan_cache_mode", "force_generic_plan"), ("enable_seqscan", "off")])
        });
    Database::connect(opts).await
}

/// Opens the Postgres pool the configuration names.
pub async fn connect_db_from(config: &Config) -> Result<DatabaseConnection, DbErr> {
    open(config.database_url.expose(), config.database_max_connections, config.database_acquire_timeout).await
}

/// Why the Redis connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("invalid Redis configuration: {0}")]
    Config(String),
    #[error("Redis is unreachable: {0}")]
    Unreachable(String),
}

/// The Redis connection of a process: one multiplexed connection that every request shares
/// (clone it per use; clones are cheap and pipeline their commands onto the one socket), and
/// that reconnects by itself after Redis restarts. A pool would cost each checkout a round trip
/// (deadpool-redis pings every connection it hands out) for commands that are all short.
pub type Redis = redis::aio::ConnectionManager;

/// Connects to Redis and checks that it answers.
pub async fn connect_redis(url: &str) -> Result<Redis, RedisSetupError> {
    let client = redis::Client::open(url).map_err(|e| RedisSetupError::Config(e.to_string()))?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(5)))
        // Under a flash sale a 2-core machine can take longer than the 500 ms default to answer.
        .set_response_timeout(Some(Duration::from_secs(10)));
    let mut conn = redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|e| RedisSetupError::Unreachable(e.to_string()))?;
    let _: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| RedisSetupError::Unreachable(e.to_string()))?;
    Ok(conn)
}

/// The error Postgres itself answered, behind `e`, if it was one (not a lost connection or a
/// decoding failure): its SQLSTATE, the constraint it names.
pub fn database_error(e: &DbErr) -> Option<&dyn sea_orm::sqlx::error::DatabaseError> {
    use sea_orm::{RuntimeErr, sqlx};
    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = e
    else {
        return None;
    };
    match &**e {
        sqlx::Error::Database(db) => Some(db.as_ref()),
        _ => None,
    }
}

/// The first database error in `e`'s chain of sources (`e` itself included).
fn db_err_behind<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e DbErr> {
    std::iter::successors(Some(e), |e| e.source()).find_map(|e| e.downcast_ref::<DbErr>())
}

/// Whether `e`, or an error behind it, is a connection of the pool not had in time: nothing
/// was sent to the database, so nothing was done, and the same request may succeed later.
pub fn no_connection(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(db_err_behind(e), Some(DbErr::ConnectionAcquire(_)))
}

/// Whether `e`, or an error behind it, says for sure that the database did nothing: no
/// connection was had ([`no_connection`]), or Postgres refused the statement (which then
/// changed nothing). A connection that broke mid-statement leaves it unknown.
pub fn nothing_done(e: &(dyn std::error::Error + 'static)) -> bool {
    db_err_behind(e)
        .is_some_and(|db| matches!(db, DbErr::ConnectionAcquire(_)) || database_error(db).is_some())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, TransactionTrait};
    use std::time::Duration;

    fn url() -> String {
        std::env::var("TICKETING_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable".to_owned())
    }

    /// A pool keeps its connections however long they live: a lifetime would expire the
    /// connections of a busy pool together.
    #[tokio::test]
    async fn connections_do_not_expire() {
        let db = super::connect_db(&url(), 2).await.expect("postgres");
        let pool = db.get_postgres_connection_pool();
        assert_eq!(pool.options().get_max_lifetime(), None);
        assert!(pool.options().get_idle_timeout().is_some(), "idle connections still go");
    }

    /// A request that gets no connection in time is told so at once, 503 with `Retry-After`:
    /// nothing was sent. An error Postgres answered is not that.
    #[tokio::test]
    async fn a_connection_not_had_in_time_is_answered_503_with_retry_after() {
        let db = super::open(&url(), 1, Duration::from_millis(200)).await.expect("postgres");
        let held = db.begin().await.expect("the pool's one connection");
        let waited = db.execute_unprepared("SELECT 1").await.expect_err("no connection is free");
        assert!(super::no_connection(&waited), "{waited:?}");
        let problem = crate::Problem::from(waited);
        assert_eq!(
            (problem.status, problem.code.as_str(), problem.retry_after),
            (503, "DATABASE_UNAVAILABLE", Some(1))
        );
        held.rollback().await.expect("rollback");
        let refused = db.execute_unprepared("SELECT no_such_column").await.expect_err("refused");
        assert!(!super::no_connection(&refused));
        assert_eq!(crate::Problem::from(refused).status, 500);
    }
}
