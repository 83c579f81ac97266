//! The rankings against real Redis and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod openapi;

use chrono::{Duration as Span, Utc};
use contracts::{
    ConcertCreated, ConcertId, ConcertUpdated, Envelope, ReservationCancelled, ReservationCompleted,
    ReservationFailureReason, ReservationId, ScheduleId, SeatNo, SoldOut, UserId, Won,
};
use serde_json::Value;
use testkit::TestEnv;

async fn start() -> (TestEnv, String) {
    let env = TestEnv::new().await.unwrap();
    let url = env.spawn_service::<ranking::Ranking>().await.unwrap();
    (env, url)
}

async fn get(url: &str, path: &str) -> (u16, Value) {
    let res = reqwest::get(format!("{url}{path}")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn named(env: &TestEnv, concert: ConcertId, name: &str) {
    let e = Envelope::new(
        "concert",
        concert,
        ConcertCreated { concert_id: concert, name: name.into(), host: "h".into() },
    );
    env.publish(&e).await.unwrap();
    env.wait_redis_handled("ranking__CATALOG", e.id).await;
}

fn sale(concert: ConcertId, seats: i32) -> Envelope<ReservationCompleted> {
    let r = ReservationId::new();
    Envelope::new(
        "reservation",
        r,
        ReservationCompleted {
            reservation_id: r,
            user_id: UserId::new(),
            concert_id: concert,
            schedule_id: ScheduleId::new(),
            seat_nos: (1..=seats).map(SeatNo).collect(),
            amount: Won(1),
            queue_token: String::new(),
        },
    )
}

async fn sold(env: &TestEnv, e: &Envelope<ReservationCompleted>) {
    env.publish(e).await.unwrap();
    env.wait_redis_handled("ranking__RESERVATION", e.id).await;
}

fn ranks(body: &Value) -> Vec<(String, i64)> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_owned(), r["confirmedSeats"].as_i64().unwrap()))
        .collect()
}

#[tokio::test]
async fn confirmed_seats_move_concerts_up_and_duplicates_count_once() {
    let (env, url) = start().await;
    let (a, b) = (ConcertId::new(), ConcertId::new());
    named(&env, a, "Alpha").await;
    named(&env, b, "Beta").await;
    sold(&env, &sale(a, 2)).await;
    let big = sale(b, 3);
    sold(&env, &big).await;
    assert_eq!(
        ranks(&get(&url, "/rankings/concerts").await.1),
        vec![("Beta".into(), 3), ("Alpha".into(), 2)]
    );

    // A redelivered copy of Beta's sale changes nothing; two more seats for Alpha move it up.
    env.publish_raw("reservation.0.completed", "copy", serde_json::to_vec(&big).unwrap()).await.unwrap();
    sold(&env, &sale(a, 2)).await;
    let (status, body) = get(&url, "/rankings/concerts?window=60m&limit=5").await;
    assert_eq!(status, 200);
    assert_eq!(body["window"], "1h");
    assert_eq!(ranks(&body), vec![("Alpha".into(), 4), ("Beta".into(), 3)]);
    assert_eq!(ranks(&get(&url, "/rankings/concerts?limit=1").await.1), vec![("Alpha".into(), 4)]);
}

#[tokio::test]
async fn the_window_drops_old_sales() {
    let (env, url) = start().await;
    let (old, new) = (ConcertId::new(), ConcertId::new());
    named(&env, old, "Yesterday").await;
    named(&env, new, "Today").await;
    let mut earlier = sale(old, 4);
    earlier.occurred_at = Utc::now() - Span::hours(2);
    sold(&env, &earlier).await;
    sold(&env, &sale(new, 1)).await;
    assert_eq!(
        ranks(&get(&url, "/rankings/concerts?window=all").await.1),
        vec![("Yesterday".into(), 4), ("Today".into(), 1)]
    );
    assert_eq!(ranks(&get(&url, "/rankings/concerts?window=60m").await.1), vec![("Today".into(), 1)]);
    assert_eq!(ranks(&get(&url, "/rankings/concerts?window=3h").await.1).len(), 2);
}

