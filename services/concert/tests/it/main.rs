//! The catalog against real Postgres and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod openapi;

use chrono::{Duration as Span, Utc};
use contracts::{ConcertCreated, ConcertUpdated, ScheduleCreated, SeatNo, UserId, Won};
use serde_json::{Value, json};
use std::time::Duration;
use testkit::{TestEnv, eventually};

struct Catalog {
    env: TestEnv,
    url: String,
    http: reqwest::Client,
    admin: String,
}

impl Catalog {
    async fn start() -> Self {
        let env = TestEnv::new().await.unwrap();
        let url = env.spawn_service::<concert::Catalog>().await.unwrap();
        let admin = env.admin_token();
        Self { env, url, http: reqwest::Client::new(), admin }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn create_concert(&self, name: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/concerts",
                Some(&self.admin),
                Some(json!({"name": name, "host": "H"})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }
}

fn future() -> String {
    (Utc::now() + Span::days(3)).to_rfc3339()
}

#[tokio::test]
async fn admins_create_and_rename_concerts_everyone_browses_them() {
    let c = Catalog::start().await;
    let ids = [c.create_concert("A").await, c.create_concert("B").await, c.create_concert("C").await];

    let (_, page1) = c.send(reqwest::Method::GET, "/concerts?limit=2", None, None).await;
    assert_eq!(page1["hasMore"], true);
    let last = page1["data"][1]["id"].as_str().unwrap();
    let (_, page2) =
        c.send(reqwest::Method::GET, &format!("/concerts?limit=2&startingAfter={last}"), None, None).await;
    assert_eq!(page2["hasMore"], false);
    let seen: Vec<&str> = page1["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["data"].as_array().unwrap())
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, ids.iter().map(String::as_str).collect::<Vec<_>>());

    let (status, renamed) = c
        .send(
            reqwest::Method::PUT,
            &format!("/concerts/{}", ids[0]),
            Some(&c.admin),
            Some(json!({"name": "A2", "host": "H2"})),
        )
        .await;
    assert_eq!((status, renamed["name"].as_str()), (200, Some("A2")));
    let (_, one) = c.send(reqwest::Method::GET, &format!("/concerts/{}", ids[0]), None, None).await;
    assert_eq!(one["host"], "H2");

    eventually("catalog events", Duration::from_secs(10), || async {
        let created = c.env.events_of::<ConcertCreated>().await.unwrap();
        let updated = c.env.events_of::<ConcertUpdated>().await.unwrap();
        (created.len() == 3 && updated.len() == 1 && updated[0].name == "A2").then_some(())
    })
    .await;
}

#[tokio::test]
async fn schedules_announce_their_seats_and_prices() {
    let c = Catalog::start().await;
    let concert = c.create_concert("Rock").await;
    let path = format!("/concerts/{concert}/schedules");
    let (status, uniform) = c
        .send(
            reqwest::Method::POST,
            &path,
            Some(&c.admin),
            Some(json!({"startsAt": future(), "price": 50000})),
        )
        .await;
    assert_eq!((status, uniform["seatCount"].as_i64()), (201, Some(50)));
    let (status, listed) = c
        .send(
            reqwest::Method::POST,
            &path,
            Some(&c.admin),
            Some(json!({"startsAt": future(), "seats": [{"seatNo": 2, "price": 70000}, {"seatNo": 1, "price": 90000}]})),
        )
        .await;
    assert_eq!((status, listed["seatCount"].as_i64()), (201, Some(2)));

    let (_, list) = c.send(reqwest::Method::GET, &path, None, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 2);
    let created = eventually("two ScheduleCreated", Duration::from_secs(10), || async {
        let s = c.env.events_of::<ScheduleCreated>().await.unwrap();
        (s.len() == 2).then_some(s)
    })
    .await;
    assert_eq!(created[0].seats.len(), 50);
    assert!(created[0].seats.iter().all(|s| s.price == Won(50_000)));
    assert_eq!(
        created[1].seats.iter().map(|s| (s.seat_no, s.price)).collect::<Vec<_>>(),
        vec![(SeatNo(1), Won(90_000)), (SeatNo(2), Won(70_000))]
    );
}

#[tokio::test]
async fn bad_catalog_requests_get_problems_and_change_nothing() {
    let c = Catalog::start().await;
    let concert = c.create_concert("Jazz").await;
    let user = c.env.user_token(UserId::new());
    let sched = format!("/concerts/{concert}/schedules");
    let post = reqwest::Method::POST;
    let cases: Vec<(reqwest::Method, String, Option<&str>, Value, u16)> = vec![
        (post.clone(), "/concerts".into(), None, json!({"name": "X", "host": "H"}), 401),
        (post.clone(), "/concerts".into(), Some(&user), json!({"name": "X", "host": "H"}), 403),
        (post.clone(), "/concerts".into(), Some(&c.admin), json!({"name": " ", "host": "H"}), 400),
        (post.clone(), "/concerts".into(), Some(&c.admin), json!({"name": "X", "host": "H", "x": 1}), 400),
        (post.clone(), "/concerts".into(), Some(&c.admin), json!({"name": "X"}), 400),
        (
            reqwest::Method::PUT,
            format!("/concerts/{}", uuid::Uuid::now_v7()),
            Some(&c.admin),
            json!({"name": "X", "host": "H"}),
            404,
        ),
        (
            reqwest::Method::PUT,
            "/concerts/not-a-uuid".into(),
            Some(&c.admin),
            json!({"name": "X", "host": "H"}),
            400,
        ),
        (post.clone(), sched.clone(), Some(&user), json!({"startsAt": future(), "price": 1}), 403),
        (
            post.clone(),
            sched.clone(),
            Some(&c.admin),
            json!({"startsAt": (Utc::now() - Span::days(1)).to_rfc3339(), "price": 1}),
            422,
        ),
        (
            post.clone(),
            sched.clone(),
            Some(&c.admin),
            json!({"startsAt": future(), "seatCount": 51, "price": 1}),
            400,
        ),
        (post.clone(), sched.clone(), Some(&c.admin), json!({"startsAt": future(), "price": -1}), 400),
        (
            post.clone(),
            sched.clone(),
            Some(&c.admin),
            json!({"startsAt": future(), "seats": [{"seatNo": 1, "price": 1}, {"seatNo": 1, "price": 2}]}),
            422,
        ),
        (post.clone(), sched.clone(), Some(&c.admin), json!({"startsAt": "tomorrow", "price": 1}), 400),
        (
            post.clone(),
            format!("/concerts/{}/schedules", uuid::Uuid::now_v7()),
            Some(&c.admin),
            json!({"startsAt": future(), "price": 1}),
            404,
        ),
    ];
    for (method, path, token, body, expected) in cases {
        let (status, problem) = c.send(method.clone(), &path, token, Some(body.clone())).await;
        assert_eq!(status, expected, "{method} {path} {body}: {problem}");
        assert!(problem["code"].is_string(), "{problem}");
    }
    let (status, _) = c.send(reqwest::Method::GET, "/concerts?limit=0", None, None).await;
    assert_eq!(status, 400);
    let (_, list) = c.send(reqwest::Method::GET, "/concerts", None, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let (_, schedules) = c.send(reqwest::Method::GET, &sched, None, None).await;
    assert!(schedules["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn the_demo_seed_creates_bookable_schedules_once() {
    let c = Catalog::start().await;
    let outbox = messaging::Outbox::new(concert::SCHEMA, c.env.ns.clone());
    let (concert, schedules) = concert::seed_demo(&c.env.db, &outbox).await.unwrap();
    assert_eq!(schedules.len(), 2);
    let again = concert::seed_demo(&c.env.db, &outbox).await.unwrap();
    assert_eq!(again, (concert, schedules));
    let (_, list) = c.send(reqwest::Method::GET, "/concerts", None, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    let created = eventually("two ScheduleCreated", Duration::from_secs(10), || async {
        let s = c.env.events_of::<ScheduleCreated>().await.unwrap();
        (s.len() == 2).then_some(s)
    })
    .await;
    assert!(created.iter().all(|s| s.seats.len() == 50));
}

#[tokio::test]
async fn organizers_move_and_cancel_schedules_and_each_change_is_announced_once() {
    let c = Catalog::start().await;
    let concert = c.create_concert("Jazz").await;
    let path = format!("/concerts/{concert}/schedules");
    let opens = (Utc::now() + Span::days(1)).to_rfc3339();
    let (status, created) = c
        .send(
            reqwest::Method::POST,
            &path,
            Some(&c.admin),
            Some(json!({"startsAt": future(), "price": 1000, "seatCount": 2, "salesOpenAt": opens})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["salesOpenAt"].is_string() && created["cancelledAt"].is_null(), "{created}");
    let one = format!("{path}/{}", created["id"].as_str().unwrap());
    let (status, read) = c.send(reqwest::Method::GET, &one, None, None).await;
    assert_eq!((status, &read), (200, &created));

    // Moved: a later start, on sale at once. A sale opening after the start is refused.
    let later = (Utc::now() + Span::days(9)).to_rfc3339();
    let user = c.env.user_token(UserId::new());
    let (status, _) = c.send(reqwest::Method::PUT, &one, Some(&user), Some(json!({"startsAt": later}))).await;
    assert_eq!(status, 403);
    let (status, refused) = c
        .send(
            reqwest::Method::PUT,
            &one,
            Some(&c.admin),
            Some(json!({"startsAt": future(), "salesOpenAt": later})),
        )
        .await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("SCHEDULE_REFUSED")), "{refused}");
    let (status, moved) =
        c.send(reqwest::Method::PUT, &one, Some(&c.admin), Some(json!({"startsAt": later}))).await;
    assert_eq!(status, 200, "{moved}");
    assert!(moved["salesOpenAt"].is_null(), "{moved}");

    // Cancelled, twice: the same answer, one announcement; then it cannot be moved.
    let cancel = format!("{one}/cancellation");
    let (status, cancelled) = c.send(reqwest::Method::POST, &cancel, Some(&c.admin), None).await;
    assert_eq!(status, 200, "{cancelled}");
    assert!(cancelled["cancelledAt"].is_string(), "{cancelled}");
    let (status, again) = c.send(reqwest::Method::POST, &cancel, Some(&c.admin), None).await;
    assert_eq!((status, &again), (200, &cancelled));
    let (status, refused) =
        c.send(reqwest::Method::PUT, &one, Some(&c.admin), Some(json!({"startsAt": later}))).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("SCHEDULE_CANCELLED")), "{refused}");
    let (status, _) = c
        .send(
            reqwest::Method::POST,
            &format!("{path}/{}/cancellation", uuid::Uuid::now_v7()),
            Some(&c.admin),
            None,
        )
        .await;
    assert_eq!(status, 404);

    let (changed, cancelled) = eventually("the announcements", Duration::from_secs(10), || async {
        let changed = c.env.events_of::<contracts::ScheduleChanged>().await.unwrap();
        let cancelled = c.env.events_of::<contracts::ScheduleCancelled>().await.unwrap();
        (!changed.is_empty() && !cancelled.is_empty()).then_some((changed, cancelled))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.env.events_of::<contracts::ScheduleChanged>().await.unwrap().len(), 1);
    assert_eq!(c.env.events_of::<contracts::ScheduleCancelled>().await.unwrap().len(), 1);
    assert_eq!(changed[0].sales_open_at, None);
    assert_eq!(cancelled[0].schedule_id.to_string(), created["id"].as_str().unwrap());
}
