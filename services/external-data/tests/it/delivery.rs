//! Delivering: signed, at least once, retried with backoff, FAILED after the last attempt, sent
//! again by an admin, never held up by one slow answer, once per event.

use crate::{Receiver, Reply, SECRET, Service, WAIT, completed, fast};
use external_data::{DeliverySettings, HEADER_DELIVERY, HEADER_SIGNATURE, HEADER_TIMESTAMP};
use reqwest::Method;
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use testkit::eventually;

#[tokio::test]
async fn a_flaky_platform_gets_the_reservation_once_signed_after_retries() {
    let receiver = Receiver::start(|_, nth| Reply::status(if nth <= 3 { 500 } else { 200 })).await;
    let svc = Service::start(&receiver, fast()).await;
    let event = svc.complete().await;
    let reservation = event.payload.reservation_id;

    let delivery = svc.wait_status(reservation, "DELIVERED").await;
    assert_eq!(delivery["attempts"], 4, "{delivery}");
    assert_eq!(delivery["lastStatus"], 200, "{delivery}");
    assert_eq!(delivery["lastError"], serde_json::Value::Null, "{delivery}");
    assert_eq!(delivery["eventId"], event.id.to_string());
    assert!(delivery["deliveredAt"].is_string() && delivery["nextAttemptAt"].is_null(), "{delivery}");

    let requests = receiver.requests();
    assert_eq!(requests.len(), 4, "three failures and one success, nothing more");
    let answered: Vec<_> = requests.iter().map(|r| r.answered).collect();
    assert_eq!(answered, [Some(500), Some(500), Some(500), Some(200)]);
    let now = chrono::Utc::now().timestamp();
    for r in &requests {
        assert_eq!(r.delivery(), delivery["id"].as_str().unwrap(), "the same delivery id on every attempt");
        assert_eq!(r.headers["content-type"], "application/json");
        let timestamp = r.headers[HEADER_TIMESTAMP].to_str().unwrap();
        assert!((now - timestamp.parse::<i64>().unwrap()).abs() < 300, "timestamp {timestamp}");
        // A receiver verifies it with the Standard Webhooks library and the shared secret.
        let receiver = standardwebhooks::Webhook::from_bytes(SECRET.as_bytes().to_vec()).unwrap();
        receiver.verify(&r.body, &r.headers).expect("the signature verifies with the shared secret");
        let other =
            standardwebhooks::Webhook::from_bytes(b"another-secret-of-32-bytes......".to_vec()).unwrap();
        assert!(other.verify(&r.body, &r.headers).is_err(), "another key does not verify it");
        assert!(r.headers[HEADER_SIGNATURE].to_str().unwrap().starts_with("v1,"));
        let body = r.json();
        let p = &event.payload;
        assert_eq!(body["reservationId"], serde_json::json!(p.reservation_id));
        assert_eq!(body["concertId"], serde_json::json!(p.concert_id));
        assert_eq!(body["seatNos"], serde_json::json!(p.seat_nos));
        assert_eq!(body["amount"], serde_json::json!(p.amount));
        assert!(body["completedAt"].is_string());
        assert!(body.get("queueToken").is_none(), "internal fields stay inside");
    }
}

#[tokio::test]
async fn a_dead_platform_ends_failed_and_an_admin_retry_delivers_once_it_recovers() {
    let healthy = Arc::new(AtomicBool::new(false));
    let up = healthy.clone();
    let receiver =
        Receiver::start(
            move |_, _| {
                if up.load(Ordering::SeqCst) { Reply::status(204) } else { Reply::status(503) }
            },
        )
        .await;
    let svc = Service::start(&receiver, DeliverySettings { max_attempts: 3, ..fast() }).await;
    let reservation = svc.complete().await.payload.reservation_id;

    let failed = svc.wait_status(reservation, "FAILED").await;
    assert_eq!(failed["attempts"], 3, "{failed}");
    assert_eq!(failed["lastStatus"], 503, "{failed}");
    assert!(failed["lastError"].as_str().unwrap().starts_with("HTTP 503"), "{failed}");
    assert!(failed["nextAttemptAt"].is_null() && failed["deliveredAt"].is_null(), "{failed}");
    let id = failed["id"].as_str().unwrap().to_owned();
    assert_eq!(receiver.requests_for(&id).len(), 3, "no attempt after the last");

    healthy.store(true, Ordering::SeqCst);
    let (status, retried) = svc.admin(Method::POST, &format!("/external-data/deliveries/{id}/retry")).await;
    assert_eq!(status, 200, "{retried}");
    assert_eq!((retried["id"].as_str(), &retried["status"]), (Some(id.as_str()), &"PENDING".into()));
    assert_eq!(retried["attempts"], 0, "{retried}");

    let delivered = svc.wait_status(reservation, "DELIVERED").await;
    assert_eq!((delivered["attempts"].as_i64(), delivered["lastStatus"].as_i64()), (Some(1), Some(204)));
    let requests = receiver.requests_for(&id);
    assert_eq!(requests.len(), 4, "the retry sent it once more, under the same delivery id");
    assert_eq!(requests.iter().filter(|r| r.answered == Some(204)).count(), 1);

    let (status, problem) = svc.admin(Method::POST, &format!("/external-data/deliveries/{id}/retry")).await;
    assert_eq!(status, 409, "{problem}");
    assert_eq!(problem["code"], "NOT_RETRYABLE");
}

