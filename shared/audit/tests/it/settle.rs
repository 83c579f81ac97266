//! The wait for quiet: a quiet system is checked with no grace; a busy one is a violation that
//! names what was busy, and is checked with the grace as usual.

use crate::{PRICE, Reservation, Sale, clocks, failing, seat};
use audit::{Invariant, Options, Settle};
use std::time::{Duration, Instant};
use testkit::TestEnv;
use uuid::Uuid;

fn settling(within: Duration) -> Options {
    Options { settle: Some(within), ..Options::new(clocks()) }
}

#[tokio::test]
async fn a_quiet_system_settles_and_is_checked_without_grace() {
    let env = TestEnv::new().await.unwrap();
    Sale::make(&env).await;
    let report = audit::audit(&env.db, &env.bus, &settling(Duration::from_secs(10))).await.unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(matches!(report.settle, Some(Settle::Quiet { .. })), "{report}");
    assert_eq!(report.grace, Duration::ZERO);
    assert!(report.check(Invariant::Settled).unwrap().ok());

    // With no grace, a reservation confirmed a moment ago whose seat is not sold yet counts.
    crate::exec(&env, "UPDATE reservation.reservations SET updated_at = now()", vec![]).await;
    crate::exec(
        &env,
        "UPDATE seat.seats SET status = 'HELD', held_until = now() WHERE status = 'SOLD'",
        vec![],
    )
    .await;
    let report = audit::audit(&env.db, &env.bus, &settling(Duration::from_secs(10))).await.unwrap();
    assert_eq!(failing(&report), ["confirmed-seats-sold"], "{report}");
}

#[tokio::test]
async fn a_busy_system_that_does_not_settle_in_time_is_a_violation_naming_what_was_busy() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    // A hold waiting for its payment, well within its deadline.
    let held = Reservation {
        user: Uuid::now_v7(),
        schedule: sale.schedule,
        status: "HELD",
        seats: &[2],
        amount: Some(PRICE),
        held_until: Some(290.0),
        created: 10.0,
        changed: 9.0,
    }
    .insert(&env)
    .await;
    seat(&env, sale.schedule, 2, "HELD", Some(held), Some(290.0)).await;
    crate::exec(
        &env,
        "INSERT INTO seat.outbox (id, subject, body) VALUES ($1, 'seat.0.reserved', '\\x00'::bytea)",
        vec![Uuid::now_v7().into()],
    )
    .await;

    let began = Instant::now();
    let report = audit::audit(&env.db, &env.bus, &settling(Duration::from_millis(300))).await.unwrap();
    assert!(began.elapsed() < Duration::from_secs(10), "the wait is bounded by the settle time");
    assert!(matches!(report.settle, Some(Settle::Busy { waited }) if waited >= Duration::from_millis(300)));
    // Busy is the only violation: the checks keep the grace, so what is in flight is not one.
    assert_eq!(failing(&report), ["settled"], "{report}");
    assert_eq!(report.grace, audit::DEFAULT_GRACE);
    let settled = report.check(Invariant::Settled).unwrap();
    let busy: Vec<_> = settled.examples.iter().map(|e| (e.id.as_str(), e.detail.as_str())).collect();
    let held = held.to_string();
    assert_eq!(busy, [("seat.outbox", "1 row waiting"), (held.as_str(), "HELD (open)")], "{report}");
    assert_eq!(settled.violations, 2);
}
