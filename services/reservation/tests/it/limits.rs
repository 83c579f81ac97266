//! The per-user limits: one live reservation per user and a share of a schedule's seats, a pace,
//! and none for a blocked user.

use super::*;

/// The detail of a `LIMIT_REACHED` answer, after checking that it is one.
fn limit_reached((status, body): &(u16, Value)) -> &str {
    assert_eq!((*status, body["code"].as_str()), (409, Some("LIMIT_REACHED")), "{body}");
    body["detail"].as_str().unwrap()
}

#[tokio::test]
async fn fifty_racing_requests_of_one_user_make_one_reservation() {
    // Without the rate limit (tested below), so that every request reaches the write.
    let s = Service::start_with(&[("TICKETING_RATE_PER_USER", "0")]).await;
    let user = UserId::new();
    // Each asks for a seat of its own, so only the per-user limit can turn them away; half carry
    // an Idempotency-Key (their statements also keep their answers), half do not.
    let service = &s;
    let ask = move |seat: i32| async move {
        let body = json!({"scheduleId": service.schedule, "seatNos": [seat]});
        let key = format!("limits-{seat}-{}", uuid::Uuid::new_v4());
        let headers: &[(&str, &str)] = if seat % 2 == 0 { &[("Idempotency-Key", &key)] } else { &[] };
        service.call_with(Method::POST, "/reservations", user, Some(body), headers).await
    };
    let answers = futures::future::join_all((1..=50).map(ask)).await;

    assert_eq!(answers.iter().filter(|(status, _)| *status == 202).count(), 1, "{answers:?}");
    for answer in answers.iter().filter(|(status, _)| *status != 202) {
        assert!(limit_reached(answer).contains("live reservation"), "{answer:?}");
    }
    let (_, mine) = s.call(Method::GET, "/reservations", user, None).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 1, "{mine}");
    eventually("its ReservationRequested", Duration::from_secs(10), || async {
        (!s.requested().await.is_empty()).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.requested().await.len(), 1, "one saga started");
}

