use crate::{Scenario, scenario, scenario_needing};
use chrono::{DateTime, Utc};
use contracts::{PaymentRefunded, PaymentRequested, RefundRequested, UserId};
use e2e::api::id_of;
use e2e::deployment::Need;
use std::time::Duration;
use testkit::eventually;

/// Scenario 3: the hold (2 s here) runs out → EXPIRED → seats AVAILABLE; a later pay is refused.
#[tokio::test]
async fn hold_expiry() {
    let Some(s) = scenario(&[("TICKETING_HOLD_SECS", "2")]).await else { return };
    let (_, schedule) = s.api.schedule(10, 10_000).await.unwrap();
    let user = UserId::new();
    s.api.charge(user, 50_000).await.unwrap();
    let id = id_of(&s.api.reserve(user, schedule, &[5], 10).await.unwrap()).unwrap();
    let r = s.api.wait_status(user, id, "EXPIRED").await.unwrap();
    assert_eq!(r["failureReason"], "EXPIRED");
    s.api
        .eventually("seat 5 released", || async { Ok(s.api.seats(schedule).await?[&5] == "AVAILABLE") })
        .await
        .unwrap();
    let late = s.api.pay_raw(user, id, 0).await.unwrap();
    assert_eq!((late.status, late.body["code"].as_str()), (409, Some("NOT_PAYABLE")));
    assert_eq!(s.api.balance(user).await.unwrap(), 50_000);
    s.check().await.unwrap();
}

/// Pays while the wallet is down, then lets the wallet debit (before payBy) while the
/// reservation service is down, so the PaymentCompleted reaches the reservation only after
/// the deadline. Returns the user, reservation and the hold deadline.
async fn payment_answered_late(s: &mut Scenario) -> (UserId, contracts::ReservationId, DateTime<Utc>) {
    let (_, schedule) = s.api.schedule(10, 10_000).await.unwrap();
    let user = UserId::new();
    s.api.charge(user, 30_000).await.unwrap();
    let held = s.api.reserve(user, schedule, &[1], 10).await.unwrap();
    let id = id_of(&held).unwrap();
    let until: DateTime<Utc> = serde_json::from_value(held.body["heldUntil"].clone()).unwrap();

    s.stop_service("wallet").await.unwrap();
    let paying = s.api.pay_raw(user, id, 0).await.unwrap();
    assert_eq!(paying.body["status"], "PAYING", "{:?}", paying);
    eventually("PaymentRequested published", Duration::from_secs(10), || async {
        s.events_of::<PaymentRequested>().await.unwrap().iter().any(|p| p.reservation_id == id).then_some(())
    })
    .await;
    s.stop_service("reservation").await.unwrap();
    s.start_service("wallet").await.unwrap();
    s.api
        .eventually("the wallet to debit", || async { Ok(s.api.balance(user).await? == 20_000) })
        .await
        .unwrap();
    assert!(Utc::now() < until, "the wallet must have paid before payBy for this scenario");
    (user, id, until)
}

/// Scenario 4a: a payment in flight at the deadline wins while within the grace.
#[tokio::test]
async fn payment_in_flight_at_the_deadline_wins() {
    let Some(mut s) = scenario_needing(
        &[("TICKETING_HOLD_SECS", "6"), ("TICKETING_PAY_GRACE_SECS", "30")],
        &[Need::StopServices],
    )
    .await
    else {
        return;
    };
    let (user, id, until) = payment_answered_late(&mut s).await;
    eventually("the hold deadline to pass", Duration::from_secs(10), || async {
        (Utc::now() > until).then_some(())
    })
    .await;
    s.start_service("reservation").await.unwrap();
    s.api.wait_status(user, id, "CONFIRMED").await.unwrap();
    assert_eq!(s.api.balance(user).await.unwrap(), 20_000);
    assert!(!s.events_of::<RefundRequested>().await.unwrap().iter().any(|r| r.reservation_id == id));
    s.check().await.unwrap();
}

