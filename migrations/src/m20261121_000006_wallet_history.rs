//! Schema `wallet_history`: the read side's append-only wallet history.

use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        crate::create_service_schema(db, "wallet_history").await?;
        db.execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP SCHEMA IF EXISTS wallet_history CASCADE").await?;
        Ok(())
    }
}

const SQL: &str = r#"
CREATE TABLE IF NOT EXISTS wallet_history.entries (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL,
    kind           text NOT NULL CHECK (kind IN ('CHARGE', 'PAYMENT', 'REFUND')),
    amount         bigint NOT NULL CHECK (amount >= 0),
    balance_after  bigint NOT NULL,
    reservation_id uuid,
    at             timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_user ON wallet_history.entries (user_id, id DESC);
"#;
