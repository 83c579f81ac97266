//! Each invariant broken on purpose by a direct write, next to a sale that ended well: the
//! break is reported by its own check and by no other, and a state still in flight is a
//! violation only once it is older than the grace.

use crate::{AGED, PRICE, Reservation, Sale, audit, charge, examples, exec, failing, pay, schedule, seat};
use audit::Invariant;
use contracts::DeadLetter;
use testkit::TestEnv;
use uuid::Uuid;

#[tokio::test]
async fn an_empty_system_is_clean() {
    let env = TestEnv::new().await.unwrap();
    let report = audit(&env, 30).await;
    assert!(report.is_clean(), "{report}");
    // Every invariant has its row; `settled` only when a settle time is given.
    let names: Vec<_> = report.checks.iter().map(|c| c.invariant).collect();
    assert_eq!(names, &Invariant::ALL[1..]);
    assert_eq!(report.dead_letters, 0);
    assert!(report.outbox_backlog.iter().any(|(schema, _)| schema == "wallet_history"), "{report}");
    assert!(report.consumers.missing.is_empty(), "{report}");
}

#[tokio::test]
async fn a_sale_that_ended_well_is_clean_even_without_grace() {
    let env = TestEnv::new().await.unwrap();
    Sale::make(&env).await;
    for grace in [30, 0] {
        let report = audit(&env, grace).await;
        assert!(report.is_clean(), "{report}");
        assert_eq!(report.reservations, [("CONFIRMED".to_owned(), 1)]);
    }
}

#[tokio::test]
async fn a_seat_in_two_confirmed_reservations_is_a_double_sale_however_young() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    let other = Uuid::now_v7();
    charge(&env, other, PRICE, AGED).await;
    let twice = Reservation {
        user: other,
        schedule: sale.schedule,
        status: "CONFIRMED",
        seats: &[1],
        amount: Some(PRICE),
        held_until: Some(290.0),
        created: 10.0,
        changed: 0.0,
    }
    .insert(&env)
    .await;
    pay(&env, other, twice, PRICE, 1.0).await;

    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["seat-sold-once"], "{report}");
    assert_eq!(examples(&report, Invariant::SeatSoldOnce), [format!("{}#1", sale.schedule)]);
    // Without grace, the second reservation's seat not being sold to it counts too.
    let report = audit(&env, 0).await;
    assert_eq!(failing(&report), ["seat-sold-once", "confirmed-seats-sold"], "{report}");
    assert_eq!(examples(&report, Invariant::ConfirmedSeatsSold), [twice.to_string()]);
}

#[tokio::test]
async fn a_seat_sold_to_no_confirmed_reservation_is_reported_at_once() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    seat(&env, sale.schedule, 2, "SOLD", Some(Uuid::now_v7()), None).await;
    let expired = Reservation {
        user: Uuid::now_v7(),
        schedule: sale.schedule,
        status: "EXPIRED",
        seats: &[3],
        amount: Some(PRICE),
        held_until: Some(-1.0),
        created: 301.0,
        changed: 0.0,
    }
    .insert(&env)
    .await;
    seat(&env, sale.schedule, 3, "SOLD", Some(expired), None).await;

    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["sold-seat-owned"], "{report}");
    let check = report.check(Invariant::SoldSeatOwned).unwrap();
    assert_eq!(check.violations, 2);
    let details: Vec<_> = check.examples.iter().map(|e| e.detail.as_str()).collect();
    assert!(details.iter().any(|d| d.ends_with("which does not exist")), "{report}");
    assert!(details.iter().any(|d| d.ends_with("which is EXPIRED")), "{report}");
}

#[tokio::test]
async fn a_confirmed_reservation_whose_seat_is_not_sold_is_in_flight_for_the_grace() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    seat(&env, sale.schedule, 1, "HELD", Some(sale.reservation), Some(300.0 - AGED)).await;

    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["confirmed-seats-sold"], "{report}");
    let check = report.check(Invariant::ConfirmedSeatsSold).unwrap();
    assert_eq!(check.examples[0].id, sale.reservation.to_string());
    assert_eq!(check.examples[0].detail, "seats not SOLD to it: 1 is HELD for it");

    // Confirmed a moment ago: ReservationCompleted may still be on its way to the seat service.
    exec(&env, "UPDATE reservation.reservations SET updated_at = now()", vec![]).await;
    assert!(audit(&env, 30).await.is_clean());
    assert_eq!(failing(&audit(&env, 0).await), ["confirmed-seats-sold"]);
}

