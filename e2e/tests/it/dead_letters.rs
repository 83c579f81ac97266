//! The dead letters on an operator's screen: what a consumer could not handle is listed with
//! why, replayed (and dead-lettered again while its cause stands), and discarded, through the
//! ingress, with an admin's token.

use crate::scenario;
use reqwest::Method;
use serde_json::Value;

/// The dead letters about messages published with `marker` in their body.
async fn letters_of(s: &crate::Scenario, admin: &str, marker: &str) -> Vec<Value> {
    let all = s.api.send(Method::GET, "/dead-letters?limit=200", Some(admin), None, &[]).await.unwrap();
    assert_eq!(all.status, 200, "{all:?}");
    let mut found = Vec::new();
    for l in all.body["data"].as_array().cloned().unwrap_or_default() {
        let one = s
            .api
            .send(Method::GET, &format!("/dead-letters/{}", l["seq"]), Some(admin), None, &[])
            .await
            .unwrap();
        if one.body["messageBase64"].as_str().is_some_and(|_| one.body.to_string().contains(marker))
            || one.body["message"].to_string().contains(marker)
        {
            found.push(one.body);
        }
    }
    found
}

#[tokio::test]
async fn an_operator_sees_replays_and_discards_a_dead_letter() {
    let Some(s) = scenario(&[]).await else { return };
    let admin = s.api.admin();
    let buyer = s.api.token(contracts::UserId::new());
    let refused = s.api.send(Method::GET, "/dead-letters", Some(&buyer), None, &[]).await.unwrap();
    assert_eq!(refused.status, 403, "{refused:?}");

    // A message the seat service cannot read: it is dead-lettered with its reason.
    let marker = format!("garbage-{}", uuid::Uuid::new_v4().simple());
    s.publish_raw("reservation.0.requested", &marker, format!("{{\"{marker}\": true}}").into_bytes())
        .await
        .unwrap();
    let first = {
        let mut found = Vec::new();
        for _ in 0..500 {
            found = letters_of(&s, &admin, &marker).await;
            if !found.is_empty() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(found.len(), 1, "{found:?}");
        found.remove(0)
    };
    assert_eq!(first["consumer"], "seat__RESERVATION__requested", "{first}");
    assert!(first["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(first["replayable"], true);

    // Replayed: the cause stands, so the seat service dead-letters it again, as a new letter.
    let replayed = s
        .api
        .send(Method::POST, &format!("/dead-letters/{}/replay", first["seq"]), Some(&admin), None, &[])
        .await
        .unwrap();
    assert_eq!(replayed.status, 200, "{replayed:?}");
    let mut again = Vec::new();
    for _ in 0..500 {
        again = letters_of(&s, &admin, &marker).await;
        if again.first().is_some_and(|l| l["seq"] != first["seq"]) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(again.len(), 1, "{again:?}");
    assert_ne!(again[0]["seq"], first["seq"]);

    // Discarded: gone, and the system is clean again.
    let path = format!("/dead-letters/{}", again[0]["seq"]);
    assert_eq!(s.api.send(Method::DELETE, &path, Some(&admin), None, &[]).await.unwrap().status, 204);
    assert!(letters_of(&s, &admin, &marker).await.is_empty());
    s.check().await.unwrap();
}
