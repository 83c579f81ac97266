//! The audit against real Postgres and NATS: states written straight into a fresh test
//! database (what a bug, or an operator, could leave behind), and a live system driven through
//! the services' own code.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod live;
mod settle;
mod violations;

use audit::{Options, Report};
use platform::config::SagaClocks;
use sea_orm::{ConnectionTrait, DbBackend, Statement, Value};
use std::time::Duration;
use testkit::TestEnv;
use uuid::Uuid;

/// Seconds ago that is long past any grace and deadline here.
pub const AGED: f64 = 600.0;
/// A seat's price.
pub const PRICE: i64 = 5000;

/// The clocks the tests' services would run with: the defaults.
pub fn clocks() -> SagaClocks {
    SagaClocks {
        hold: Duration::from_secs(300),
        pay_grace: Duration::from_secs(30),
        request_timeout: Duration::from_secs(30),
    }
}

/// Audits `env` with `grace_secs` of grace and no settle.
pub async fn audit(env: &TestEnv, grace_secs: u64) -> Report {
    let opts = Options { grace: Duration::from_secs(grace_secs), ..Options::new(clocks()) };
    audit::audit(&env.db, &env.bus, &opts).await.unwrap()
}

/// The names of the checks that found violations.
pub fn failing(report: &Report) -> Vec<&'static str> {
    report.violated().map(|c| c.invariant.name()).collect()
}

/// The example ids `invariant`'s row shows.
pub fn examples(report: &Report, invariant: audit::Invariant) -> Vec<String> {
    report.check(invariant).unwrap().examples.iter().map(|e| e.id.clone()).collect()
}

pub async fn exec(env: &TestEnv, sql: &str, values: Vec<Value>) {
    env.db.execute_raw(Statement::from_sql_and_values(DbBackend::Postgres, sql, values)).await.unwrap();
}

/// A schedule of `seats` AVAILABLE seats at [`PRICE`].
pub async fn schedule(env: &TestEnv, seats: i32) -> Uuid {
    let schedule = Uuid::now_v7();
    exec(
        env,
        "INSERT INTO seat.schedules (schedule_id, concert_id, seat_count) VALUES ($1, $2, $3)",
        vec![schedule.into(), Uuid::now_v7().into(), seats.into()],
    )
    .await;
    exec(
        env,
        "INSERT INTO seat.seats (schedule_id, seat_no, price) SELECT $1, n, $2 FROM generate_series(1, $3) AS n",
        vec![schedule.into(), PRICE.into(), seats.into()],
    )
    .await;
    schedule
}

/// A reservation row as the reservation service writes it. Times are seconds from now.
pub struct Reservation<'a> {
    pub user: Uuid,
    pub schedule: Uuid,
    pub status: &'a str,
    pub seats: &'a [i32],
    pub amount: Option<i64>,
    /// When its hold ends, from now (negative: in the past).
    pub held_until: Option<f64>,
    /// How long ago it was created.
    pub created: f64,
    /// How long ago it last changed.
    pub changed: f64,
}

impl Reservation<'_> {
    pub async fn insert(&self, env: &TestEnv) -> Uuid {
        let id = Uuid::now_v7();
        exec(
            env,
            "INSERT INTO reservation.reservations
                 (id, user_id, schedule_id, concert_id, seat_nos, status, amount, held_until, paid, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8), $6 = 'CONFIRMED',
                     now() - make_interval(secs => $9), now() - make_interval(secs => $10))",
            vec![
                id.into(),
                self.user.into(),
                self.schedule.into(),
                Uuid::now_v7().into(),
                self.seats.to_vec().into(),
                self.status.into(),
                self.amount.into(),
                self.held_until.into(),
                self.created.into(),
                self.changed.into(),
            ],
        )
        .await;
        id
    }
}

/// Sets a seat as the seat service would: `held_until` seconds from now for a hold.
pub async fn seat(
    env: &TestEnv,
    schedule: Uuid,
    seat_no: i32,
    status: &str,
    reservation: Option<Uuid>,
    held_until: Option<f64>,
) {
    exec(
        env,
        "UPDATE seat.seats SET status = $3, reservation_id = $4, held_until = now() + make_interval(secs => $5),
                               sold_at = CASE WHEN $3 = 'SOLD' THEN now() END
         WHERE schedule_id = $1 AND seat_no = $2",
        vec![schedule.into(), seat_no.into(), status.into(), reservation.into(), held_until.into()],
    )
    .await;
}

/// Tops up `user`'s wallet `ago` seconds ago, as the wallet and the history record it.
pub async fn charge(env: &TestEnv, user: Uuid, amount: i64, ago: f64) {
    exec(
        env,
        "WITH w AS (
             INSERT INTO wallet.wallets (user_id, balance, updated_at) VALUES ($1, $2, now() - make_interval(secs => $3))
             ON CONFLICT (user_id) DO UPDATE
                 SET balance = wallet.wallets.balance + EXCLUDED.balance, updated_at = EXCLUDED.updated_at
             RETURNING balance
         ), c AS (
             INSERT INTO wallet.charges (id, user_id, amount, balance_after, created_at)
             SELECT $4, $1, $2, balance, now() - make_interval(secs => $3) FROM w
         )
         INSERT INTO wallet_history.entries (id, user_id, kind, amount, balance_after, at)
         SELECT $5, $1, 'CHARGE', $2, balance, now() - make_interval(secs => $3) FROM w",
        vec![user.into(), amount.into(), ago.into(), Uuid::now_v7().into(), Uuid::now_v7().into()],
    )
    .await;
}

/// Pays for `reservation` from `user`'s wallet `ago` seconds ago, as the wallet and the history
/// record it.
pub async fn pay(env: &TestEnv, user: Uuid, reservation: Uuid, amount: i64, ago: f64) {
    exec(
        env,
        "WITH w AS (
             UPDATE wallet.wallets SET balance = balance - $3, updated_at = now() - make_interval(secs => $4)
             WHERE user_id = $1 RETURNING balance
         ), p AS (
             INSERT INTO wallet.payments (id, reservation_id, user_id, amount, status, created_at)
             SELECT $5, $2, $1, $3, 'COMPLETED', now() - make_interval(secs => $4) FROM w
         )
         INSERT INTO wallet_history.entries (id, user_id, kind, amount, balance_after, reservation_id, at)
         SELECT $6, $1, 'PAYMENT', $3, balance, $2, now() - make_interval(secs => $4) FROM w",
        vec![
            user.into(),
            reservation.into(),
            amount.into(),
            ago.into(),
            Uuid::now_v7().into(),
            Uuid::now_v7().into(),
        ],
    )
    .await;
}

/// A sale that ended well long ago: one of three seats SOLD to a CONFIRMED reservation, paid
/// from a wallet charged 10,000.
pub struct Sale {
    pub schedule: Uuid,
    pub user: Uuid,
    pub reservation: Uuid,
}

impl Sale {
    pub async fn make(env: &TestEnv) -> Self {
        let schedule = schedule(env, 3).await;
        let user = Uuid::now_v7();
        charge(env, user, 10_000, AGED + 60.0).await;
        let reservation = Reservation {
            user,
            schedule,
            status: "CONFIRMED",
            seats: &[1],
            amount: Some(PRICE),
            held_until: Some(300.0 - AGED - 30.0),
            created: AGED + 30.0,
            changed: AGED,
        }
        .insert(env)
        .await;
        pay(env, user, reservation, PRICE, AGED).await;
        seat(env, schedule, 1, "SOLD", Some(reservation), None).await;
        Self { schedule, user, reservation }
    }
}
