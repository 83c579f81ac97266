//! The per-user limits of a schedule: one live reservation per user, and a share of its seats.

use super::*;

/// The detail of a `LIMIT_REACHED` answer, after checking that it is one.
fn limit_reached((status, body): &(u16, Value)) -> &str {
    assert_eq!((*status, body["code"].as_str()), (409, Some("LIMIT_REACHED")), "{body}");
    body["detail"].as_str().unwrap()
}

#[tokio::test]
async fn fifty_racing_requests_of_one_user_make_one_reservation() {
    let s = Service::start().await;
    let user = UserId::new();
    // Each asks for a seat of its own, so only the per-user limit can turn them away; half carry
    // an Idempotency-Key (written in a transaction of their own), half are written together.
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
