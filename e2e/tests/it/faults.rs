use crate::{scenario, scenario_needing};
use chrono::Utc;
use contracts::{
    ChargeCompleted, ConcertId, Envelope, Event, PaymentCompleted, PaymentFailed, PaymentFailureReason,
    PaymentRequested, ReservationCompleted, ReservationFailed, ReservationFailureReason,
    ReservationRequested, SeatNo, SeatReserved, SeatsReleased, Stream, UserId, Won,
};
use e2e::api::id_of;
use e2e::deployment::Need;
use reqwest::Method;

/// The subject a copy of `event` goes to when it is an `E`: where `E`s are published, with the
/// partition of its schedule.
fn copy_subject<E: Event>(s: &crate::Scenario, event: &Envelope<serde_json::Value>) -> Option<String> {
    let typed = event.clone().decode::<E>().ok()?;
    Some(s.bus.ns.partitions().subject(&typed.payload))
}

/// Scenario 8: duplicate and reordered events injected on the subjects: no double debit, no
/// double release.
#[tokio::test]
async fn duplicate_and_reordered_events_change_nothing() {
    let Some(s) = scenario(&[]).await else { return };
    let (_, schedule) = s.api.schedule(10, 10_000).await.unwrap();
    let user = UserId::new();
    s.api.charge(user, 50_000).await.unwrap();
    let paid = id_of(&s.api.reserve(user, schedule, &[1], 10).await.unwrap()).unwrap();
    s.api.pay(user, paid, 10).await.unwrap();
    s.api.wait_status(user, paid, "CONFIRMED").await.unwrap();
    let cancelled = id_of(&s.api.reserve(user, schedule, &[2], 10).await.unwrap()).unwrap();
    let c = s
        .api
        .send(Method::DELETE, &format!("/reservations/{cancelled}"), Some(&s.api.token(user)), None, &[])
        .await
        .unwrap();
    assert_eq!(c.body["status"], "CANCELLED");
    s.api
        .eventually("seat 2 released", || async { Ok(s.api.seats(schedule).await?[&2] == "AVAILABLE") })
        .await
        .unwrap();
    s.check().await.unwrap();

    // Duplicates: every event the saga produced, published again as copies with new message
    // ids (a producer that republished after a crash); consumers drop them by event id.
    for stream in [Stream::Reservation, Stream::Seat, Stream::Wallet] {
        for (i, event) in s.events(stream).await.unwrap().into_iter().enumerate() {
            let Some(subject) = copy_subject::<ReservationRequested>(&s, &event)
                .or_else(|| copy_subject::<PaymentRequested>(&s, &event))
                .or_else(|| copy_subject::<ReservationFailed>(&s, &event))
                .or_else(|| copy_subject::<ReservationCompleted>(&s, &event))
                .or_else(|| copy_subject::<SeatReserved>(&s, &event))
                .or_else(|| copy_subject::<SeatsReleased>(&s, &event))
                .or_else(|| copy_subject::<PaymentCompleted>(&s, &event))
                .or_else(|| copy_subject::<ChargeCompleted>(&s, &event))
            else {
                continue;
            };
            s.publish_raw(
                &subject,
                &format!("copy-{stream}-{i}-{}", event.id),
                serde_json::to_vec(&event).unwrap(),
            )
            .await
            .unwrap();
        }
    }
    // Reordered: answers that arrive after the reservation moved on (new events, not copies).
    let schedule_id = schedule;
    let late_hold = Envelope::new(
        "seat",
        cancelled,
        SeatReserved {
            reservation_id: cancelled,
            concert_id: ConcertId::new(),
            schedule_id,
            seat_nos: vec![SeatNo(2)],
            amount: Won(10_000),
            held_until: Utc::now() + chrono::Duration::minutes(5),
        },
    );
    s.publish(&late_hold).await.unwrap();
    let late_failure = Envelope::new(
        "wallet",
        paid,
        PaymentFailed {
            reservation_id: paid,
            user_id: user,
            amount: Won(10_000),
            reason: PaymentFailureReason::InsufficientBalance,
        },
    );
    s.publish(&late_failure).await.unwrap();

    s.check().await.unwrap();
    assert_eq!(s.api.balance(user).await.unwrap(), 40_000, "debited once");
    let released: Vec<_> = s
        .events_of::<SeatsReleased>()
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.reservation_id == cancelled)
        .collect();
    assert_eq!(released.len(), 1, "released once");
    let seats = s.api.seats(schedule).await.unwrap();
    assert_eq!((seats[&1].as_str(), seats[&2].as_str()), ("SOLD", "AVAILABLE"));
    assert_eq!(s.api.reservation(user, paid).await.unwrap()["status"], "CONFIRMED");
    assert_eq!(s.api.reservation(user, cancelled).await.unwrap()["status"], "CANCELLED");
    // The late hold made the cancelled reservation announce its failure again (so a real hold
    // would have been released); there was nothing to release.
    let failures = s.events_of::<ReservationFailed>().await.unwrap();
    assert_eq!(
        failures
            .iter()
            .filter(|f| f.reservation_id == cancelled && f.reason == ReservationFailureReason::Cancelled)
            .count(),
        2
    );
}

/// Scenario 9: the seat service is stopped mid-saga and restarted: the saga completes, or
/// times out and compensates.
#[tokio::test]
async fn seat_service_restarted_mid_saga() {
    let Some(mut s) =
        scenario_needing(&[("TICKETING_REQUEST_TIMEOUT_SECS", "3")], &[Need::StopServices]).await
    else {
        return;
    };
    let (_, schedule) = s.api.schedule(10, 10_000).await.unwrap();
    let user = UserId::new();
    s.api.charge(user, 50_000).await.unwrap();

    // Down briefly: the request waits in the stream and completes.
    s.stop_service("seat").await.unwrap();
    let first = s.api.reserve_raw(user, schedule, &[1], 1).await.unwrap();
    assert_eq!((first.status, first.body["status"].as_str()), (202, Some("PENDING")));
    s.start_service("seat").await.unwrap();
    let first = id_of(&first).unwrap();
    s.api.wait_status(user, first, "HELD").await.unwrap();
    assert_eq!(s.api.pay(user, first, 10).await.unwrap().body["status"], "CONFIRMED");

    // Down past the request timeout: the reservation fails, and the late hold is released.
    s.stop_service("seat").await.unwrap();
    let second = id_of(&s.api.reserve_raw(user, schedule, &[2], 0).await.unwrap()).unwrap();
    let r = s.api.wait_status(user, second, "FAILED").await.unwrap();
    assert_eq!(r["failureReason"], "TIMEOUT");
    s.start_service("seat").await.unwrap();
    s.check().await.unwrap();
    let seats = s.api.seats(schedule).await.unwrap();
    assert_eq!((seats[&1].as_str(), seats[&2].as_str()), ("SOLD", "AVAILABLE"));
    assert_eq!(s.api.balance(user).await.unwrap(), 40_000);
}