#[tokio::test]
async fn a_seat_held_for_a_reservation_that_ended_is_reported_after_the_grace() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    let ended = Reservation {
        user: Uuid::now_v7(),
        schedule: sale.schedule,
        status: "EXPIRED",
        seats: &[2],
        amount: Some(PRICE),
        held_until: Some(300.0 - AGED),
        created: AGED,
        changed: AGED - 300.0,
    }
    .insert(&env)
    .await;
    // Held when the reservation was made, long ago.
    seat(&env, sale.schedule, 2, "HELD", Some(ended), Some(300.0 - AGED)).await;
    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["no-orphan-hold"], "{report}");
    assert_eq!(examples(&report, Invariant::NoOrphanHold), [format!("{}#2", sale.schedule)]);

    // Ended a moment ago: its ReservationFailed is on its way to the seat service.
    exec(&env, "UPDATE reservation.reservations SET updated_at = now() WHERE id = $1", vec![ended.into()])
        .await;
    assert!(audit(&env, 30).await.is_clean());
    assert_eq!(failing(&audit(&env, 0).await), ["no-orphan-hold"]);

    // Ended long ago, but held a moment ago (a late hold): released once the reservation sees it.
    exec(
        &env,
        "UPDATE reservation.reservations SET updated_at = now() - interval '10 minutes' WHERE id = $1",
        vec![ended.into()],
    )
    .await;
    seat(&env, sale.schedule, 2, "HELD", Some(ended), Some(300.0)).await;
    assert!(audit(&env, 30).await.is_clean());
    assert_eq!(failing(&audit(&env, 0).await), ["no-orphan-hold"]);

    // Held for a reservation that was never made: nothing explains it, however young.
    seat(&env, sale.schedule, 3, "HELD", Some(Uuid::now_v7()), Some(300.0)).await;
    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["no-orphan-hold"], "{report}");
    assert_eq!(examples(&report, Invariant::NoOrphanHold), [format!("{}#3", sale.schedule)]);
}

#[tokio::test]
async fn a_balance_its_charges_and_payments_do_not_explain_is_reported_at_once() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    // A charge recorded without crediting the wallet, a moment ago.
    exec(
        &env,
        "INSERT INTO wallet.charges (id, user_id, amount, balance_after) VALUES ($1, $2, 700, 5700)",
        vec![Uuid::now_v7().into(), sale.user.into()],
    )
    .await;
    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["wallet-balance"], "{report}");
    let check = report.check(Invariant::WalletBalance).unwrap();
    assert_eq!(check.examples[0].id, sale.user.to_string());
    assert_eq!(
        check.examples[0].detail,
        "balance 5000, but charges 10700 - payments 5000 + refunds 0 = 5700"
    );

    // Taken and given back: a refund the wallet credited balances, and a payment voided
    // before it was taken (of a user who never had a wallet) took nothing.
    exec(&env, "DELETE FROM wallet.charges WHERE amount = 700", vec![]).await;
    let refunded = Reservation {
        user: sale.user,
        schedule: sale.schedule,
        status: "EXPIRED",
        seats: &[2],
        amount: Some(PRICE),
        held_until: Some(300.0 - AGED),
        created: AGED,
        changed: AGED - 300.0,
    }
    .insert(&env)
    .await;
    pay(&env, sale.user, refunded, PRICE, AGED - 300.0).await;
    exec(
        &env,
        "WITH p AS (
             UPDATE wallet.payments SET status = 'REFUNDED', refunded_at = now() - interval '290 seconds'
             WHERE reservation_id = $1 RETURNING user_id, amount
         ), w AS (
             UPDATE wallet.wallets w SET balance = w.balance + p.amount, updated_at = now() - interval '290 seconds'
             FROM p WHERE w.user_id = p.user_id RETURNING w.user_id, w.balance, p.amount
         )
         INSERT INTO wallet_history.entries (id, user_id, kind, amount, balance_after, reservation_id, at)
         SELECT $2, user_id, 'REFUND', amount, balance, $1, now() - interval '290 seconds' FROM w",
        vec![refunded.into(), Uuid::now_v7().into()],
    )
    .await;
    exec(
        &env,
        "INSERT INTO wallet.payments (id, reservation_id, user_id, amount, status) VALUES ($1, $2, $3, 0, 'VOIDED')",
        vec![Uuid::now_v7().into(), Uuid::now_v7().into(), Uuid::now_v7().into()],
    )
    .await;
    let report = audit(&env, 0).await;
    assert!(report.is_clean(), "{report}");
}

