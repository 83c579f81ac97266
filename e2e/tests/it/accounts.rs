//! Accounts end to end: a buyer opens an account, signs in, and the token the user service
//! signed is the buyer's identity at every other service; a blocked account cannot sign in.

use crate::scenario;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_signed_in_buyer_tops_up_and_joins_the_waiting_room_with_the_session_token() {
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

    // Blocked by an admin: the password no longer signs in.
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
    s.check().await.unwrap();
}