#[tokio::test]
async fn a_slow_answer_holds_up_no_other_delivery_and_times_out_into_a_retry() {
    let slow = completed();
    let slow_id = slow.payload.reservation_id.to_string();
    // The first two attempts for the slow reservation hang far past the timeout.
    let receiver = Receiver::start(move |r, nth| {
        if r.json()["reservationId"] == slow_id.as_str() && nth <= 2 {
            Reply { status: 200, delay: Duration::from_secs(120) }
        } else {
            Reply::status(200)
        }
    })
    .await;
    let timeout = Duration::from_secs(3);
    let svc = Service::start(&receiver, DeliverySettings { timeout, ..fast() }).await;
    let reservation = slow.payload.reservation_id;
    svc.env.publish(&slow).await.unwrap();
    eventually("the slow delivery's first attempt to be in flight", WAIT, || async {
        (!receiver.requests_about(reservation).is_empty()).then_some(())
    })
    .await;

    let others = [svc.complete().await, svc.complete().await];
    for other in &others {
        svc.wait_status(other.payload.reservation_id, "DELIVERED").await;
    }
    let meanwhile = svc.delivery_of(reservation).await.unwrap();
    assert_eq!(
        (meanwhile["status"].as_str(), meanwhile["attempts"].as_i64()),
        (Some("PENDING"), Some(0)),
        "the others were delivered while the slow one's first attempt was still waiting: {meanwhile}"
    );

    let timed_out = svc
        .wait_delivery(reservation, "the slow delivery's attempt to time out", |d| {
            d["status"] == "PENDING"
                && d["attempts"].as_i64() >= Some(1)
                && d["lastError"].as_str().is_some_and(|e| e.contains("timed out"))
        })
        .await;
    assert!(timed_out["lastStatus"].is_null(), "no answer, no status: {timed_out}");

    let delivered = svc.wait_status(reservation, "DELIVERED").await;
    assert_eq!(delivered["attempts"], 3, "{delivered}");
    let requests = receiver.requests_about(reservation);
    assert_eq!(requests.len(), 3);
    assert!(requests.iter().all(|r| r.delivery() == delivered["id"].as_str().unwrap()));
    assert_eq!(requests.iter().filter(|r| r.answered.is_some()).count(), 1, "only the third was answered");
    for other in &others {
        assert_eq!(receiver.requests_about(other.payload.reservation_id).len(), 1);
    }
}

#[tokio::test]
async fn the_same_event_twice_is_one_delivery_and_other_events_make_none() {
    let receiver = Receiver::start(|_, _| Reply::status(200)).await;
    let svc = Service::start(&receiver, fast()).await;
    let event = completed();
    svc.env.publish(&event).await.unwrap();
    svc.env.publish(&event).await.unwrap();
    // Under another message id the stream keeps the copy, so the consumer sees it twice.
    let body = serde_json::to_vec(&event).unwrap();
    svc.env.publish_raw("reservation.0.completed", &uuid::Uuid::now_v7().to_string(), body).await.unwrap();
    let failed = contracts::Envelope::new(
        "reservation",
        contracts::ReservationId::new(),
        contracts::ReservationFailed {
            reservation_id: contracts::ReservationId::new(),
            user_id: contracts::UserId::new(),
            schedule_id: contracts::ScheduleId::new(),
            seat_nos: vec![contracts::SeatNo(1)],
            reason: contracts::ReservationFailureReason::Cancelled,
            queue_token: "qt".to_owned(),
        },
    );
    svc.env.publish(&failed).await.unwrap();
    svc.wait_consumed().await;

    let delivered = svc.wait_status(event.payload.reservation_id, "DELIVERED").await;
    let (_, page) = svc.admin(Method::GET, "/external-data/deliveries").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].headers[HEADER_DELIVERY], delivered["id"].as_str().unwrap());
}
