use crate::Service;
use chrono::{Duration as Span, Utc};
use contracts::{
    PaymentFailureReason, PaymentRequested, ReservationCompleted, ReservationFailed,
    ReservationFailureReason, ReservationId, SeatNo, UserId, Won,
};
use reqwest::Method;
use sea_orm::ConnectionTrait;
use std::time::Duration;
use testkit::{eventually, metric};

#[tokio::test]
async fn held_paid_confirmed() {
    let metrics = platform::http::metrics_handle();
    let s = Service::start().await;
    let user = UserId::new();
    let id = s.reserve(user, &[1, 2]).await;
    let until = Utc::now() + Span::minutes(5);
    s.seats_held(id, &[1, 2], until).await;
    let held = s.wait_status(user, id, "HELD").await;
    assert_eq!(held["amount"], 2000);

    let (status, body) = s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("PAYING")));
    let asked = eventually("PaymentRequested", Duration::from_secs(10), || async {
        s.env.events_of::<PaymentRequested>().await.unwrap().pop()
    })
    .await;
    assert_eq!((asked.reservation_id, asked.user_id, asked.amount), (id, user, Won(2000)));
    assert_eq!(asked.pay_by.timestamp_millis(), until.timestamp_millis(), "payBy is the hold deadline");

    s.paid(id, user).await;
    let done = s.wait_status(user, id, "CONFIRMED").await;
    let completed = eventually("ReservationCompleted", Duration::from_secs(10), || async {
        s.env.events_of::<ReservationCompleted>().await.unwrap().pop()
    })
    .await;
    assert_eq!(completed.seat_nos, vec![SeatNo(1), SeatNo(2)]);
    assert_eq!(completed.concert_id, s.concert);
    let timeline: Vec<&str> =
        done["timeline"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        timeline,
        vec![
            "ReservationRequested",
            "SeatReserved",
            "PaymentRequested",
            "PaymentCompleted",
            "ReservationCompleted"
        ]
    );
    // The saga's end is counted, with how long it took.
    let text = metrics.render();
    assert!(metric(&text, r#"saga_outcomes_total{status="CONFIRMED",reason="none"}"#) >= Some(1.0), "{text}");
    assert!(metric(&text, r#"saga_duration_seconds_count{status="CONFIRMED"}"#) >= Some(1.0), "{text}");
}

#[tokio::test]
async fn a_rejected_hold_fails_the_reservation() {
    let metrics = platform::http::metrics_handle();
    let s = Service::start().await;
    let user = UserId::new();
    let id = s.reserve(user, &[1]).await;
    s.seats_rejected(id).await;
    let r = s.wait_status(user, id, "FAILED").await;
    assert_eq!(r["failureReason"], "SEAT_UNAVAILABLE");
    let text = metrics.render();
    assert!(
        metric(&text, r#"saga_outcomes_total{status="FAILED",reason="SEAT_UNAVAILABLE"}"#) >= Some(1.0),
        "{text}"
    );
    let failed = eventually("ReservationFailed", Duration::from_secs(10), || async {
        s.env.events_of::<ReservationFailed>().await.unwrap().pop()
    })
    .await;
    assert_eq!((failed.reservation_id, failed.reason), (id, ReservationFailureReason::SeatUnavailable));
}

#[tokio::test]
async fn a_payment_refused_as_late_fails_the_reservation_and_releases_the_seats() {
    let s = Service::start().await;
    let user = UserId::new();
    let id = s.held(user, 3, Span::minutes(5)).await;
    s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    s.payment_failed(id, user, PaymentFailureReason::DeadlinePassed).await;
    let r = s.wait_status(user, id, "FAILED").await;
    assert_eq!(r["failureReason"], "PAYMENT_FAILED");
    let failed = eventually("ReservationFailed", Duration::from_secs(10), || async {
        s.env.events_of::<ReservationFailed>().await.unwrap().pop()
    })
    .await;
    assert_eq!(
        (failed.reason, failed.seat_nos.clone()),
        (ReservationFailureReason::PaymentFailed, vec![SeatNo(3)])
    );
}

#[tokio::test]
async fn a_payment_the_balance_did_not_cover_keeps_the_hold_and_the_buyer_pays_again() {
    let s = Service::start().await;
    let user = UserId::new();
    let id = s.held(user, 3, Span::minutes(5)).await;
    let path = format!("/reservations/{id}/payment");
    let pay = || s.call(Method::POST, &path, user, None);
    assert_eq!(pay().await.0, 202);
    s.wait_status(user, id, "PAYING").await;
    s.payment_failed(id, user, PaymentFailureReason::InsufficientBalance).await;
    let r = s.wait_status(user, id, "HELD").await;
    // The refused attempt is on the timeline; nothing failed, nothing was released.
    let kinds: Vec<&str> =
        r["timeline"].as_array().unwrap().iter().filter_map(|e| e["type"].as_str()).collect();
    assert!(kinds.contains(&"PaymentFailed"), "{r}");
    assert!(r["failureReason"].is_null(), "{r}");
    // Topped up, the buyer pays again: a second PaymentRequested, and the payment confirms.
    let (status, body) = pay().await;
    assert_eq!(status, 202, "{body}");
    eventually("a second PaymentRequested", Duration::from_secs(10), || async {
        (s.env.events_of::<PaymentRequested>().await.unwrap().len() == 2).then_some(())
    })
    .await;
    s.paid(id, user).await;
    s.wait_status(user, id, "CONFIRMED").await;
    assert!(s.env.events_of::<ReservationFailed>().await.unwrap().is_empty());
}

#[tokio::test]
async fn paying_twice_asks_the_wallet_once() {
    let s = Service::start().await;
    let user = UserId::new();
    let id = s.held(user, 1, Span::minutes(5)).await;
    let path = format!("/reservations/{id}/payment");
    let (a, b) =
        tokio::join!(s.call(Method::POST, &path, user, None), s.call(Method::POST, &path, user, None));
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(statuses, [202, 409]);
    eventually("PaymentRequested", Duration::from_secs(10), || async {
        (!s.env.events_of::<PaymentRequested>().await.unwrap().is_empty()).then_some(())
    })
    .await;
    s.paid(id, user).await;
    s.wait_status(user, id, "CONFIRMED").await;
    assert_eq!(s.env.events_of::<PaymentRequested>().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_seat_in_a_live_reservation_is_turned_away_at_once_until_that_one_fails() {
    let s = Service::start().await;
    let (first, second) = (UserId::new(), UserId::new());
    let id = s.reserve(first, &[1, 2]).await;
    let request = serde_json::json!({"scheduleId": s.schedule, "seatNos": [2, 3]});

    let (status, body) = s.call(Method::POST, "/reservations", second, Some(request.clone())).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("SEAT_UNAVAILABLE")), "{body}");
    let (_, mine) = s.call(Method::GET, "/reservations", second, None).await;
    assert_eq!(mine["data"], serde_json::json!([]), "no reservation was made");
    let stray = s.env.db.query_one_raw(sea_orm::Statement::from_sql_and_values(
        sea_orm::DbBackend::Postgres,
        "SELECT count(*) AS n FROM reservation.outbox WHERE position($1 in convert_from(body, 'UTF8')) > 0",
        [second.0.to_string().into()],
    ));
    let stray: i64 = stray.await.unwrap().unwrap().try_get("", "n").unwrap();
    assert_eq!(
        stray, 0,
        "no event of the refused request was left behind (its timeline would have lived in its row)"
    );
    assert!(s.requested().await.iter().all(|e| e.user_id != second), "nothing was announced for it");

    // Held, the seats stay turned away; once the first reservation fails, they are free to ask for.
    s.seats_held(id, &[1, 2], Utc::now() + Span::minutes(5)).await;
    s.wait_status(first, id, "HELD").await;
    let (status, _) = s.call(Method::POST, "/reservations", second, Some(request.clone())).await;
    assert_eq!(status, 409);
    let (status, body) = s.call(Method::DELETE, &format!("/reservations/{id}"), first, None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("CANCELLED")), "{body}");
    let (status, body) = s.call(Method::POST, "/reservations", second, Some(request)).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn requests_that_arrive_together_get_one_reservation_per_seat() {
    let s = Service::start().await;
    // Twenty users race for seat 7 while twenty others each ask for a seat of their own: the
    // requests are written together as they arrive, but never two asking for one seat.
    let racers: Vec<UserId> = (0..20).map(|_| UserId::new()).collect();
    let loners: Vec<(UserId, i32)> = (10..30).map(|seat| (UserId::new(), seat)).collect();
    let service = &s;
    let ask = move |user: UserId, seat: i32| {
        let body = serde_json::json!({"scheduleId": service.schedule, "seatNos": [seat]});
        async move { (seat, service.call(Method::POST, "/reservations", user, Some(body)).await) }
    };
    let answers = futures::future::join_all(
        racers.iter().map(|u| ask(*u, 7)).chain(loners.iter().map(|(u, seat)| ask(*u, *seat))),
    )
    .await;

    let won: Vec<i32> =
        answers.iter().filter(|(_, (status, _))| *status == 202).map(|(seat, _)| *seat).collect();
    assert_eq!(won.iter().filter(|seat| **seat == 7).count(), 1, "{answers:?}");
    assert_eq!(won.len(), 21, "every seat of its own was reserved: {answers:?}");
    for (seat, (status, body)) in answers.iter().filter(|(_, (status, _))| *status != 202) {
        assert_eq!((*seat, *status, body["code"].as_str()), (7, 409, Some("SEAT_UNAVAILABLE")), "{body}");
    }
    let requested = s.requested().await;
    assert_eq!(requested.len(), 21, "one ReservationRequested per reservation");
    let mut seats: Vec<i32> = requested.iter().flat_map(|e| e.seat_nos.iter().map(|n| n.0)).collect();
    seats.sort_unstable();
    assert_eq!(seats, [7].into_iter().chain(10..30).collect::<Vec<_>>());
}

#[tokio::test]
async fn payments_that_arrive_together_are_each_asked_of_the_wallet_once() {
    let s = Service::start().await;
    let mut held = Vec::new();
    for seat in 1..=8 {
        let user = UserId::new();
        held.push((user, s.held(user, seat, Span::minutes(5)).await));
    }
    // Each reservation is paid for twice at once, all of them together.
    let service = &s;
    let pay = move |user: UserId, id: ReservationId| async move {
        service.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await
    };
    let answers =
        futures::future::join_all(held.iter().flat_map(|(user, id)| [pay(*user, *id), pay(*user, *id)]))
            .await;

    for pair in answers.chunks(2) {
        let mut statuses = [pair[0].0, pair[1].0];
        statuses.sort_unstable();
        assert_eq!(statuses, [202, 409], "{pair:?}");
    }
    eventually("a PaymentRequested for each", Duration::from_secs(10), || async {
        (s.env.events_of::<PaymentRequested>().await.unwrap().len() >= held.len()).then_some(())
    })
    .await;
    let asked = s.env.events_of::<PaymentRequested>().await.unwrap();
    assert_eq!(asked.len(), held.len(), "each asked once");
    for (user, id) in &held {
        assert_eq!(s.get(*user, *id).await["status"], "PAYING");
        assert!(asked.iter().any(|e| e.reservation_id == *id));
    }
}

/// Changes the row the way another replica of the service would, behind this process's back.
async fn changed_elsewhere(s: &Service, id: contracts::ReservationId, set: &str) {
    s.env
        .db
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            format!("UPDATE reservation.reservations SET {set} WHERE id = $1"),
            [id.0.into()],
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_payment_is_decided_on_the_row_when_another_replica_moved_it_on() {
    let s = Service::start().await;
    let user = UserId::new();
    // This process last wrote the reservation HELD, and remembers it so.
    let id = s.held(user, 1, Span::minutes(5)).await;
    changed_elsewhere(&s, id, "status = 'EXPIRED', failure_reason = 'EXPIRED'").await;
    let (status, problem) = s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("NOT_PAYABLE")), "{problem}");
    assert_eq!(s.get(user, id).await["status"], "EXPIRED");
    assert!(s.env.events_of::<PaymentRequested>().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_payment_the_row_allows_is_not_refused_on_an_older_copy() {
    let s = Service::start().await;
    let user = UserId::new();
    // This process wrote the reservation PENDING; another replica took the seat service's answer.
    let id = s.reserve(user, &[1]).await;
    changed_elsewhere(&s, id, "status = 'HELD', amount = 1000, held_until = now() + interval '5 minutes'")
        .await;
    let (status, body) = s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(s.get(user, id).await["status"], "PAYING");
    eventually("PaymentRequested", Duration::from_secs(10), || async {
        (s.env.events_of::<PaymentRequested>().await.unwrap().len() == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn prefer_wait_on_a_payment_answers_with_the_confirmed_reservation() {
    let s = Service::start().await;
    let user = UserId::new();
    let id = s.held(user, 1, Span::minutes(5)).await;
    let played = async {
        eventually("PaymentRequested", Duration::from_secs(10), || async {
            (!s.env.events_of::<PaymentRequested>().await.unwrap().is_empty()).then_some(())
        })
        .await;
        s.paid(id, user).await;
    };
    let path = format!("/reservations/{id}/payment");
    let asked = s.call_with(Method::POST, &path, user, None, &[("Prefer", "wait=8")]);
    let ((status, body), ()) = tokio::join!(asked, played);
    assert_eq!((status, body["status"].as_str()), (200, Some("CONFIRMED")), "{body}");
    // Not its own PAYING commit, nor anything earlier: the later, settled one, as stored.
    assert_eq!(body, s.get(user, id).await);
}

#[tokio::test]
async fn a_reservation_stream_shows_each_step_of_the_saga_and_ends_with_it() {
    let s = Service::start().await;
    let (user, stranger) = (UserId::new(), UserId::new());
    let id = s.reserve(user, &[7]).await;
    let open = |who: UserId| {
        s.http.get(format!("{}/reservations/{id}/events", s.url)).bearer_auth(s.env.user_token(who)).send()
    };
    assert_eq!(open(stranger).await.unwrap().status(), 404, "only its user follows it");
    let mut events = testkit::Events::of(open(user).await.unwrap());
    let mut next = async || {
        let v = events.next("reservation").await?;
        assert_eq!(v["id"], id.to_string());
        Some(v["status"].as_str().unwrap().to_owned())
    };
    assert_eq!(next().await.as_deref(), Some("PENDING"));
    s.seats_held(id, &[7], Utc::now() + Span::minutes(5)).await;
    assert_eq!(next().await.as_deref(), Some("HELD"));
    let (status, body) = s.call(Method::POST, &format!("/reservations/{id}/payment"), user, None).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(next().await.as_deref(), Some("PAYING"));
    s.paid(id, user).await;
    assert_eq!(next().await.as_deref(), Some("CONFIRMED"));
    assert_eq!(next().await, None, "the stream ends with the saga");
}
