//! Card payments through the gateway (`ticketing pg-sim`): the buyer confirms on the gateway's
//! page, its signed webhook settles the saga; a declined card or an unreachable gateway leaves
//! the seats held to pay again; a capture after the hold is refunded through the gateway; a
//! payment never confirmed is cancelled there when the hold ends; duplicate webhooks change
//! nothing; a lost webhook is made up for by asking the gateway.

use crate::{Scenario, scenario};
use chrono::{DateTime, Utc};
use contracts::{CardPaymentCompleted, CardPaymentRefunded, ConcertId, ReservationId, ScheduleId, UserId};
use e2e::api::id_of;
use serde_json::{Value, json};
use std::time::Duration;

/// The gateway's API key: a deployment's (`E2E_GATEWAY_KEY`, which `scripts/cluster-up`
/// exports), or the development one (`ticketing pg-sim`'s default).
fn gateway_key() -> String {
    std::env::var("E2E_GATEWAY_KEY")
        .ok()
        .filter(|k| !k.is_empty())
        .unwrap_or_else(|| "sk_test_ticketing".into())
}

/// The gateway's base URL, from one of its checkout pages.
fn gateway_of(checkout_url: &str) -> String {
    checkout_url.split("/checkout/").next().unwrap_or_default().to_owned()
}

/// Sets the gateway's failure knobs (`PUT /sim/settings`; what is left out is reset).
async fn gateway_settings(gateway: &str, settings: Value) {
    let res = reqwest::Client::new()
        .put(format!("{gateway}/sim/settings"))
        .bearer_auth(gateway_key())
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
}

/// The status the gateway gives the payment of its checkout page `page`.
async fn on_gateway(page: &str) -> Value {
    let gateway_id = page.rsplit('/').next().unwrap_or_default();
    let res = reqwest::Client::new()
        .get(format!("{}/v1/payments/{gateway_id}", gateway_of(page)))
        .bearer_auth(gateway_key())
        .send()
        .await
        .unwrap();
    res.json::<Value>().await.unwrap()["status"].clone()
}

/// Waits until the reservation's newest card payment has `field` equal to `value`.
async fn newest_payment(s: &Scenario, user: UserId, id: ReservationId, field: &str, value: &str) {
    s.api
        .eventually(&format!("the card payment's {field} to be {value}"), || async {
            let newest = s.api.card_payments(user, id).await?.into_iter().next();
            Ok(newest.is_some_and(|p| p[field] == value))
        })
        .await
        .unwrap();
}

/// A schedule with a buyer holding seat 1 of it, answered with the hold's end.
async fn held(s: &Scenario) -> (ScheduleId, UserId, ReservationId, DateTime<Utc>) {
    let (_, schedule, user, id, until) = held_of_concert(s).await;
    (schedule, user, id, until)
}

/// As [`held`], with the schedule's concert.
async fn held_of_concert(s: &Scenario) -> (ConcertId, ScheduleId, UserId, ReservationId, DateTime<Utc>) {
    let (concert, schedule) = s.api.schedule(5, 12_000).await.unwrap();
    let user = UserId::new();
    let r = s.api.reserve(user, schedule, &[1], 10).await.unwrap();
    assert_eq!(r.body["status"], "HELD", "{r:?}");
    let until = serde_json::from_value(r.body["heldUntil"].clone()).unwrap();
    (concert, schedule, user, id_of(&r).unwrap(), until)
}

/// Pays `id` by card and answers its gateway page.
async fn paying_by_card(s: &Scenario, user: UserId, id: ReservationId) -> String {
    let paying = s.api.pay_by_card(user, id).await.unwrap();
    assert_eq!((paying.status, paying.body["status"].as_str()), (202, Some("PAYING")), "{paying:?}");
    s.api.checkout_url(user, id).await.unwrap()
}

fn timeline(r: &Value) -> Vec<String> {
    r["timeline"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str().map(str::to_owned)).collect()
}

