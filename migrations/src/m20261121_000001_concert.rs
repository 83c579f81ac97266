//! Schema `concert`: Concerts and their schedules (the catalog).

use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        crate::create_service_schema(db, "concert").await?;
        db.execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP SCHEMA IF EXISTS concert CASCADE").await?;
        Ok(())
    }
}

const SQL: &str = r#"
CREATE TABLE IF NOT EXISTS concert.concerts (
    id         uuid PRIMARY KEY,
    name       text NOT NULL,
    host       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS concert.schedules (
    id         uuid PRIMARY KEY,
    concert_id uuid NOT NULL REFERENCES concert.concerts (id),
    starts_at  timestamptz NOT NULL,
    seat_count integer NOT NULL CHECK (seat_count BETWEEN 1 AND 50),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS schedules_by_concert ON concert.schedules (concert_id, id);
"#;
