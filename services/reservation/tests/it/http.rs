use crate::Service;
use chrono::{Duration as Span, Utc};
use contracts::{Bucket, ReservationId, ScheduleId, UserId};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn a_request_is_accepted_pending_and_announced() {
    let s = Service::start().await;
    let user = UserId::new();
    let (status, body) = s
        .call(Method::POST, "/reservations", user, Some(json!({"scheduleId": s.schedule, "seatNos": [3, 1]})))
        .await;
    assert_eq!(status, 202);
    assert_eq!(body["status"], "PENDING");
    let id: ReservationId = body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(id.bucket(), Bucket::of(s.schedule), "the id names its schedule's partition key");
    let r = s.get(user, id).await;
    assert_eq!(r["seatNos"], json!([1, 3]));
    assert_eq!(r["concertId"], json!(s.concert));
    assert_eq!(r["timeline"][0]["type"], "ReservationRequested");
    let requested =
        testkit::eventually("ReservationRequested", std::time::Duration::from_secs(10), || async {
            s.requested().await.pop()
        })
        .await;
    assert_eq!((requested.reservation_id, requested.user_id), (id, user));
}

#[tokio::test]
async fn bad_requests_get_problems_and_create_nothing() {
    let s = Service::start().await;
    let user = UserId::new();
    let cases = [
        (json!({"scheduleId": s.schedule, "seatNos": []}), 400),
        (json!({"scheduleId": s.schedule, "seatNos": [1, 2, 3, 4, 5]}), 400),
        (json!({"scheduleId": s.schedule, "seatNos": [2, 2]}), 400),
        (json!({"scheduleId": s.schedule, "seatNos": [51]}), 400),
        (json!({"scheduleId": s.schedule, "seatNos": [0]}), 400),
        (json!({"scheduleId": s.schedule, "seatNos": ["1"]}), 400),
        (json!({"scheduleId": s.schedule, "seatNos": [1], "price": 0}), 400),
        (json!({"scheduleId": "nope", "seatNos": [1]}), 400),
        (json!({"seatNos": [1]}), 400),
        (json!({"scheduleId": ScheduleId::new(), "seatNos": [1]}), 404),
    ];
    for (body, expected) in cases {
        let (status, problem) = s.call(Method::POST, "/reservations", user, Some(body.clone())).await;
        assert_eq!(status, expected, "{body}: {problem}");
        assert!(problem["code"].is_string());
    }
    let (_, list) = s.call(Method::GET, "/reservations", user, None).await;
    assert!(list["data"].as_array().unwrap().is_empty());
    assert!(s.requested().await.is_empty());
}