#[tokio::test]
async fn a_card_payment_confirmed_on_the_gateway_confirms_the_reservation_once() {
    let Some(s) = scenario(&[]).await else { return };
    let (schedule, user, id, _) = held(&s).await;
    let page = paying_by_card(&s, user, id).await;
    let gateway = gateway_of(&page);
    // Every webhook comes twice: the second copy changes nothing.
    gateway_settings(&gateway, json!({"webhookCopies": 2})).await;
    let confirmed = s.api.on_gateway_page(&page, "confirm").await.unwrap();
    assert!([200, 303].contains(&confirmed), "the gateway answered {confirmed}");
    let r = s.api.wait_status(user, id, "CONFIRMED").await.unwrap();
    assert_eq!(r["paymentMethod"], "CARD");
    assert!(timeline(&r).contains(&"CardPaymentCompleted".to_owned()), "{r}");
    s.api
        .eventually("the seat to be sold", || async { Ok(s.api.seats(schedule).await?[&1] == "SOLD") })
        .await
        .unwrap();
    let payments = s.api.card_payments(user, id).await.unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(
        (payments[0]["status"].as_str(), payments[0]["amount"].as_i64()),
        (Some("CAPTURED"), Some(12_000))
    );
    assert!(payments[0].get("checkoutUrl").is_none(), "a captured payment offers no page");
    let completed = s.events_of::<CardPaymentCompleted>().await.unwrap();
    assert_eq!(completed.iter().filter(|c| c.reservation_id == id).count(), 1);
    // The wallet was not touched, and no one else sees the payments.
    assert_eq!(s.api.balance(user).await.unwrap(), 0);
    assert!(s.api.card_payments(UserId::new(), id).await.unwrap().is_empty());
    gateway_settings(&gateway, json!({})).await;
    s.check().await.unwrap();
}