#[tokio::test]
async fn names_come_from_catalog_events_and_the_newest_wins() {
    let (env, url) = start().await;
    let c = ConcertId::new();
    let mut rename =
        Envelope::new("concert", c, ConcertUpdated { concert_id: c, name: "New".into(), host: "h".into() });
    rename.occurred_at = Utc::now();
    let mut created =
        Envelope::new("concert", c, ConcertCreated { concert_id: c, name: "Old".into(), host: "h".into() });
    created.occurred_at = Utc::now() - Span::minutes(5);
    // The rename arrives first; the older announcement must not undo it.
    env.publish(&rename).await.unwrap();
    env.wait_redis_handled("ranking__CATALOG", rename.id).await;
    env.publish(&created).await.unwrap();
    env.wait_redis_handled("ranking__CATALOG", created.id).await;
    sold(&env, &sale(c, 1)).await;
    assert_eq!(ranks(&get(&url, "/rankings/concerts").await.1), vec![("New".into(), 1)]);
}

#[tokio::test]
async fn sold_out_schedules_are_ranked_fastest_first() {
    let (env, url) = start().await;
    let c = ConcertId::new();
    named(&env, c, "Hit").await;
    let (slow, fast) = (ScheduleId::new(), ScheduleId::new());
    for (schedule, seconds) in [(slow, 300), (fast, 12)] {
        let e = Envelope::new(
            "seat",
            schedule,
            SoldOut {
                schedule_id: schedule,
                concert_id: c,
                sold_out_at: Utc::now(),
                seconds_to_sell_out: seconds,
            },
        );
        env.publish(&e).await.unwrap();
        env.wait_redis_handled("ranking__SEAT", e.id).await;
    }
    let (_, body) = get(&url, "/rankings/sold-out").await;
    let rows: Vec<(String, i64, String)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["scheduleId"].as_str().unwrap().to_owned(),
                r["secondsToSellOut"].as_i64().unwrap(),
                r["name"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(rows, vec![(fast.to_string(), 12, "Hit".into()), (slow.to_string(), 300, "Hit".into())]);
}

/// The undoing of `sale`, as the reservation service announces it when its schedule is cancelled.
fn undone(sale: &Envelope<ReservationCompleted>) -> Envelope<ReservationCancelled> {
    let s = &sale.payload;
    Envelope::new(
        "reservation",
        s.reservation_id,
        ReservationCancelled {
            reservation_id: s.reservation_id,
            user_id: s.user_id,
            concert_id: s.concert_id,
            schedule_id: s.schedule_id,
            seat_nos: s.seat_nos.clone(),
            amount: s.amount,
            reason: ReservationFailureReason::ScheduleCancelled,
        },
    )
}

#[tokio::test]
async fn a_sale_undone_by_a_cancelled_schedule_counts_no_more_once_and_leaves_the_sold_out_ranking() {
    let (env, url) = start().await;
    let c = ConcertId::new();
    named(&env, c, "Cancelled").await;
    let (kept, lost) = (sale(c, 1), sale(c, 3));
    sold(&env, &kept).await;
    sold(&env, &lost).await;
    let out = Envelope::new(
        "seat",
        lost.payload.schedule_id,
        SoldOut {
            schedule_id: lost.payload.schedule_id,
            concert_id: c,
            sold_out_at: Utc::now(),
            seconds_to_sell_out: 5,
        },
    );
    env.publish(&out).await.unwrap();
    env.wait_redis_handled("ranking__SEAT", out.id).await;
    assert_eq!(get(&url, "/rankings/sold-out").await.1["data"].as_array().unwrap().len(), 1);

    let cancelled = undone(&lost);
    for copy in ["first", "copy"] {
        env.publish_raw("reservation.0.cancelled", copy, serde_json::to_vec(&cancelled).unwrap())
            .await
            .unwrap();
    }
    env.wait_redis_handled("ranking__RESERVATION", cancelled.id).await;
    // Out of the all-time count and of the window it was sold in, once however often it comes.
    for window in ["all", "60m"] {
        let (_, body) = get(&url, &format!("/rankings/concerts?window={window}")).await;
        assert_eq!(ranks(&body), vec![("Cancelled".into(), 1)], "window {window}");
    }
    assert!(get(&url, "/rankings/sold-out").await.1["data"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn bad_queries_get_problems() {
    let (_env, url) = start().await;
    for path in [
        "/rankings/concerts?window=1d",
        "/rankings/concerts?window=25h",
        "/rankings/concerts?limit=0",
        "/rankings/concerts?sort=asc",
        "/rankings/sold-out?limit=101",
    ] {
        let (status, problem) = get(&url, path).await;
        assert_eq!((status, problem["code"].as_str()), (400, Some("VALIDATION_FAILED")), "{path}");
    }
}