#[tokio::test]
async fn a_user_owns_at_most_their_share_of_a_schedule_sold_seats_included() {
    let s = Service::start_with(&[("TICKETING_MAX_SEATS_PER_USER", "2")]).await;
    let user = UserId::new();
    let ask = |seats: &[i32]| {
        let body = json!({"scheduleId": s.schedule, "seatNos": seats});
        s.call(Method::POST, "/reservations", user, Some(body))
    };
    let detail = limit_reached(&ask(&[1, 2, 3]).await).to_owned();
    assert!(detail.contains("at most 2 seats"), "{detail}");

    // One seat bought...
    let sold = s.held(user, 1, Span::minutes(5)).await;
    let (status, body) = s.call(Method::POST, &format!("/reservations/{sold}/payment"), user, None).await;
    assert_eq!(status, 202, "{body}");
    s.paid(sold, user).await;
    s.wait_status(user, sold, "CONFIRMED").await;
    // ...leaves one to ask for, not two.
    let detail = limit_reached(&ask(&[2, 3]).await).to_owned();
    assert!(detail.contains("you have 1 and asked for 2"), "{detail}");
    let (status, body) = ask(&[2]).await;
    assert_eq!(status, 202, "{body}");
    let live: ReservationId = body["id"].as_str().unwrap().parse().unwrap();
    // While that one is live, nothing more; once it is cancelled, the share is still used up by
    // nothing but the sold seat, so one seat may be asked for again.
    assert!(limit_reached(&ask(&[3]).await).contains("live reservation"));
    s.seats_held(live, &[2], Utc::now() + Span::minutes(5)).await;
    s.wait_status(user, live, "HELD").await;
    assert!(limit_reached(&ask(&[3]).await).contains("live reservation"));
    let (status, body) = s.call(Method::DELETE, &format!("/reservations/{live}"), user, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")), "{body}");
    let (status, body) = ask(&[3]).await;
    assert_eq!(status, 202, "{body}");

    // Refused requests started nothing; another user is not limited by this one's share.
    let mine = || async {
        let seats =
            s.requested().await.iter().filter(|e| e.user_id == user).map(|e| e.seat_nos[0].0).collect();
        Some(seats).filter(|seats: &Vec<i32>| seats.len() >= 3)
    };
    let asked = eventually("the three reservations announced", Duration::from_secs(10), mine).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!((asked, mine().await.unwrap()), (vec![1, 2, 3], vec![1, 2, 3]));
    let (status, body) = s
        .call(
            Method::POST,
            "/reservations",
            UserId::new(),
            Some(json!({"scheduleId": s.schedule, "seatNos": [4, 5]})),
        )
        .await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn the_share_is_a_setting_that_must_be_a_positive_count() {
    for bad in ["0", "four", "-1"] {
        let vars = [("TICKETING_MAX_SEATS_PER_USER", bad)];
        let err = platform::config::read_settings::<reservation::Limits>(&|k| {
            vars.iter().find(|(name, _)| *name == k).map(|(_, v)| v.to_string())
        })
        .unwrap_err();
        assert!(err.to_string().contains("TICKETING_MAX_SEATS_PER_USER"), "{bad}: {err}");
    }
}

#[tokio::test]
async fn a_user_asking_faster_than_a_person_is_rate_limited_and_nothing_is_made() {
    let s = Service::start_with(&[("TICKETING_RATE_PER_USER", "2")]).await;
    let user = UserId::new();
    // A burst of twice the rate passes (one hold, the rest refused by the per-user limits);
    // the next request is turned away before it reaches the service, with when to retry.
    let mut answers = Vec::new();
    for seat in 1..=6 {
        let body = json!({"scheduleId": s.schedule, "seatNos": [seat]});
        let res = s
            .http
            .post(format!("{}/reservations", s.url))
            .bearer_auth(s.env.user_token(user))
            .json(&body)
            .send()
            .await
            .unwrap();
        let retry_after = res.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let kind = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
        answers.push((res.status().as_u16(), retry_after, kind, res.json::<Value>().await.unwrap()));
    }
    let codes: Vec<(u16, &str)> =
        answers.iter().map(|(status, _, _, body)| (*status, body["code"].as_str().unwrap_or("-"))).collect();
    assert_eq!(&codes[..2], [(202, "-"), (409, "LIMIT_REACHED")], "{answers:?}");
    assert!(codes[4..].iter().all(|c| *c == (429, "RATE_LIMITED")), "{answers:?}");
    let (_, retry_after, kind, _) = &answers[5];
    assert!(retry_after.as_deref().is_some_and(|s| s.parse::<u32>().unwrap() >= 1), "{answers:?}");
    assert_eq!(kind.as_deref(), Some("application/problem+json"));
    // Reading is not limited; another user is not limited by this one.
    let (status, mine) = s.call(Method::GET, "/reservations", user, None).await;
    assert_eq!((status, mine["data"].as_array().map(Vec::len)), (200, Some(1)), "{mine}");
    let other = json!({"scheduleId": s.schedule, "seatNos": [9]});
    assert_eq!(s.call(Method::POST, "/reservations", UserId::new(), Some(other)).await.0, 202);
}

#[tokio::test]
async fn many_users_from_one_address_share_its_rate() {
    let s =
        Service::start_with(&[("TICKETING_RATE_PER_USER", "0"), ("TICKETING_RATE_PER_ADDRESS", "3")]).await;
    let mut statuses = Vec::new();
    for seat in 1..=8 {
        let body = json!({"scheduleId": s.schedule, "seatNos": [seat]});
        statuses.push(s.call(Method::POST, "/reservations", UserId::new(), Some(body)).await.0);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 202).count(), 6, "a burst of twice the rate: {statuses:?}");
    assert!(statuses[6..].iter().all(|s| *s == 429), "{statuses:?}");
}

/// Plays the user service: `user`'s status became `status` at `at`.
async fn status_changed(s: &Service, user: UserId, status: UserStatus, at: DateTime<Utc>) {
    let e = Envelope::new("user", user, UserStatusChanged { user_id: user, status, changed_at: at });
    s.env.publish(&e).await.unwrap();
    s.env.wait_handled("reservation", e.id).await;
}

#[tokio::test]
async fn a_blocked_user_loses_a_held_reservation_and_starts_none_until_unblocked() {
    let s = Service::start().await;
    let (user, other) = (UserId::new(), UserId::new());
    let held = s.held(user, 1, Span::minutes(5)).await;
    let theirs = s.held(other, 2, Span::minutes(5)).await;

    let blocked_at = Utc::now();
    status_changed(&s, user, UserStatus::Blocked, blocked_at).await;
    let r = s.wait_status(user, held, "FAILED").await;
    assert_eq!(r["failureReason"], "USER_BLOCKED", "{r}");
    // Its seats are released as for any failure; another user's reservation is untouched.
    eventually("ReservationFailed(USER_BLOCKED)", Duration::from_secs(10), || async {
        let failed = s.env.events_of::<ReservationFailed>().await.unwrap();
        failed
            .iter()
            .any(|f| f.reservation_id == held && f.reason == ReservationFailureReason::UserBlocked)
            .then_some(())
    })
    .await;
    assert_eq!(s.get(other, theirs).await["status"], "HELD");

    let ask = |seat: i32| {
        let body = json!({"scheduleId": s.schedule, "seatNos": [seat]});
        s.call(Method::POST, "/reservations", user, Some(body))
    };
    let (status, body) = ask(3).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("USER_BLOCKED")), "{body}");
    // An older change delivered late does not unblock.
    status_changed(&s, user, UserStatus::Active, blocked_at - Span::seconds(1)).await;
    assert_eq!(ask(3).await.0, 403);
    status_changed(&s, user, UserStatus::Active, blocked_at + Span::seconds(1)).await;
    let (status, body) = ask(3).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_user_starts_no_more_reservations_a_minute_than_the_limit() {
    let s = Service::start_with(&[("TICKETING_MAX_RESERVATIONS_PER_MINUTE", "2")]).await;
    let user = UserId::new();
    let ask = |user: UserId, seat: i32| {
        let body = json!({"scheduleId": s.schedule, "seatNos": [seat]});
        s.call(Method::POST, "/reservations", user, Some(body))
    };
    for seat in [1, 2] {
        let (status, body) = ask(user, seat).await;
        assert_eq!(status, 202, "{body}");
        let id: ReservationId = serde_json::from_value(body["id"].clone()).unwrap();
        // Not live any more, so only the pace can refuse the next one.
        s.seats_rejected(id).await;
        s.wait_status(user, id, "FAILED").await;
    }
    let (status, body) = ask(user, 3).await;
    assert_eq!((status, body["code"].as_str()), (429, Some("VELOCITY_LIMIT")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("at most 2 reservations a minute"), "{body}");
    // Another user's pace is their own.
    assert_eq!(ask(UserId::new(), 3).await.0, 202);
}

#[tokio::test]
async fn the_sweeper_ends_a_reservation_a_block_missed() {
    let s = Service::start().await;
    let user = UserId::new();
    let held = s.held(user, 1, Span::minutes(5)).await;
    // The block committed without seeing the reservation (inserted as the block ran): its row
    // is written as the block's handler writes it, and nothing else.
    use sea_orm::ConnectionTrait;
    s.env
        .db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "INSERT INTO reservation.user_status (user_id, blocked, changed_at) VALUES ($1, true, now())",
            [user.0.into()],
        ))
        .await
        .unwrap();
    let r = s.wait_status(user, held, "FAILED").await;
    assert_eq!(r["failureReason"], "USER_BLOCKED", "{r}");
}
