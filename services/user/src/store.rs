//! The accounts' queries, one statement each.

use crate::domain::{AccountStatus, Email, parse_role, role_str};
use chrono::{DateTime, Utc};
use contracts::UserId;
use platform::auth::Role;
use sea_orm::{ConnectionTrait, DbBackend, DbErr, FromQueryResult, Statement, Value};

fn stmt(sql: &str, values: impl IntoIterator<Item = Value>) -> Statement {
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// An account as stored.
#[derive(Clone, Debug, FromQueryResult)]
struct Row {
    id: uuid::Uuid,
    email: String,
    password_hash: String,
    role: String,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

/// An account, with its password hash (never answered to anyone).
#[derive(Clone, Debug)]
pub struct Account {
    pub id: UserId,
    pub email: String,
    pub password_hash: String,
    pub role: Role,
    pub status: AccountStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<Row> for Account {
    type Error = DbErr;

    fn try_from(r: Row) -> Result<Self, DbErr> {
        let bad = |what: &str, v: &str| DbErr::Type(format!("users.accounts.{what} holds {v:?}"));
        Ok(Account {
            id: UserId(r.id),
            role: parse_role(&r.role).ok_or_else(|| bad("role", &r.role))?,
            status: AccountStatus::parse(&r.status).ok_or_else(|| bad("status", &r.status))?,
            email: r.email,
            password_hash: r.password_hash,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

const COLUMNS: &str = "id, email, password_hash, role, status, created_at, updated_at";

async fn one(db: &impl ConnectionTrait, statement: Statement) -> Result<Option<Account>, DbErr> {
    match db.query_one_raw(statement).await? {
        Some(row) => Ok(Some(Row::from_query_result(&row, "")?.try_into()?)),
        None => Ok(None),
    }
}

/// Opens an account (ACTIVE, role user); `None` if the email has one already.
pub async fn insert(
    db: &impl ConnectionTrait,
    id: UserId,
    email: &Email,
    password_hash: &str,
) -> Result<Option<Account>, DbErr> {
    let sql = format!(
        "INSERT INTO users.accounts (id, email, password_hash) VALUES ($1, $2, $3)
         ON CONFLICT (email) DO NOTHING RETURNING {COLUMNS}"
    );
    one(db, stmt(&sql, [id.0.into(), email.as_str().into(), password_hash.into()])).await
}

/// The account of an email.
pub async fn by_email(db: &impl ConnectionTrait, email: &Email) -> Result<Option<Account>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM users.accounts WHERE email = $1");
    one(db, stmt(&sql, [email.as_str().into()])).await
}

/// The account of an id.
pub async fn by_id(db: &impl ConnectionTrait, id: UserId) -> Result<Option<Account>, DbErr> {
    let sql = format!("SELECT {COLUMNS} FROM users.accounts WHERE id = $1");
    one(db, stmt(&sql, [id.0.into()])).await
}

/// Sets an account's status; `None` if there is no such account. Answers whether it changed:
/// setting the status it has changes nothing (not even `updated_at`).
pub async fn set_status(
    db: &impl ConnectionTrait,
    id: UserId,
    status: AccountStatus,
) -> Result<Option<(Account, bool)>, DbErr> {
    set(db, id, "status", status.as_str()).await
}

/// Sets an account's role, as [`set_status`] its status.
pub async fn set_role(
    db: &impl ConnectionTrait,
    id: UserId,
    role: Role,
) -> Result<Option<(Account, bool)>, DbErr> {
    set(db, id, "role", role_str(role)).await
}

/// Sets one column of an account (a name of this file, never of a caller) to `value`.
async fn set(
    db: &impl ConnectionTrait,
    id: UserId,
    column: &'static str,
    value: &'static str,
) -> Result<Option<(Account, bool)>, DbErr> {
    let sql = format!(
        "WITH changed AS (
             UPDATE users.accounts SET {column} = $2, updated_at = now()
             WHERE id = $1 AND {column} <> $2 RETURNING {COLUMNS})
         SELECT {COLUMNS}, true AS changed FROM changed
         UNION ALL SELECT {COLUMNS}, false FROM users.accounts
         WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM changed)"
    );
    let Some(row) = db.query_one_raw(stmt(&sql, [id.0.into(), value.into()])).await? else {
        return Ok(None);
    };
    #[derive(FromQueryResult)]
    struct Changed {
        changed: bool,
    }
    let Changed { changed } = Changed::from_query_result(&row, "")?;
    Ok(Some((Row::from_query_result(&row, "")?.try_into()?, changed)))
}
