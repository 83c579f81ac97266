//! Schema `seat`: Seat inventory: one row per seat, AVAILABLE -> HELD -> SOLD.

use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        crate::create_service_schema(db, "seat").await?;
        db.execute_unprepared(SQL).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.get_connection().execute_unprepared("DROP SCHEMA IF EXISTS seat CASCADE").await?;
        Ok(())
    }
}

const SQL: &str = r#"
CREATE TABLE IF NOT EXISTS seat.schedules (
    schedule_id   uuid PRIMARY KEY,
    concert_id    uuid NOT NULL,
    seat_count    integer NOT NULL,
    first_sold_at timestamptz,
    sold_out_at   timestamptz
);
CREATE TABLE IF NOT EXISTS seat.seats (
    schedule_id    uuid NOT NULL REFERENCES seat.schedules (schedule_id),
    seat_no        integer NOT NULL,
    price          bigint NOT NULL CHECK (price > 0),
    status         text NOT NULL DEFAULT 'AVAILABLE' CHECK (status IN ('AVAILABLE', 'HELD', 'SOLD')),
    reservation_id uuid,
    held_until     timestamptz,
    sold_at        timestamptz,
    PRIMARY KEY (schedule_id, seat_no),
    CHECK ((status = 'AVAILABLE') = (reservation_id IS NULL))
);
"#;
