use crate::Service;
use chrono::{Duration as Span, Utc};
use contracts::{
    PaymentFailureReason, RefundRequested, ReservationFailed, ReservationFailureReason, UserId, Won,
};
use reqwest::Method;
use std::time::Duration;
use testkit::{eventually, metric};

async fn failures(s: &Service, n: usize) -> Vec<ReservationFailed> {
    eventually(&format!("{n} ReservationFailed"), Duration::from_secs(15), || async {
        let f = s.env.events_of::<ReservationFailed>().await.unwrap();
        (f.len() == n).then_some(f)
    })
    .await
}

#[tokio::test]
async fn an_unpaid_hold_expires_and_a_later_payment_is_refused() {
    let s = Service::start().await;
    let user = UserId::new();
    let id = s.held(user, 1, Span::seconds(1)).await;
    let r = s.wait_status(user, id, "EXPIRED").await;
    assert_eq!(r["failureReason"], "EXPIRED");
    assert_eq!(failures(&s, 1).await[0].reason, ReservationFailureReason::Expired);
    let (status, problem) = s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("NOT_PAYABLE")));
}

#[tokio::test]
async fn paying_after_the_hold_ran_out_is_refused_before_the_sweeper_notices() {
    let s = Service::start_with(&[("TICKETING_HOLD_SECS", "600")]).await;
    let user = UserId::new();
    let id = s.reserve(user, &[1]).await;
    s.seats_held(id, &[1], Utc::now() - Span::seconds(1)).await;
    // Held with a deadline already gone: the sweeper may expire it first; either way no payment.
    let r = eventually("the hold to land", Duration::from_secs(10), || async {
        let r = s.get(user, id).await;
        (r["status"] != "PENDING").then_some(r)
    })
    .await;
    let (status, problem) = s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    assert_eq!(status, 409, "{r} {problem}");
    assert!(["HOLD_EXPIRED", "NOT_PAYABLE"].contains(&problem["code"].as_str().unwrap()));
}

#[tokio::test]
async fn a_payment_in_flight_wins_until_the_grace_ends() {
    let s = Service::start_with(&[("TICKETING_PAY_GRACE_SECS", "30")]).await;
    let user = UserId::new();
    let id = s.held(user, 1, Span::seconds(1)).await;
    s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    // The hold's deadline passes while PAYING, and the sweeper (every second at the default
    // hold) gets a turn; within the grace the payment's outcome still decides.
    let until: chrono::DateTime<Utc> =
        serde_json::from_value(s.get(user, id).await["heldUntil"].clone()).unwrap();
    eventually("the hold deadline and a sweep to pass", Duration::from_secs(10), || async {
        (Utc::now() > until + Span::milliseconds(1200)).then_some(())
    })
    .await;
    assert_eq!(s.get(user, id).await["status"], "PAYING");
    s.paid(id, user).await;
    s.wait_status(user, id, "CONFIRMED").await;
    assert!(s.env.events_of::<RefundRequested>().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_payment_that_never_answers_expires_with_a_refund_and_a_late_one_is_refunded() {
    let metrics = platform::http::metrics_handle();
    let s = Service::start_with(&[("TICKETING_PAY_GRACE_SECS", "1")]).await;
    let user = UserId::new();
    let id = s.held(user, 1, Span::seconds(1)).await;
    s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    s.wait_status(user, id, "EXPIRED").await;
    assert_eq!(failures(&s, 1).await[0].reason, ReservationFailureReason::Expired);
    let refunds = eventually("RefundRequested", Duration::from_secs(10), || async {
        let r = s.env.events_of::<RefundRequested>().await.unwrap();
        (!r.is_empty()).then_some(r)
    })
    .await;
    assert_eq!((refunds[0].reservation_id, refunds[0].amount), (id, Won(1000)));

    // The wallet had debited after all: its late PaymentCompleted asks for a refund again
    // (the wallet refunds each payment once), and the reservation stays EXPIRED.
    let late = s.paid(id, user).await;
    s.env.wait_handled("reservation", late.id).await;
    assert_eq!(s.env.events_of::<RefundRequested>().await.unwrap().len(), 2);
    assert_eq!(s.get(user, id).await["status"], "EXPIRED");
    // The saga ended once: the late payment changed the row, not its end.
    let text = metrics.render();
    assert_eq!(
        metric(&text, r#"saga_outcomes_total{status="EXPIRED",reason="EXPIRED"}"#),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn seats_held_for_a_reservation_that_already_ended_are_released_again() {
    let metrics = platform::http::metrics_handle();
    let s = Service::start_with(&[("TICKETING_REQUEST_TIMEOUT_SECS", "1")]).await;
    let user = UserId::new();
    let id = s.reserve(user, &[2]).await;
    let r = s.wait_status(user, id, "FAILED").await;
    assert_eq!(r["failureReason"], "TIMEOUT");
    assert_eq!(failures(&s, 1).await[0].reason, ReservationFailureReason::Timeout);

    let late = s.seats_held(id, &[2], Utc::now() + Span::minutes(5)).await;
    s.env.wait_handled("reservation", late.id).await;
    let again = failures(&s, 2).await;
    assert_eq!(again[1].reservation_id, id);
    assert_eq!(s.get(user, id).await["status"], "FAILED");
    let text = metrics.render();
    assert_eq!(
        metric(&text, r#"saga_outcomes_total{status="FAILED",reason="TIMEOUT"}"#),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn cancelling_releases_a_hold_and_only_a_hold() {
    let s = Service::start().await;
    let user = UserId::new();
    let pending = s.reserve(user, &[5]).await;
    let (status, problem) = s.call(Method::DELETE, &format!("/reservations/{pending}"), user, None).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("NOT_CANCELLABLE")));

    // A user has one live reservation of a schedule: another user holds the next.
    let other = UserId::new();
    let id = s.held(other, 6, Span::minutes(5)).await;
    let (status, body) = s.call(Method::DELETE, &format!("/reservations/{id}"), other, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")));
    let f = failures(&s, 1).await;
    assert_eq!((f[0].reservation_id, f[0].reason), (id, ReservationFailureReason::Cancelled));
    let (status, _) = s.call(Method::DELETE, &format!("/reservations/{id}"), other, None).await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn duplicate_and_reordered_events_change_nothing() {
    let s = Service::start().await;
    let user = UserId::new();
    let id = s.reserve(user, &[1]).await;
    // A payment answer before the hold (reordered): ignored.
    s.payment_failed(id, user, PaymentFailureReason::InsufficientBalance).await;
    let held = s.seats_held(id, &[1], Utc::now() + Span::minutes(5)).await;
    s.wait_status(user, id, "HELD").await;
    // The same SeatReserved again (a new copy, same event id): the inbox drops it.
    s.env.publish_raw("seat.0.reserved", "copy", serde_json::to_vec(&held).unwrap()).await.unwrap();
    s.seats_rejected(id).await;
    s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    let paid = s.paid(id, user).await;
    s.wait_status(user, id, "CONFIRMED").await;
    let dup = s.paid(id, user).await;
    s.env.wait_handled("reservation", dup.id).await;
    s.env
        .publish_raw("wallet.0.payment.completed", "copy", serde_json::to_vec(&paid).unwrap())
        .await
        .unwrap();
    let r = s.get(user, id).await;
    assert_eq!(r["status"], "CONFIRMED");
    assert!(s.env.events_of::<ReservationFailed>().await.unwrap().is_empty());
    assert!(s.env.events_of::<RefundRequested>().await.unwrap().is_empty());
}
