//! Accounts end to end: a buyer opens an account, signs in, and the token the user service
//! signed is the buyer's identity at every other service; blocking the account reaches the saga
//! as an event.

use crate::scenario;
use contracts::UserId;
use e2e::api::id_of;
use reqwest::Method;
use serde_json::json;

/// An account signs up and in, tops up and joins the waiting room with its session token, holds
/// seats; blocked, it cannot sign in, its hold fails (USER_BLOCKED) and frees the seats, and the
/// waiting room lets it join no room, so it starts no other reservation.
#[tokio::test]
async fn a_signed_in_buyer_books_until_an_admin_blocks_the_account() {
    let Some(s) = scenario(&[]).await else { return };
    // Unique on a shared deployment.
    let email = format!("buyer-{}@example.com", uuid::Uuid::now_v7());
    let credentials = json!({"email": email, "password": "correct horse battery"});
    let opened = s.api.send(Method::POST, "/users", None, Some(credentials.clone()), &[]).await.unwrap();
    assert_eq!(opened.status, 201, "{:?}", opened);
    let user = opened.body["id"].as_str().unwrap().to_owned();
    let again = s.api.send(Method::POST, "/users", None, Some(credentials.clone()), &[]).await.unwrap();
    assert_eq!((again.status, again.body["code"].as_str()), (409, Some("EMAIL_TAKEN")), "{:?}", again);

    let session = s.api.send(Method::POST, "/sessions", None, Some(credentials.clone()), &[]).await.unwrap();
    assert_eq!(session.status, 201, "{:?}", session);
    let token = session.body["token"].as_str().unwrap().to_owned();

    let charged = s
        .api
        .send(Method::POST, "/wallets/me/charges", Some(&token), Some(json!({"amount": 20_000})), &[])
        .await
        .unwrap();
    assert_eq!((charged.status, charged.body["balance"].as_i64()), (200, Some(20_000)), "{:?}", charged);
    let wallet = s.api.send(Method::GET, "/wallets/me", Some(&token), None, &[]).await.unwrap();
    assert_eq!(wallet.body["userId"], json!(user), "{:?}", wallet);
    let joined = s.api.send(Method::POST, "/queue/tokens", Some(&token), None, &[]).await.unwrap();
    assert!(joined.status == 201 || joined.status == 200, "{:?}", joined);
    let queue = joined.body["token"].as_str().unwrap().to_owned();
    let left =
        s.api.send(Method::DELETE, &format!("/queue/tokens/{queue}"), Some(&token), None, &[]).await.unwrap();
    assert!(left.status < 300, "{:?}", left);

    // The account holds two seats (the scenario's own client mints tokens for the same id)...
    let (_, schedule) = s.api.schedule(10, 1_000).await.unwrap();
    let id = UserId(user.parse().unwrap());
    let held = s.api.reserve(id, schedule, &[1, 2], 10).await.unwrap();
    assert_eq!(held.body["status"], "HELD", "{:?}", held);
    let reservation = id_of(&held).unwrap();

    // ...and an admin blocks it: the password no longer signs in, the hold fails and its seats
    // are free again, and the account starts no other reservation.
    let blocked = s
        .api
        .send(
            Method::PUT,
            &format!("/users/{user}/status"),
            Some(&s.api.admin()),
            Some(json!({"status": "BLOCKED"})),
            &[],
        )
        .await
        .unwrap();
    assert_eq!((blocked.status, blocked.body["status"].as_str()), (200, Some("BLOCKED")), "{:?}", blocked);
    let refused = s.api.send(Method::POST, "/sessions", None, Some(credentials), &[]).await.unwrap();
    assert_eq!((refused.status, refused.body["code"].as_str()), (403, Some("USER_BLOCKED")), "{:?}", refused);
    let failed = s.api.wait_status(id, reservation, "FAILED").await.unwrap();
    assert_eq!(failed["failureReason"], "USER_BLOCKED", "{failed}");
    s.api
        .eventually("seats 1 and 2 released", || async {
            let seats = s.api.seats(schedule).await?;
            Ok((seats[&1].as_str(), seats[&2].as_str()) == ("AVAILABLE", "AVAILABLE"))
        })
        .await
        .unwrap();
    // The waiting room takes her place away and lets her join no room (once it has heard of the
    // block, as the saga has), so she books nothing.
    let bearer = s.api.token(id);
    s.api
        .eventually("the waiting room to refuse her", || async {
            let join = s.api.send(Method::POST, "/queue/tokens", Some(&bearer), None, &[]).await?;
            Ok(join.status == 403 && join.body["code"] == "USER_BLOCKED")
        })
        .await
        .unwrap();
    s.api.leave_all().await.unwrap();
    s.check().await.unwrap();
}