#[tokio::test]
async fn a_declined_card_leaves_the_seats_held_and_the_buyer_pays_again() {
    let Some(s) = scenario(&[]).await else { return };
    let (schedule, user, id, _) = held(&s).await;
    let page = paying_by_card(&s, user, id).await;
    s.api.on_gateway_page(&page, "decline").await.unwrap();
    let r = s.api.wait_status(user, id, "HELD").await.unwrap();
    assert!(timeline(&r).contains(&"CardPaymentFailed".to_owned()), "{r}");
    assert_eq!(s.api.seats(schedule).await.unwrap()[&1], "HELD");
    assert_eq!(s.api.card_payments(user, id).await.unwrap()[0]["failureReason"], "CARD_DECLINED");
    // Another attempt, by card again: a new payment with its own page.
    let again = paying_by_card(&s, user, id).await;
    assert_ne!(again, page);
    s.api.on_gateway_page(&again, "confirm").await.unwrap();
    s.api.wait_status(user, id, "CONFIRMED").await.unwrap();
    let statuses: Vec<String> = s
        .api
        .card_payments(user, id)
        .await
        .unwrap()
        .iter()
        .map(|p| p["status"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(statuses, ["CAPTURED", "DECLINED"]);
    s.check().await.unwrap();
}

#[tokio::test]
async fn a_capture_after_the_hold_ended_is_refunded_through_the_gateway() {
    let Some(s) = scenario(&[("TICKETING_HOLD_SECS", "4"), ("TICKETING_PAY_GRACE_SECS", "30")]).await else {
        return;
    };
    let (schedule, user, id, until) = held(&s).await;
    let page = paying_by_card(&s, user, id).await;
    let wait = (until - Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(500);
    tokio::time::sleep(wait).await;
    // Still PAYING (within the grace), the buyer confirms after the deadline.
    s.api.on_gateway_page(&page, "confirm").await.unwrap();
    let r = s.api.wait_status(user, id, "FAILED").await.unwrap();
    assert_eq!(r["failureReason"], "PAYMENT_FAILED");
    s.api
        .eventually("the seat to be released", || async {
            Ok(s.api.seats(schedule).await?[&1] == "AVAILABLE")
        })
        .await
        .unwrap();
    newest_payment(&s, user, id, "status", "REFUNDED").await;
    assert_eq!(on_gateway(&page).await, "REFUNDED");
    let refunded = s.events_of::<CardPaymentRefunded>().await.unwrap();
    assert_eq!(refunded.iter().filter(|r| r.reservation_id == id).count(), 1);
    s.check().await.unwrap();
}

#[tokio::test]
async fn a_card_payment_never_confirmed_is_cancelled_on_the_gateway_when_the_hold_ends() {
    let Some(s) = scenario(&[("TICKETING_HOLD_SECS", "3"), ("TICKETING_PAY_GRACE_SECS", "1")]).await else {
        return;
    };
    let (schedule, user, id, _) = held(&s).await;
    let page = paying_by_card(&s, user, id).await;
    let r = s.api.wait_status(user, id, "EXPIRED").await.unwrap();
    assert!(timeline(&r).contains(&"CardRefundRequested".to_owned()), "{r}");
    newest_payment(&s, user, id, "status", "VOIDED").await;
    // Too late on the gateway's page: it was cancelled there.
    assert_eq!(s.api.on_gateway_page(&page, "confirm").await.unwrap(), 409);
    assert_eq!(s.api.seats(schedule).await.unwrap()[&1], "AVAILABLE");
    s.check().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_gateway_leaves_the_seats_held_and_a_lost_webhook_is_made_up_for() {
    let Some(s) = scenario(&[]).await else { return };
    let (_, user, id, _) = held(&s).await;
    // Learn the gateway's address from a first payment, declined.
    let first = paying_by_card(&s, user, id).await;
    s.api.on_gateway_page(&first, "decline").await.unwrap();
    s.api.wait_status(user, id, "HELD").await.unwrap();
    let gateway = gateway_of(&first);

    // The gateway answers nothing: after a few tries the attempt fails and the seats stay held.
    gateway_settings(&gateway, json!({"failNextApiCalls": 100})).await;
    s.api.pay_by_card(user, id).await.unwrap();
    newest_payment(&s, user, id, "failureReason", "GATEWAY_UNAVAILABLE").await;
    s.api.wait_status(user, id, "HELD").await.unwrap();

    // Back, but its webhooks are lost: the payment service asks the gateway itself.
    gateway_settings(&gateway, json!({"dropWebhooks": true})).await;
    let page = paying_by_card(&s, user, id).await;
    s.api.on_gateway_page(&page, "confirm").await.unwrap();
    s.api.wait_status(user, id, "CONFIRMED").await.unwrap();
    gateway_settings(&gateway, json!({})).await;
    s.check().await.unwrap();
}

#[tokio::test]
async fn a_cancelled_schedule_refunds_a_card_payment_through_the_gateway() {
    let Some(s) = scenario(&[]).await else { return };
    let (concert, schedule, user, id, _) = held_of_concert(&s).await;
    let page = paying_by_card(&s, user, id).await;
    s.api.on_gateway_page(&page, "confirm").await.unwrap();
    s.api.wait_status(user, id, "CONFIRMED").await.unwrap();

    let path = format!("/concerts/{concert}/schedules/{schedule}/cancellation");
    let cancelled = s.api.send(reqwest::Method::POST, &path, Some(&s.api.admin()), None, &[]).await.unwrap();
    assert_eq!(cancelled.status, 200, "{cancelled:?}");
    let r = s.api.wait_status(user, id, "CANCELLED").await.unwrap();
    assert_eq!(r["failureReason"], "SCHEDULE_CANCELLED");
    newest_payment(&s, user, id, "status", "REFUNDED").await;
    assert_eq!(on_gateway(&page).await, "REFUNDED");
    assert_eq!(s.api.balance(user).await.unwrap(), 0, "a card payment goes back to the card");
    s.check().await.unwrap();
}

#[tokio::test]
async fn a_capture_the_gateway_tells_of_after_the_hold_ended_is_refunded_not_confirmed() {
    // The hold and its grace end 3 s after the hold starts; the payment service first asks the
    // gateway 5 s after creating the payment, so it learns of the capture only after.
    let Some(s) = scenario(&[("TICKETING_HOLD_SECS", "2"), ("TICKETING_PAY_GRACE_SECS", "1")]).await else {
        return;
    };
    let (schedule, user, id, _) = held(&s).await;
    let page = paying_by_card(&s, user, id).await;
    let gateway = gateway_of(&page);
    // The buyer pays (in time, or just after), but the gateway's word of it comes only after the
    // hold has ended.
    gateway_settings(&gateway, json!({"webhookDelayMs": 15_000})).await;
    s.api.on_gateway_page(&page, "confirm").await.unwrap();
    let r = s.api.wait_status(user, id, "EXPIRED").await.unwrap();
    assert_eq!(r["failureReason"], "EXPIRED");
    // Asked to give up on it, the payment service finds it taken and gives it back.
    newest_payment(&s, user, id, "status", "REFUNDED").await;
    assert_eq!(on_gateway(&page).await, "REFUNDED");
    assert!(!s.events_of::<CardPaymentCompleted>().await.unwrap().iter().any(|c| c.reservation_id == id));
    assert_eq!(s.api.seats(schedule).await.unwrap()[&1], "AVAILABLE");
    gateway_settings(&gateway, json!({})).await;
    s.check().await.unwrap();
}
