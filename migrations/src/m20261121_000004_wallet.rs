//! Schema `wallet`: Prepaid wallets, their charges, and one payment per reservation.

use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        crate::create_service_schema(db, "wallet").await?;
        db.execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP SCHEMA IF EXISTS wallet CASCADE").await?;
        Ok(())
    }
}

const SQL: &str = r#"
CREATE TABLE IF NOT EXISTS wallet.wallets (
    user_id    uuid PRIMARY KEY,
    balance    bigint NOT NULL CHECK (balance >= 0 AND balance <= 1000000000000),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wallet.charges (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL,
    amount        bigint NOT NULL CHECK (amount > 0),
    balance_after bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS wallet.payments (
    id             uuid PRIMARY KEY,
    reservation_id uuid NOT NULL UNIQUE,
    user_id        uuid NOT NULL,
    amount         bigint NOT NULL CHECK (amount >= 0),
    status         text NOT NULL CHECK (status IN ('COMPLETED', 'REFUNDED', 'VOIDED')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    refunded_at    timestamptz
);
"#;