#[tokio::test]
async fn money_kept_for_a_reservation_that_is_not_confirmed_is_reported_after_the_grace() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    let user = Uuid::now_v7();
    charge(&env, user, 20_000, AGED).await;
    let reservation = |status, held_until| Reservation {
        user,
        schedule: sale.schedule,
        status,
        seats: &[2],
        amount: Some(PRICE),
        held_until: Some(held_until),
        created: AGED,
        changed: AGED - 10.0,
    };

    // Still PAYING, its deadline ahead: the PaymentCompleted is on its way, however old.
    let paying = reservation("PAYING", 60.0).insert(&env).await;
    pay(&env, user, paying, PRICE, AGED - 10.0).await;
    let report = audit(&env, 0).await;
    assert!(report.is_clean(), "{report}");

    // Expired long ago, paid a moment ago: the PaymentCompleted is on its way.
    let expired = reservation("EXPIRED", -AGED).insert(&env).await;
    pay(&env, user, expired, PRICE, 1.0).await;
    assert!(audit(&env, 30).await.is_clean());
    let report = audit(&env, 0).await;
    assert_eq!(failing(&report), ["money-for-confirmed"], "{report}");
    assert_eq!(examples(&report, Invariant::MoneyForConfirmed), [expired.to_string()]);

    // Paid long ago: the refund should have come by now.
    exec(
        &env,
        "UPDATE wallet.payments SET created_at = now() - interval '5 minutes' WHERE reservation_id = $1",
        vec![expired.into()],
    )
    .await;
    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["money-for-confirmed"], "{report}");
    let check = report.check(Invariant::MoneyForConfirmed).unwrap();
    assert_eq!(check.violations, 1);
    assert!(check.examples[0].detail.ends_with("kept, but the reservation is EXPIRED"), "{report}");
}

#[tokio::test]
async fn a_confirmed_reservation_nobody_paid_for_is_reported_at_once() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    let unpaid = Reservation {
        user: Uuid::now_v7(),
        schedule: sale.schedule,
        status: "CONFIRMED",
        seats: &[2],
        amount: Some(PRICE),
        held_until: Some(290.0),
        created: 10.0,
        changed: 0.0,
    }
    .insert(&env)
    .await;
    seat(&env, sale.schedule, 2, "SOLD", Some(unpaid), None).await;
    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["money-for-confirmed"], "{report}");
    let check = report.check(Invariant::MoneyForConfirmed).unwrap();
    assert_eq!(check.examples[0].id, unpaid.to_string());
    assert_eq!(check.examples[0].detail, "CONFIRMED for 5000, but no payment is kept");
}

#[tokio::test]
async fn a_history_that_does_not_end_at_the_balance_is_reported_after_the_grace() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    exec(
        &env,
        "INSERT INTO wallet_history.entries (id, user_id, kind, amount, balance_after, at)
         VALUES ($1, $2, 'CHARGE', 1, 123, now())",
        vec![Uuid::now_v7().into(), sale.user.into()],
    )
    .await;
    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["history-ends-at-balance"], "{report}");
    let check = report.check(Invariant::HistoryEndsAtBalance).unwrap();
    assert_eq!(check.examples[0].detail, "balance 5000, history ends at 123");

    // The wallet changed a moment ago: its event is on its way to the history.
    exec(&env, "UPDATE wallet.wallets SET updated_at = now()", vec![]).await;
    assert!(audit(&env, 30).await.is_clean());
    assert_eq!(failing(&audit(&env, 0).await), ["history-ends-at-balance"]);
}

