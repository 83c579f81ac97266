//! Database migrations (sea-orm-migration): one module per service schema. Every service schema
//! gets its own `outbox`, `inbox` and `idempotency` from [`service_schema_sql`], so the DDL of the event
//! backbone lives in one place.

use sea_orm_migration::{
    MigrationName, MigrationTrait, MigratorTrait, SchemaManager,
    sea_orm::{ConnectionTrait, Database, DbBackend, DbErr, Statement},
};

/// A service schema's first migration: its outbox, inbox and idempotency tables, then its own
/// DDL (from `sql/<schema>.sql`). The name is what `seaql_migrations` records, so it never changes.
#[derive(Clone, Copy)]
struct ServiceSchema {
    name: &'static str,
    schema: &'static str,
    sql: &'static str,
}

impl ServiceSchema {
    const fn new(name: &'static str, schema: &'static str, sql: &'static str) -> Self {
        Self { name, schema, sql }
    }
}

impl MigrationName for ServiceSchema {
    fn name(&self) -> &str {
        self.name
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for ServiceSchema {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        create_service_schema(db, self.schema).await?;
        db.execute_unprepared(self.sql).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .get_connection()
            .execute_unprepared(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await?;
        Ok(())
    }
}

/// Drops the outbox NOTIFY trigger that earlier versions of the first migrations created (see
/// [`service_schema_sql`]).
struct DropOutboxNotify;

/// Each service schema's first migration, in order.
const SERVICE_SCHEMAS: [ServiceSchema; 6] = [
    ServiceSchema::new("m20261121_000001_concert", "concert", include_str!("sql/concert.sql")),
    ServiceSchema::new("m20261121_000002_seat", "seat", include_str!("sql/seat.sql")),
    ServiceSchema::new("m20261121_000003_reservation", "reservation", include_str!("sql/reservation.sql")),
    ServiceSchema::new("m20261121_000004_wallet", "wallet", include_str!("sql/wallet.sql")),
    ServiceSchema::new(
        "m20261121_000005_external_data",
        "external_data",
        include_str!("sql/external_data.sql"),
    ),
    ServiceSchema::new(
        "m20261121_000006_wallet_history",
        "wallet_history",
        include_str!("sql/wallet_history.sql"),
    ),
];

impl MigrationName for DropOutboxNotify {
    fn name(&self) -> &str {
        "m20261121_000007_drop_outbox_notify"
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for DropOutboxNotify {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for ServiceSchema { schema, .. } in SERVICE_SCHEMAS {
            manager
                .get_connection()
                .execute_unprepared(&format!(
                    "DROP TRIGGER IF EXISTS outbox_notify ON {schema}.outbox;
                     DROP FUNCTION IF EXISTS {schema}.outbox_notify();"
                ))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

/// A later change to one schema: DDL that is safe to run again.
struct Change {
    name: &'static str,
    sql: &'static str,
}

impl MigrationName for Change {
    fn name(&self) -> &str {
        self.name
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Change {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared(self.sql).await?;
        Ok(())
    }

    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

/// Moves each reservation's timeline from `reservation.timeline` into its row (and drops that
/// table); safe to run again.
pub const RESERVATION_TIMELINE_IN_ROW: &str = include_str!("sql/reservation_timeline_in_row.sql");

/// At most one live reservation per user and schedule (a unique index); a database that breaks
/// it already keeps its older reservations out of the index. Safe to run again.
pub const RESERVATION_ONE_LIVE: &str = include_str!("sql/reservation_one_live.sql");

/// [`service_schema_sql`] again, for the schemas `schemas` names: how a later addition to the
/// DDL every service schema has (a table, an index) reaches the schemas created before it.
struct ServiceSchemaDdl {
    name: &'static str,
    schemas: fn() -> Vec<&'static str>,
}

impl MigrationName for ServiceSchemaDdl {
    fn name(&self) -> &str {
        self.name
    }
}

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for ServiceSchemaDdl {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for schema in (self.schemas)() {
            manager.get_connection().execute_unprepared(&service_schema_sql(schema)).await?;
        }
        Ok(())
    }

    async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

/// Runs every service's migrations in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        let mut all: Vec<Box<dyn MigrationTrait>> =
            SERVICE_SCHEMAS.iter().map(|m| Box::new(*m) as Box<dyn MigrationTrait>).collect();
        all.push(Box::new(DropOutboxNotify));
        all.push(Box::new(Change {
            name: "m20261121_000008_reservation_live_seats",
            sql: include_str!("sql/reservation_live_seats.sql"),
        }));
        all.push(Box::new(Change {
            name: "m20261121_000009_reservation_due",
            sql: include_str!("sql/reservation_due.sql"),
        }));
        all.push(Box::new(Change {
            name: "m20261122_000010_reservation_timeline_in_row",
            sql: RESERVATION_TIMELINE_IN_ROW,
        }));
        all.push(Box::new(Change {
            name: "m20261205_000011_reservation_one_live",
            sql: RESERVATION_ONE_LIVE,
        }));
        // `<schema>.outbox_dead` in every service schema of the time: the outbox rows JetStream
        // will never take, set aside by the relay (`messaging::Relay`) so that they do not block
        // the rows after them.
        all.push(Box::new(ServiceSchemaDdl {
            name: "m20261206_000012_outbox_dead",
            schemas: || SERVICE_SCHEMAS.iter().map(|s| s.schema).collect(),
        }));
        all.push(Box::new(ServiceSchema::new(
            "m20261207_000013_users",
            "users",
            include_str!("sql/users.sql"),
        )));
        all.push(Box::new(Change {
            name: "m20261207_000014_reservation_user_status",
            sql: include_str!("sql/reservation_user_status.sql"),
        }));
        all.push(Box::new(Change {
            name: "m20261207_000015_wallet_history_refusals",
            sql: include_str!("sql/wallet_history_refusals.sql"),
        }));
        all.push(Box::new(Change {
            name: "m20261208_000016_sales_open_at",
            sql: include_str!("sql/sales_open_at.sql"),
        }));
        all.push(Box::new(Change {
            name: "m20261208_000017_schedule_cancelled",
            sql: include_str!("sql/schedule_cancelled.sql"),
        }));
        all.push(Box::new(ServiceSchema::new(
            "m20261209_000018_payment",
            "payment",
            include_str!("sql/payment.sql"),
        )));
        all.push(Box::new(Change {
            name: "m20261209_000019_reservation_payment_method",
            sql: include_str!("sql/reservation_payment_method.sql"),
        }));
        // The age indexes the pruner reads, in every service schema, the later ones included.
        all.push(Box::new(ServiceSchemaDdl {
            name: "m20261210_000020_prune_by_age",
            schemas: || SERVICE_SCHEMA_OWNERS.iter().filter_map(|(_, schema)| *schema).collect(),
        }));
        all
    }
}

/// DDL every service schema has: `outbox`, `inbox` and `idempotency`; idempotent.
///
/// The inbox and idempotency rows are found by age for pruning (`messaging::prune`) through a
/// BRIN index: rows arrive in time order, so a few ranges of blocks cover the table (kilobytes for
/// millions of rows) and a row written costs next to nothing more, where a B-tree would cost a
/// second index write per event. Without one, each hourly prune read every row of the table.
///
/// The outbox has no NOTIFY trigger: Postgres serializes the commits of all notifying
/// transactions of a database, so writers wake their relay in-process instead
/// (`messaging::Outbox::committed`).
pub fn service_schema_sql(schema: &str) -> String {
    format!(
        r#"
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.outbox (
    seq        bigserial PRIMARY KEY,
    id         uuid NOT NULL UNIQUE,
    subject    text NOT NULL,
    headers    jsonb NOT NULL DEFAULT '[]',
    body       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.outbox_dead (
    id         uuid PRIMARY KEY,
    subject    text NOT NULL,
    headers    jsonb NOT NULL DEFAULT '[]',
    body       bytea NOT NULL,
    reason     text NOT NULL,
    set_aside_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {schema}.inbox (
    consumer   text NOT NULL,
    event_id   uuid NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE IF NOT EXISTS {schema}.idempotency (
    user_id      uuid NOT NULL,
    key          text NOT NULL,
    request_hash bytea NOT NULL,
    status       smallint NOT NULL,
    body         jsonb NOT NULL,
    location     text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX IF NOT EXISTS inbox_by_age ON {schema}.inbox USING brin (handled_at);
CREATE INDEX IF NOT EXISTS idempotency_by_age ON {schema}.idempotency USING brin (created_at);
"#
    )
}

/// Creates the schema with its outbox, inbox and idempotency tables (each service's first migration).
pub async fn create_service_schema(db: &impl ConnectionTrait, schema: &str) -> Result<(), DbErr> {
    if !schema.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') || schema.is_empty()
    {
        return Err(DbErr::Custom(format!("invalid schema name {schema:?}")));
    }
    db.execute_unprepared(&service_schema_sql(schema)).await?;
    Ok(())
}

/// Splits `postgres://host/db?x` into (`postgres://host/postgres?x`, `db`).
pub fn maintenance_url(url: &str) -> Result<(String, String), DbErr> {
    let (head, query) = url.split_once('?').map_or((url, None), |(h, q)| (h, Some(q)));
    let (server, name) = head
        .rsplit_once('/')
        .filter(|(server, name)| server.contains("://") && !server.ends_with('/') && !name.is_empty())
        .ok_or_else(|| DbErr::Custom(format!("database URL names no database: {url}")))?;
    let mut admin = format!("{server}/postgres");
    if let Some(q) = query {
        admin.push('?');
        admin.push_str(q);
    }
    Ok((admin, name.to_owned()))
}

/// Creates the database `url` names if it does not exist yet.
pub async fn create_database_if_missing(url: &str) -> Result<(), DbErr> {
    let (admin_url, name) = maintenance_url(url)?;
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DbErr::Custom(format!("refusing to create database with name {name:?}")));
    }
    let admin = Database::connect(admin_url).await?;
    let exists = admin
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.clone().into()],
        ))
        .await?
        .is_some();
    if !exists {
        // A concurrent creator wins the race; that is as good as creating it ourselves.
        if let Err(e) = admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await
            && !e.to_string().contains("already exists")
        {
            return Err(e);
        }
    }
    admin.close().await
}

/// Creates the database if needed, applies every pending migration, and hands each service its
/// schema ([`own_schemas`]).
pub async fn migrate(url: &str) -> Result<(), DbErr> {
    create_database_if_missing(url).await?;
    let db = Database::connect(url).await?;
    Migrator::up(&db, None).await?;
    own_schemas(&db).await?;
    db.close().await
}

/// Every service that connects to Postgres, with the schema it owns: none for those whose state
/// is in Redis (queue, ranking), which may connect and read nothing.
pub const SERVICE_SCHEMA_OWNERS: [(&str, Option<&str>); 11] = [
    ("queue", None),
    ("concert", Some("concert")),
    ("seat", Some("seat")),
    ("reservation", Some("reservation")),
    ("wallet", Some("wallet")),
    ("wallet-history", Some("wallet_history")),
    ("ranking", None),
    ("external-data", Some("external_data")),
    ("user", Some("users")),
    ("payment", Some("payment")),
    ("dead-letters", None),
];

/// The Postgres role the service `service` connects as: `ticketing_<service>`.
pub fn service_role(service: &str) -> String {
    format!("ticketing_{}", service.replace('-', "_"))
}

/// Sets the password the role of `service` logs in with (for servers that ask for one).
pub async fn set_role_password(
    db: &impl ConnectionTrait,
    service: &str,
    password: &str,
) -> Result<(), DbErr> {
    let quoted = password.replace('\'', "''");
    db.execute_unprepared(&format!("ALTER ROLE {} PASSWORD '{quoted}'", service_role(service))).await?;
    Ok(())
}

/// Least privilege in the database: each service's role ([`service_role`]: LOGIN, and no right
/// beyond what it is given here) owns its schema and everything in it, so it reads, writes and
/// vacuums there and touches no other service's tables. Roles belong to the Postgres server
/// and are made once (a password is the operator's: `ALTER ROLE … PASSWORD`); ownership is
/// given again after every migration, so tables a migration adds follow. Idempotent.
pub async fn own_schemas(db: &impl ConnectionTrait) -> Result<(), DbErr> {
    for (service, schema) in SERVICE_SCHEMA_OWNERS {
        let role = service_role(service);
        // Two databases of one server migrated at once may both make the role: the loser's
        // duplicate is no error.
        db.execute_unprepared(&format!(
            "DO $$ BEGIN
                 CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$;"
        ))
        .await?;
        let Some(schema) = schema else { continue };
        db.execute_unprepared(&format!(
            "ALTER SCHEMA {schema} OWNER TO {role};
             DO $$ DECLARE t record; BEGIN
                 FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                          WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p', 'v', 'm')
                            AND pg_get_userbyid(c.relowner) <> '{role}'
                 LOOP
                     EXECUTE format('ALTER TABLE {schema}.%I OWNER TO {role}', t.relname);
                 END LOOP;
             END $$;"
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maintenance_url_swaps_the_database() {
        assert_eq!(
            maintenance_url("postgres://u@h:5432/ticketing?sslmode=disable").unwrap(),
            ("postgres://u@h:5432/postgres?sslmode=disable".into(), "ticketing".into())
        );
        assert!(maintenance_url("postgres://h:5432").is_err());
    }
}
