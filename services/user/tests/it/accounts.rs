//! Sign-up, sign-in, blocking and roles over HTTP; every refusal changes nothing.

use crate::Users;
use reqwest::Method;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn an_account_signs_in_for_a_token_that_other_services_take() {
    let users = Users::start().await;
    let (status, body) =
        users.post("/users", json!({"email": " Ann@Example.com", "password": PASSWORD})).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        (body["email"].as_str(), body["role"].as_str(), body["status"].as_str()),
        (Some("ann@example.com"), Some("user"), Some("ACTIVE"))
    );
    assert!(!body.to_string().contains(PASSWORD) && body.get("passwordHash").is_none(), "{body}");
    let id = body["id"].as_str().unwrap().to_owned();

    // The password is kept as an Argon2id hash, never as itself.
    use sea_orm::ConnectionTrait;
    let row = users
        .env
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT password_hash FROM users.accounts",
        ))
        .await
        .unwrap()
        .unwrap();
    let hash: String = row.try_get("", "password_hash").unwrap();
    assert!(hash.starts_with("$argon2id$") && !hash.contains(PASSWORD), "{hash}");

    let (status, session) = users.sign_in("ANN@example.com", PASSWORD).await;
    assert_eq!(status, 201, "{session}");
    let token = session["token"].as_str().unwrap();
    let claims = users.env.jwt().verify(token).unwrap();
    assert_eq!((claims.sub.0.to_string(), claims.role), (id.clone(), platform::auth::Role::User));
    assert_eq!(session["user"]["id"], json!(id));
    let (status, me) = users.send(Method::GET, "/users/me", token, None).await;
    assert_eq!((status, me["email"].as_str()), (200, Some("ann@example.com")), "{me}");

    // Another service takes it as the account's identity.
    let wallet = users.env.spawn_service::<wallet::Wallet>().await.unwrap();
    let r = users.http.get(format!("{wallet}/wallets/me")).bearer_auth(token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let w: Value = r.json().await.unwrap();
    assert_eq!(w["userId"], json!(id));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_are_answered_alike() {
    let users = Users::start().await;
    users.sign_up("bob@example.com", PASSWORD).await;
    for (email, password) in [
        ("bob@example.com", "wrong horse battery"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
        ("bob@example.com", ""),
    ] {
        let (status, body) = users.sign_in(email, password).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("INVALID_CREDENTIALS")), "{email}: {body}");
        assert_eq!(body["detail"], json!("the email or the password is wrong"));
    }
}

#[tokio::test]
async fn one_account_per_email_and_bad_input_opens_none() {
    let users = Users::start().await;
    users.sign_up("carol@example.com", PASSWORD).await;
    let (status, body) =
        users.post("/users", json!({"email": "CAROL@example.com", "password": "another password"})).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("EMAIL_TAKEN")), "{body}");
    for bad in [
        json!({"email": "dave@example.com", "password": "short"}),
        json!({"email": "dave@example.com", "password": "x".repeat(129)}),
        json!({"email": "dave@", "password": PASSWORD}),
        json!({"email": "dave@example.com"}),
        json!({"email": "dave@example.com", "password": PASSWORD, "role": "admin"}),
        json!({"email": 7, "password": PASSWORD}),
    ] {
        let (status, body) = users.post("/users", bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["code"].as_str().is_some_and(|c| c == "VALIDATION_FAILED" || c == "MALFORMED_JSON"),
            "{body}"
        );
    }
    let r = users.http.post(format!("{}/users", users.url)).body("email=dave").send().await.unwrap();
    assert_eq!(r.status(), 415);
    assert_eq!(users.accounts().await, 1);
}

#[tokio::test]
async fn a_blocked_account_cannot_sign_in_until_an_admin_unblocks_it() {
    let users = Users::start().await;
    let account = users.sign_up("erin@example.com", PASSWORD).await;
    let path = format!("/users/{}/status", account["id"].as_str().unwrap());
    let (_, session) = users.sign_in("erin@example.com", PASSWORD).await;
    let own = session["token"].as_str().unwrap();

    // Only an admin blocks, and only to a status there is.
    let (status, _) = users.send(Method::PUT, &path, own, Some(json!({"status": "BLOCKED"}))).await;
    assert_eq!(status, 403);
    let admin = users.env.admin_token();
    let (status, _) = users.send(Method::PUT, &path, &admin, Some(json!({"status": "GONE"}))).await;
    assert_eq!(status, 400);
    let unknown = format!("/users/{}/status", contracts::UserId::new());
    let (status, body) = users.send(Method::PUT, &unknown, &admin, Some(json!({"status": "BLOCKED"}))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");

    let (status, body) = users.send(Method::PUT, &path, &admin, Some(json!({"status": "BLOCKED"}))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("BLOCKED")), "{body}");
    // Announced once (for the reservation service); blocking it again changes nothing.
    let (status, _) = users.send(Method::PUT, &path, &admin, Some(json!({"status": "BLOCKED"}))).await;
    assert_eq!(status, 200);
    let changes = users.status_changes(1).await;
    assert_eq!(changes[0].user_id.0.to_string(), account["id"].as_str().unwrap());
    assert_eq!(changes[0].status, contracts::UserStatus::Blocked);
    let (status, body) = users.sign_in("erin@example.com", PASSWORD).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("USER_BLOCKED")), "{body}");
    // Without the password, a blocked account looks like any wrong guess.
    let (status, _) = users.sign_in("erin@example.com", "wrong horse battery").await;
    assert_eq!(status, 401);

    let (status, body) = users.send(Method::PUT, &path, &admin, Some(json!({"status": "ACTIVE"}))).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ACTIVE")), "{body}");
    let changes = users.status_changes(2).await;
    assert_eq!(changes[1].status, contracts::UserStatus::Active);
    assert!(changes[1].changed_at > changes[0].changed_at);
    assert_eq!(users.sign_in("erin@example.com", PASSWORD).await.0, 201);
}

#[tokio::test]
async fn an_admin_makes_an_organizer_whose_next_token_is_an_admins() {
    let users = Users::start().await;
    let account = users.sign_up("frank@example.com", PASSWORD).await;
    let id = account["id"].as_str().unwrap();
    let (_, session) = users.sign_in("frank@example.com", PASSWORD).await;
    let before = session["token"].as_str().unwrap();
    let (status, _) = users.send(Method::GET, &format!("/users/{id}"), before, None).await;
    assert_eq!(status, 403);

    let admin = users.env.admin_token();
    let (status, body) =
        users.send(Method::PUT, &format!("/users/{id}/role"), &admin, Some(json!({"role": "admin"}))).await;
    assert_eq!((status, body["role"].as_str()), (200, Some("admin")), "{body}");
    let (_, session) = users.sign_in("frank@example.com", PASSWORD).await;
    let after = session["token"].as_str().unwrap();
    assert_eq!(users.env.jwt().verify(after).unwrap().role, platform::auth::Role::Admin);
    let (status, body) = users.send(Method::GET, &format!("/users/{id}"), after, None).await;
    assert_eq!((status, body["email"].as_str()), (200, Some("frank@example.com")), "{body}");
}
