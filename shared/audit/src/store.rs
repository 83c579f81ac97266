//! The audit's reads of Postgres, besides the checks themselves (`checks.rs`).

use crate::{
    Error,
    checks::{self, Finding},
};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, QueryResult, Statement, Value};

/// The statement of `sql` with the checks' parameters.
pub(crate) async fn findings(
    db: &impl ConnectionTrait,
    sql: &str,
    values: Vec<Value>,
    what: &str,
) -> Result<Vec<Finding>, Error> {
    let rows = db
        .query_all_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values))
        .await
        .map_err(|e| Error::db(what, e))?;
    rows.iter().map(|r| Finding::from_query_result(r, "").map_err(|e| Error::db(what, e))).collect()
}

/// The rows of a statement without parameters.
pub(crate) async fn rows(
    db: &impl ConnectionTrait,
    sql: &str,
    what: &str,
) -> Result<Vec<QueryResult>, Error> {
    db.query_all_raw(Statement::from_string(DbBackend::Postgres, sql)).await.map_err(|e| Error::db(what, e))
}

/// The schemas with an outbox.
pub(crate) async fn outbox_schemas(db: &impl ConnectionTrait) -> Result<Vec<String>, Error> {
    let rows = rows(db, checks::OUTBOX_SCHEMAS, "find the outboxes").await?;
    #[derive(FromQueryResult)]
    struct Outbox {
        schema: String,
    }
    rows.iter()
        .map(|r| Ok(Outbox::from_query_result(r, "").map_err(|e| Error::db("find the outboxes", e))?.schema))
        .collect()
}

/// The rows waiting in each outbox of `schemas`.
pub(crate) async fn outbox_backlog(
    db: &impl ConnectionTrait,
    schemas: &[String],
) -> Result<Vec<(String, u64)>, Error> {
    #[derive(FromQueryResult)]
    struct Backlog {
        schema: String,
        n: i64,
    }
    let Some(sql) = checks::outbox_backlog(schemas) else { return Ok(Vec::new()) };
    let rows = db
        .query_all_raw(Statement::from_string(DbBackend::Postgres, sql))
        .await
        .map_err(|e| Error::db("count the outboxes' rows", e))?;
    rows.iter()
        .map(|r| {
            let b = Backlog::from_query_result(r, "").map_err(|e| Error::db("read an outbox count", e))?;
            Ok((b.schema, b.n.unsigned_abs()))
        })
        .collect()
}

/// How many reservations are in each status.
pub(crate) async fn reservations_by_status(db: &impl ConnectionTrait) -> Result<Vec<(String, u64)>, Error> {
    let what = "count the reservations by status";
    let rows = rows(db, checks::RESERVATIONS_BY_STATUS, what).await?;
    #[derive(FromQueryResult)]
    struct Counted {
        status: String,
        n: i64,
    }
    rows.iter()
        .map(|r| {
            let Counted { status, n } = Counted::from_query_result(r, "").map_err(|e| Error::db(what, e))?;
            Ok((status, n.unsigned_abs()))
        })
        .collect()
}
