//! The move of timelines into their reservations' rows (`migrations::RESERVATION_TIMELINE_IN_ROW`).

use super::*;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

#[tokio::test]
async fn timelines_kept_in_a_table_of_their_own_move_into_their_rows_in_order() {
    let env = TestEnv::new().await.unwrap();
    let (moved, bare) = (ReservationId::new(), ReservationId::new());
    // A database as the earlier migrations left it: a timeline table with a reservation's entries.
    env.db
        .execute_unprepared(&format!(
            "CREATE TABLE reservation.timeline (seq bigserial PRIMARY KEY, reservation_id uuid NOT NULL,
                 type text NOT NULL, at timestamptz NOT NULL DEFAULT now(), detail jsonb);
             INSERT INTO reservation.reservations (id, user_id, schedule_id, concert_id, seat_nos, status)
             VALUES ('{moved}', gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), '{{1}}', 'HELD'),
                    ('{bare}', gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), '{{2}}', 'PENDING');
             INSERT INTO reservation.timeline (reservation_id, type, at)
             VALUES ('{moved}', 'ReservationRequested', '2026-11-01T10:00:00Z'),
                    ('{moved}', 'SeatReserved', '2026-11-01T10:00:01Z');"
        ))
        .await
        .unwrap();
    for _ in 0..2 {
        // Safe to run again.
        env.db.execute_unprepared(migrations::RESERVATION_TIMELINE_IN_ROW).await.unwrap();
    }
    let timeline = |id: ReservationId| {
        let db = env.db.clone();
        async move {
            db.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT timeline FROM reservation.reservations WHERE id = $1",
                [id.0.into()],
            ))
            .await
            .unwrap()
            .unwrap()
            .try_get::<Value>("", "timeline")
            .unwrap()
        }
    };
    let entries: Vec<(String, DateTime<Utc>)> = timeline(moved)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["type"].as_str().unwrap().to_owned(), e["at"].as_str().unwrap().parse().unwrap()))
        .collect();
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    assert_eq!(
        entries,
        [
            ("ReservationRequested".to_owned(), at("2026-11-01T10:00:00Z")),
            ("SeatReserved".to_owned(), at("2026-11-01T10:00:01Z")),
        ]
    );
    assert_eq!(timeline(bare).await, json!([]));
    let gone = env
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT to_regclass('reservation.timeline') IS NULL AS gone",
        ))
        .await
        .unwrap()
        .unwrap();
    assert!(gone.try_get::<bool>("", "gone").unwrap(), "the old table is dropped");
}

#[tokio::test]
async fn a_database_with_a_users_second_live_reservation_keeps_it_and_limits_the_new_ones() {
    let env = TestEnv::new().await.unwrap();
    let (user, schedule) = (UserId::new(), ScheduleId::new());
    let insert = |status: &'static str| {
        let db = env.db.clone();
        async move {
            db.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "INSERT INTO reservation.reservations (id, user_id, schedule_id, concert_id, seat_nos, status)
                 VALUES (gen_random_uuid(), $1, $2, gen_random_uuid(), '{1}', $3)",
                [user.0.into(), schedule.0.into(), status.into()],
            ))
            .await
        }
    };
    // As a database written before the limit: two live reservations of one user and schedule.
    env.db.execute_unprepared("DROP INDEX reservation.reservations_one_live").await.unwrap();
    insert("HELD").await.unwrap();
    insert("PENDING").await.unwrap();
    for _ in 0..2 {
        // Safe to run again.
        env.db.execute_unprepared(migrations::RESERVATION_ONE_LIVE).await.unwrap();
    }
    // Those stay, outside the index; of the new ones, one may be live.
    insert("PENDING").await.unwrap();
    let refused = insert("PENDING").await.unwrap_err().to_string();
    assert!(refused.contains("reservations_one_live"), "{refused}");
    insert("CONFIRMED").await.unwrap();

    // A database without such reservations gets the plain index.
    env.db
        .execute_unprepared(
            "DELETE FROM reservation.reservations; DROP INDEX reservation.reservations_one_live;",
        )
        .await
        .unwrap();
    env.db.execute_unprepared(migrations::RESERVATION_ONE_LIVE).await.unwrap();
    let index = env
        .db
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'reservations_one_live'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<String>("", "indexdef")
        .unwrap();
    assert!(index.contains("UNIQUE") && !index.contains("created_at"), "{index}");
    insert("HELD").await.unwrap();
    assert!(insert("PAYING").await.is_err());
}