/// Scenario 4b: a PaymentCompleted that arrives after EXPIRED produces exactly one refund.
#[tokio::test]
async fn payment_completed_after_expiry_is_refunded_once() {
    let Some(mut s) = scenario_needing(
        &[("TICKETING_HOLD_SECS", "6"), ("TICKETING_PAY_GRACE_SECS", "1")],
        &[Need::StopServices],
    )
    .await
    else {
        return;
    };
    let (user, id, until) = payment_answered_late(&mut s).await;
    eventually("payBy + grace to pass", Duration::from_secs(15), || async {
        (Utc::now() > until + chrono::Duration::milliseconds(1200)).then_some(())
    })
    .await;
    s.start_service("reservation").await.unwrap();
    let r = s.api.wait_status(user, id, "EXPIRED").await.unwrap();
    assert_eq!(r["failureReason"], "EXPIRED");
    s.api.eventually("the refund", || async { Ok(s.api.balance(user).await? == 30_000) }).await.unwrap();
    s.check().await.unwrap();
    // Expiry asked for a refund, and so did the late PaymentCompleted; the wallet refunded once.
    let refunds_asked = s.events_of::<RefundRequested>().await.unwrap();
    assert_eq!(refunds_asked.iter().filter(|r| r.reservation_id == id).count(), 2);
    let refunded = s.events_of::<PaymentRefunded>().await.unwrap();
    assert_eq!(refunded.iter().filter(|r| r.reservation_id == id).count(), 1);
    assert_eq!(s.api.balance(user).await.unwrap(), 30_000);
}

/// Issue 24: an organizer cancels a schedule. The buyer who paid is refunded (the refund in
/// the wallet's history), the one holding seats fails `SCHEDULE_CANCELLED`, and nothing more
/// of it is sold.
#[tokio::test]
async fn a_cancelled_schedule_refunds_its_buyers_and_fails_its_holds() {
    let Some(s) = scenario(&[]).await else { return };
    let (concert, schedule) = s.api.schedule(10, 10_000).await.unwrap();
    let (buyer, holder, late) = (UserId::new(), UserId::new(), UserId::new());
    s.api.charge(buyer, 30_000).await.unwrap();
    let held = s.api.reserve(buyer, schedule, &[1, 2], 10).await.unwrap();
    let bought = id_of(&held).unwrap();
    let paid = s.api.pay(buyer, bought, 10).await.unwrap();
    assert_eq!(paid.body["status"], "CONFIRMED", "{paid:?}");
    let holding = id_of(&s.api.reserve(holder, schedule, &[3], 10).await.unwrap()).unwrap();
    // The concert's seats in the ranking of the last two minutes (other concerts may sell on a
    // shared deployment: it is looked for among the top 100).
    let ranked = || async {
        let r = s
            .api
            .send(reqwest::Method::GET, "/rankings/concerts?window=2m&limit=100", None, None, &[])
            .await?;
        let rows = r.body["data"].as_array().cloned().unwrap_or_default();
        anyhow::Ok(
            rows.iter()
                .find(|c| c["concertId"] == serde_json::json!(concert))
                .map(|c| c["confirmedSeats"].clone()),
        )
    };
    s.api
        .eventually("the sale ranked", || async { Ok(ranked().await? == Some(serde_json::json!(2))) })
        .await
        .unwrap();

    let admin = s.api.admin();
    let path = format!("/concerts/{concert}/schedules/{schedule}/cancellation");
    let cancelled = s.api.send(reqwest::Method::POST, &path, Some(&admin), None, &[]).await.unwrap();
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    assert!(cancelled.body["cancelledAt"].is_string(), "{cancelled:?}");

    let r = s.api.wait_status(holder, holding, "FAILED").await.unwrap();
    assert_eq!(r["failureReason"], "SCHEDULE_CANCELLED");
    let r = s.api.wait_status(buyer, bought, "CANCELLED").await.unwrap();
    assert_eq!(r["failureReason"], "SCHEDULE_CANCELLED");
    s.api.eventually("the refund", || async { Ok(s.api.balance(buyer).await? == 30_000) }).await.unwrap();
    let token = s.api.token(buyer);
    s.api
        .eventually("the refund in the history", || async {
            let h = s.api.send(reqwest::Method::GET, "/wallets/me/history", Some(&token), None, &[]).await?;
            let kinds: Vec<&str> = h.body["data"]
                .as_array()
                .map(|d| d.iter().filter_map(|e| e["kind"].as_str()).collect())
                .unwrap_or_default();
            Ok(kinds == ["REFUND", "PAYMENT", "CHARGE"])
        })
        .await
        .unwrap();
    // The sale undone leaves the ranking.
    s.api.eventually("the sale unranked", || async { Ok(ranked().await?.is_none()) }).await.unwrap();
    // Nothing more of it is sold.
    let refused = s.api.reserve(late, schedule, &[4], 10).await.unwrap();
    assert_eq!(refused.body["failureReason"], "NOT_ON_SALE", "{refused:?}");
    s.api.leave_all().await.unwrap();
    s.check().await.unwrap();
}