/// A replica that keeps one of two partitions (`TICKETING_PARTITIONS`) answers for the schedules
/// of its partition, and a request about another's schedule, or one of its reservations, 421,
/// naming the partition that keeps it; nothing is made.
#[tokio::test]
async fn a_request_for_a_schedule_of_another_partition_is_misdirected_and_makes_nothing() {
    let two = contracts::Partitions::new(2).unwrap();
    // The replica keeps partition 1: not the one a partition count of 1 would give everything.
    let mine = 1;
    let schedule = std::iter::repeat_with(ScheduleId::new).find(|s| two.of(Bucket::of(*s)) == mine).unwrap();
    let other = std::iter::repeat_with(ScheduleId::new).find(|s| two.of(Bucket::of(*s)) != mine).unwrap();
    let mut env = testkit::TestEnv::new().await.unwrap();
    // The test publishes the schedule as the catalog of a deployment of two partitions would.
    env.ns = env.ns.clone().with_partitions(two);
    let redis = env.redis.clone();
    let kept = mine.to_string();
    let overrides = [("TICKETING_PARTITION_COUNT", "2"), ("TICKETING_PARTITIONS", kept.as_str())];
    let s = Service::start_for(env, redis, &overrides, schedule).await;
    let user = UserId::new();

    let (status, body) = s
        .call(Method::POST, "/reservations", user, Some(json!({"scheduleId": schedule, "seatNos": [1]})))
        .await;
    assert_eq!(status, 202, "{body}");
    let (status, problem) =
        s.call(Method::POST, "/reservations", user, Some(json!({"scheduleId": other, "seatNos": [1]}))).await;
    assert_eq!((status, problem["code"].as_str()), (421, Some("MISDIRECTED_REQUEST")), "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains(&format!("is kept by partition {};", 1 - mine)), "{detail}");
    let elsewhere = ReservationId::for_schedule(other);
    for (method, path) in [
        (Method::GET, format!("/reservations/{elsewhere}")),
        (Method::GET, format!("/reservations/{elsewhere}/events")),
        (Method::POST, format!("/reservations/{elsewhere}/payment")),
        (Method::DELETE, format!("/reservations/{elsewhere}")),
    ] {
        let (status, problem) = s.call(method.clone(), &path, user, None).await;
        assert_eq!(status, 421, "{method} {path}: {problem}");
    }
    let (_, list) = s.call(Method::GET, "/reservations", user, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "only the reservation of its own partition");
}

#[tokio::test]
async fn other_users_reservations_are_invisible() {
    let s = Service::start().await;
    let (owner, other) = (UserId::new(), UserId::new());
    let id = s.held(owner, 1, Span::minutes(5)).await;
    for (method, path) in [
        (Method::GET, format!("/reservations/{id}")),
        (Method::POST, format!("/reservations/{id}/payment")),
        (Method::DELETE, format!("/reservations/{id}")),
    ] {
        let (status, problem) = s.call(method.clone(), &path, other, None).await;
        assert_eq!(status, 404, "{method} {path}: {problem}");
    }
    assert_eq!(s.get(owner, id).await["status"], "HELD");
    let anonymous = s.http.get(format!("{}/reservations/{id}", s.url)).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_repeated_idempotency_key_makes_one_reservation() {
    let s = Service::start().await;
    let user = UserId::new();
    let body = json!({"scheduleId": s.schedule, "seatNos": [9]});
    let key = [("Idempotency-Key", "r-1")];
    let (a, first) = s.call_with(Method::POST, "/reservations", user, Some(body.clone()), &key).await;
    let (b, second) = s.call_with(Method::POST, "/reservations", user, Some(body), &key).await;
    assert_eq!((a, b), (202, 202));
    assert_eq!(first["id"], second["id"]);
    let (status, _) = s
        .call_with(
            Method::POST,
            "/reservations",
            user,
            Some(json!({"scheduleId": s.schedule, "seatNos": [8]})),
            &key,
        )
        .await;
    assert_eq!(status, 422);
    let (_, list) = s.call(Method::GET, "/reservations", user, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
}

/// Twins sent at once (a client retrying before its first request was answered): each answers
/// as the one that went through, whichever of them that was.
#[tokio::test]
async fn twins_sent_at_once_with_one_key_make_one_reservation_and_one_payment() {
    // Without the rate limit, so that every twin reaches the write.
    let s = Service::start_with(&[("TICKETING_RATE_PER_USER", "0")]).await;
    let user = UserId::new();
    let body = json!({"scheduleId": s.schedule, "seatNos": [6]});
    // Any visible ASCII: the key travels in the statement's JSON input.
    let key = [("Idempotency-Key", r#"twins"'\{-1"#)];
    let twins = (0..8).map(|_| s.call_with(Method::POST, "/reservations", user, Some(body.clone()), &key));
    let answers = futures::future::join_all(twins).await;
    for (status, answer) in &answers {
        assert_eq!((*status, &answer["id"]), (202, &answers[0].1["id"]), "{answers:?}");
    }
    let id: ReservationId = answers[0].1["id"].as_str().unwrap().parse().unwrap();
    let (_, list) = s.call(Method::GET, "/reservations", user, None).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");

    s.seats_held(id, &[6], Utc::now() + Span::minutes(5)).await;
    s.wait_status(user, id, "HELD").await;
    let pay = format!("/reservations/{id}/payment");
    let key = [("Idempotency-Key", "twins-pay")];
    let twins = (0..8).map(|_| s.call_with(Method::POST, &pay, user, None, &key));
    let answers = futures::future::join_all(twins).await;
    for (status, answer) in &answers {
        assert_eq!((*status, answer), (202, &json!({"id": id, "status": "PAYING"})), "{answers:?}");
    }
    let asked = || async { s.env.events_of::<contracts::PaymentRequested>().await.unwrap().len() };
    let wait = std::time::Duration::from_secs(10);
    testkit::eventually("its payment request", wait, || async { (asked().await == 1).then_some(()) }).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(asked().await, 1, "one payment asked for");
}

#[tokio::test]
async fn prefer_wait_answers_with_the_settled_reservation() {
    let s = Service::start().await;
    let user = UserId::new();
    let played = async {
        let r = testkit::eventually("a request", std::time::Duration::from_secs(10), || async {
            s.requested().await.pop()
        })
        .await;
        s.seats_held(r.reservation_id, &[4], Utc::now() + Span::minutes(5)).await;
    };
    let asked = s.call_with(
        Method::POST,
        "/reservations",
        user,
        Some(json!({"scheduleId": s.schedule, "seatNos": [4]})),
        &[("Prefer", "wait=8")],
    );
    let ((status, body), ()) = tokio::join!(asked, played);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "HELD");
    assert_eq!(body["amount"], 1000);
    // Handed over by the consumer that settled it, not read: the same as the stored one.
    let id = body["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(body, s.get(user, id).await);
    assert_eq!(body["timeline"].as_array().map(Vec::len), Some(2), "{body}");

    // Nothing settles another one: the wait ends with 202 and the reservation as it is.
    let (status, body) = s
        .call_with(
            Method::POST,
            "/reservations",
            UserId::new(),
            Some(json!({"scheduleId": s.schedule, "seatNos": [5]})),
            &[("Prefer", "wait=1")],
        )
        .await;
    assert_eq!((status, body["status"].as_str()), (202, Some("PENDING")));
}

#[tokio::test]
async fn own_reservations_are_listed_newest_first_across_pages() {
    let s = Service::start().await;
    let user = UserId::new();
    let mut ids = Vec::new();
    for seat in 1..=5 {
        // A user has one live reservation of a schedule: each fails before the next is asked for.
        let id = s.reserve(user, &[seat]).await;
        s.seats_rejected(id).await;
        s.wait_status(user, id, "FAILED").await;
        ids.push(id.to_string());
    }
    s.reserve(UserId::new(), &[6]).await;
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (_, page) = s.call(Method::GET, &format!("/reservations?limit=2{cursor}"), user, None).await;
        for r in page["data"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
        if page["hasMore"] == false {
            break;
        }
        cursor = format!("&startingAfter={}", seen.last().unwrap());
    }
    ids.reverse();
    assert_eq!(seen, ids);
}
