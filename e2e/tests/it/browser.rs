//! The web pages in headless Chromium (issue 24): two buyers (one paying from her wallet, one
//! by card on the gateway's page) and an organizer at their screens.
//! With `TICKETING_SCREENSHOTS=<dir>` every page is also written there as a PNG
//! (`scripts/screenshots` does that for the README).

use crate::scenario;
use chrono::{Duration, Utc};
use e2e::browser::{Browser, Driver};
use reqwest::Method;
use serde_json::json;

/// Writes the page to `<TICKETING_SCREENSHOTS>/<name>.png` when screenshots are asked for.
async fn shot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("TICKETING_SCREENSHOTS") {
        let dir = std::path::PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        browser.screenshot(&dir.join(format!("{name}.png"))).await.unwrap();
    }
}

/// Opens an account on the sign-in page and is signed in with it.
async fn sign_up(browser: &Browser, base: &str, email: &str) {
    browser.goto(&format!("{base}/#/")).await.unwrap();
    browser.fill("#email", email).await.unwrap();
    browser.fill("#password", "correct horse battery").await.unwrap();
    browser.click("#sign-up").await.unwrap();
    browser.until_text("#who", email).await.unwrap();
}

#[tokio::test]
async fn a_buyer_waits_is_admitted_holds_two_seats_another_sees_them_held_and_she_pays() {
    let Some(s) = scenario(&[("TICKETING_QUEUE_TICK_MS", "200")]).await else { return };
    let driver = Driver::start().await.unwrap();
    let base = s.base_url.trim_end_matches('/').to_owned();
    // A sale that opens in a few seconds, so both buyers wait in its room first.
    let opens = Utc::now() + Duration::seconds(12);
    let (_, schedule) = s.api.schedule_opening(10, 10_000, Some(opens)).await.unwrap();
    let run = uuid::Uuid::new_v4().simple().to_string();
    let (alice, bob) = (driver.browser("alice").await.unwrap(), driver.browser("bob").await.unwrap());
    let alice_email = format!("alice-{run}@example.com");
    sign_up(&alice, &base, &alice_email).await;
    shot(&alice, "concerts").await;
    sign_up(&bob, &base, &format!("bob-{run}@example.com")).await;

    // Alice tops up her wallet.
    alice.goto(&format!("{base}/#/wallet")).await.unwrap();
    alice.fill("#topup-amount", "50000").await.unwrap();
    alice.click("#topup").await.unwrap();
    alice.until_text("#balance", "50,000 won").await.unwrap();

    // Both open the sale before it opens: they wait, then are admitted and see the seat map.
    for b in [&alice, &bob] {
        b.goto(&format!("{base}/#/sale/{schedule}")).await.unwrap();
    }
    if Utc::now() < opens - Duration::seconds(2) {
        alice.until_text("#queue-status", "WAITING").await.unwrap();
        shot(&alice, "waiting-room").await;
    }
    for b in [&alice, &bob] {
        b.until_text("#queue-status", "ACTIVE").await.unwrap();
        b.find("[data-seat='1'][data-status='AVAILABLE']").await.unwrap();
    }
    assert!(Utc::now() >= opens, "admitted before the sale opened");

    // Alice holds seats 1 and 2; Bob's map shows them held without a reload.
    alice.click("[data-seat='1']").await.unwrap();
    alice.click("[data-seat='2']").await.unwrap();
    shot(&alice, "seat-map").await;
    alice.click("#hold").await.unwrap();
    alice.until_text("#status", "HELD").await.unwrap();
    bob.find("[data-seat='1'][data-status='HELD']").await.unwrap();
    bob.find("[data-seat='2'][data-status='HELD']").await.unwrap();
    shot(&bob, "seat-map-live").await;
    shot(&alice, "reservation-held").await;

    // She pays: CONFIRMED on her page, SOLD on his.
    alice.click("#pay").await.unwrap();
    alice.until_text("#status", "CONFIRMED").await.unwrap();
    bob.find("[data-seat='1'][data-status='SOLD']").await.unwrap();
    shot(&alice, "reservation-confirmed").await;
    alice.goto(&format!("{base}/#/wallet")).await.unwrap();
    alice.until_text("#balance", "30,000 won").await.unwrap();
    shot(&alice, "wallet").await;

    // Bob pays by card: the gateway's page, confirmed there, sends him back to CONFIRMED.
    bob.click("[data-seat='3']").await.unwrap();
    bob.click("#hold").await.unwrap();
    bob.until_text("#status", "HELD").await.unwrap();
    bob.click("#pay-card").await.unwrap();
    bob.find("#confirm").await.unwrap();
    shot(&bob, "card-checkout").await;
    bob.click("#confirm").await.unwrap();
    bob.until_text("#status", "CONFIRMED").await.unwrap();

    // An organizer sees the concert with its schedule, and the ranking.
    let organizer = driver.browser("organizer").await.unwrap();
    let email = format!("organizer-{run}@example.com");
    sign_up(&organizer, &base, &email).await;
    let me = s
        .api
        .send(
            Method::POST,
            "/sessions",
            None,
            Some(json!({"email": email, "password": "correct horse battery"})),
            &[],
        )
        .await
        .unwrap();
    let id = me.body["user"]["id"].as_str().unwrap().to_owned();
    let promoted = s
        .api
        .send(
            Method::PUT,
            &format!("/users/{id}/role"),
            Some(&s.api.admin()),
            Some(json!({"role": "admin"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(promoted.status, 200, "{promoted:?}");
    // Signed in again, the token carries the new role.
    organizer.click("#sign-out").await.unwrap();
    organizer.fill("#email", &email).await.unwrap();
    organizer.fill("#password", "correct horse battery").await.unwrap();
    organizer.click("#sign-in").await.unwrap();
    organizer.goto(&format!("{base}/#/organizer")).await.unwrap();
    organizer.find(&format!("[data-cancel='{schedule}']")).await.unwrap();
    organizer.until_text(&format!("[data-sales='{schedule}']"), "3 sold, 0 held of 10").await.unwrap();
    organizer.find("#ranking").await.unwrap();
    organizer.find("#dead-letters").await.unwrap();
    shot(&organizer, "organizer").await;

    for b in [alice, bob, organizer] {
        b.close().await.unwrap();
    }
    s.api.leave_all().await.unwrap();
    s.check().await.unwrap();
}
