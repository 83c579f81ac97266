//! An organizer cancels a schedule: every live reservation of it fails, every confirmed one is
//! refunded, and one started as the cancellation ran is ended by the sweeper.

use super::*;
use contracts::{RefundRequested, ScheduleCancelled};

async fn cancel(s: &Service) {
    let e = Envelope::new(
        "concert",
        s.schedule,
        ScheduleCancelled { schedule_id: s.schedule, concert_id: s.concert, cancelled_at: Utc::now() },
    );
    s.env.publish(&e).await.unwrap();
    s.env.wait_handled("reservation", e.id).await;
}

async fn refunds(s: &Service) -> Vec<(ReservationId, Won)> {
    let mut r: Vec<_> = s
        .env
        .events_of::<RefundRequested>()
        .await
        .unwrap()
        .iter()
        .map(|r| (r.reservation_id, r.amount))
        .collect();
    r.sort();
    r
}

#[tokio::test]
async fn a_cancelled_schedule_fails_live_reservations_and_refunds_confirmed_ones() {
    let s = Service::start().await;
    let (buyer, holder, payer, pending) = (UserId::new(), UserId::new(), UserId::new(), UserId::new());
    let bought = s.held(buyer, 1, Span::minutes(5)).await;
    let (status, body) = s.call(Method::POST, &format!("/reservations/{bought}/payment"), buyer, None).await;
    assert_eq!(status, 202, "{body}");
    s.paid(bought, buyer).await;
    s.wait_status(buyer, bought, "CONFIRMED").await;
    let held = s.held(holder, 2, Span::minutes(5)).await;
    let paying = s.held(payer, 3, Span::minutes(5)).await;
    let (status, body) = s.call(Method::POST, &format!("/reservations/{paying}/payment"), payer, None).await;
    assert_eq!(status, 202, "{body}");
    let waiting = s.reserve(pending, &[4]).await;

    cancel(&s).await;
    let r = s.get(buyer, bought).await;
    assert_eq!(
        (r["status"].as_str(), r["failureReason"].as_str()),
        (Some("CANCELLED"), Some("SCHEDULE_CANCELLED")),
        "{r}"
    );
    for (user, id) in [(holder, held), (payer, paying), (pending, waiting)] {
        let r = s.get(user, id).await;
        assert_eq!(
            (r["status"].as_str(), r["failureReason"].as_str()),
            (Some("FAILED"), Some("SCHEDULE_CANCELLED")),
            "{r}"
        );
    }
    // The confirmed one is refunded; the payment in flight is given back (or voided).
    let mut expected = vec![(bought, Won(1000)), (paying, Won(1000))];
    expected.sort();
    eventually("the refunds", Duration::from_secs(10), || async {
        (refunds(&s).await == expected).then_some(())
    })
    .await;
    // Delivered again, the cancellation refunds nothing twice.
    let failed = s.env.events_of::<ReservationFailed>().await.unwrap();
    assert_eq!(failed.iter().filter(|f| f.reason == ReservationFailureReason::ScheduleCancelled).count(), 3);
    cancel(&s).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(refunds(&s).await, expected);
}

#[tokio::test]
async fn the_sweeper_ends_a_reservation_the_cancellation_missed() {
    let s = Service::start().await;
    cancel(&s).await;
    // A reservation inserted as the cancellation ran (it did not see it), whose seats the
    // seat service held before it heard of the cancellation.
    let user = UserId::new();
    let late = s.held(user, 5, Span::minutes(5)).await;
    let r = s.wait_status(user, late, "FAILED").await;
    assert_eq!(r["failureReason"], "SCHEDULE_CANCELLED", "{r}");
}