#[tokio::test]
async fn a_reservation_open_past_its_deadline_and_the_grace_is_reported() {
    let env = TestEnv::new().await.unwrap();
    let schedule = schedule(&env, 3).await;
    let open =
        |status: &'static str, seats: &'static [i32], held_until: Option<f64>, created: f64| Reservation {
            user: Uuid::now_v7(),
            schedule,
            status,
            seats,
            amount: held_until.map(|_| PRICE),
            held_until,
            created,
            changed: created,
        };
    // Held until ten minutes ago.
    let held = open("HELD", &[1], Some(-AGED), AGED + 300.0).insert(&env).await;
    seat(&env, schedule, 1, "HELD", Some(held), Some(-AGED)).await;
    // Asked for ten minutes ago and never answered (the request timeout is 30 s).
    let pending = open("PENDING", &[2], None, AGED).insert(&env).await;
    // payBy 40 s ago: past payBy + the pay grace of 30 s, but not past that plus a grace of 30 s.
    let paying = open("PAYING", &[3], Some(-40.0), AGED).insert(&env).await;
    seat(&env, schedule, 3, "HELD", Some(paying), Some(-40.0)).await;
    // Asked for a moment ago: well within the request timeout, whatever the grace.
    open("PENDING", &[], None, 5.0).insert(&env).await;

    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["deadlines-kept"], "{report}");
    let mut due = examples(&report, Invariant::DeadlinesKept);
    due.sort();
    let mut expected = vec![held.to_string(), pending.to_string()];
    expected.sort();
    assert_eq!(due, expected, "{report}");

    let report = audit(&env, 0).await;
    assert_eq!(failing(&report), ["deadlines-kept"], "{report}");
    assert_eq!(report.check(Invariant::DeadlinesKept).unwrap().violations, 3);
}

#[tokio::test]
async fn an_outbox_row_older_than_the_grace_is_reported_with_the_backlog() {
    let env = TestEnv::new().await.unwrap();
    let row = |schema: &str| {
        format!(
            "INSERT INTO {schema}.outbox (id, subject, body, created_at) VALUES ($1, 'x.test', '\\x00'::bytea, now() - $2::interval)"
        )
    };
    exec(&env, &row("seat"), vec![Uuid::now_v7().into(), "10 minutes".into()]).await;
    exec(&env, &row("wallet"), vec![Uuid::now_v7().into(), "1 second".into()]).await;

    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["outboxes-drained"], "{report}");
    let check = report.check(Invariant::OutboxesDrained).unwrap();
    assert_eq!((check.violations, check.examples[0].id.as_str()), (1, "seat.outbox#1"));
    assert!(check.examples[0].detail.starts_with("x.test, 6"), "{report}");
    let backlog: u64 = report.outbox_backlog.iter().map(|(_, n)| n).sum();
    assert_eq!(backlog, 2);
    assert!(report.to_string().contains("outbox backlog  2 (seat 1, wallet 1)"), "{report}");

    assert_eq!(audit(&env, 0).await.check(Invariant::OutboxesDrained).unwrap().violations, 2);
}

#[tokio::test]
async fn a_dead_letter_is_reported_with_what_and_why() {
    let env = TestEnv::new().await.unwrap();
    let letter = DeadLetter {
        original_subject: env.ns.subject("reservation.0.requested"),
        stream_sequence: 7,
        event_id: Some(Uuid::now_v7().to_string()),
        event_type: Some("ReservationRequested".into()),
        consumer: "seat__RESERVATION__requested".into(),
        deliveries: 8,
        reason: "undecodable: missing field seatNos".into(),
        failed_at: chrono::Utc::now(),
        original_headers: Vec::new(),
        original_body: String::new(),
    };
    env.publish_raw("dlq.seat", "dlq:test:7", serde_json::to_vec(&letter).unwrap()).await.unwrap();

    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["no-dead-letters"], "{report}");
    assert_eq!(report.dead_letters, 1);
    let check = report.check(Invariant::NoDeadLetters).unwrap();
    assert_eq!(check.examples[0].id, "dlq#1");
    let detail = &check.examples[0].detail;
    for part in
        ["seat__RESERVATION__requested", "reservation.0.requested", "ReservationRequested", "missing field"]
    {
        assert!(detail.contains(part), "{part} not in {detail}");
    }
}

/// A card capture for a reservation the wallet also paid: a double charge, reported at once.
#[tokio::test]
async fn a_confirmed_reservation_paid_by_wallet_and_card_is_a_double_charge() {
    let env = TestEnv::new().await.unwrap();
    let sale = Sale::make(&env).await;
    exec(
        &env,
        "INSERT INTO payment.payments (id, reservation_id, user_id, amount, pay_by, status, gateway_id)
         VALUES ($1, $2, $3, $4, now(), 'CAPTURED', 'pay_1')",
        vec![Uuid::now_v7().into(), sale.reservation.into(), sale.user.into(), PRICE.into()],
    )
    .await;
    let report = audit(&env, 30).await;
    assert_eq!(failing(&report), ["money-for-confirmed"], "{report}");
    let check = report.check(Invariant::MoneyForConfirmed).unwrap();
    assert_eq!(check.examples[0].detail, "CONFIRMED for 5000, but 2 payment(s) keep 10000");
}
