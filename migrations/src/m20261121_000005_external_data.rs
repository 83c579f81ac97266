//! Schema `external_data`: the delivery log of completed reservations sent to the external platform.

use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        crate::create_service_schema(db, "external_data").await?;
        db.execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP SCHEMA IF EXISTS external_data CASCADE").await?;
        Ok(())
    }
}

// `next_attempt_at` doubles as the delivery worker's lease: claiming a row pushes it forward, so
// a worker that dies mid-delivery leaves a row that becomes due again by itself.
const SQL: &str = r#"
CREATE TABLE IF NOT EXISTS external_data.deliveries (
    id              uuid PRIMARY KEY,
    event_id        uuid NOT NULL UNIQUE,
    reservation_id  uuid NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED')),
    attempts        int NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    last_status     int,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS deliveries_due ON external_data.deliveries (next_attempt_at)
    WHERE status = 'PENDING';
CREATE INDEX IF NOT EXISTS deliveries_status ON external_data.deliveries (status, id);
"#;
