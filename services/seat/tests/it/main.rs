//! The seat inventory against real Postgres and NATS.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a failed unwrap is a failed test")]

mod openapi;

use chrono::{Duration as Span, Utc};
use contracts::{
    ConcertId, Envelope, ReservationCompleted, ReservationFailed, ReservationFailureReason, ReservationId,
    ReservationRequested, ScheduleCreated, ScheduleId, SeatNo, SeatPrice, SeatRejectReason,
    SeatReservationRejected, SeatReserved, SeatsReleased, SoldOut, UserId, Won,
};
use serde_json::Value;
use std::time::Duration;
use testkit::{TestEnv, eventually};

struct Seats {
    env: TestEnv,
    url: String,
    concert: ConcertId,
}

impl Seats {
    async fn start() -> Self {
        let env = TestEnv::new().await.unwrap();
        let url = env.spawn_service::<seat::Seats>().await.unwrap();
        Self { env, url, concert: ConcertId::new() }
    }

    /// Announces a schedule with `n` seats priced 1000 × seat number, and waits for it.
    async fn schedule(&self, n: i32) -> ScheduleId {
        let id = ScheduleId::new();
        let seats =
            (1..=n).map(|i| SeatPrice { seat_no: SeatNo(i), price: Won(1000 * i64::from(i)) }).collect();
        let e = Envelope::new(
            "concert",
            id,
            ScheduleCreated {
                schedule_id: id,
                concert_id: self.concert,
                starts_at: Utc::now() + Span::days(1),
                seats,
                sales_open_at: None,
            },
        );
        self.env.publish(&e).await.unwrap();
        self.env.wait_handled("seat", e.id).await;
        id
    }

    async fn seats(&self, schedule: ScheduleId, query: &str) -> (u16, Value) {
        let res = reqwest::get(format!("{}/schedules/{schedule}/seats{query}", self.url)).await.unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }

    async fn status_of(&self, schedule: ScheduleId, seat: i32) -> String {
        let (_, map) = self.seats(schedule, "").await;
        map["seats"].as_array().unwrap().iter().find(|s| s["seatNo"] == seat).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn request(
        &self,
        schedule: ScheduleId,
        seats: &[i32],
    ) -> (ReservationId, Envelope<ReservationRequested>) {
        let r = ReservationId::new();
        let e = Envelope::new(
            "reservation",
            r,
            ReservationRequested {
                reservation_id: r,
                user_id: UserId::new(),
                schedule_id: schedule,
                seat_nos: seats.iter().copied().map(SeatNo).collect(),
                queue_token: String::new(),
            },
        );
        self.env.publish(&e).await.unwrap();
        (r, e)
    }

    async fn fail(
        &self,
        schedule: ScheduleId,
        r: ReservationId,
        seats: &[i32],
    ) -> Envelope<ReservationFailed> {
        let e = Envelope::new(
            "reservation",
            r,
            ReservationFailed {
                reservation_id: r,
                user_id: UserId::new(),
                schedule_id: schedule,
                seat_nos: seats.iter().copied().map(SeatNo).collect(),
                reason: ReservationFailureReason::Expired,
                queue_token: String::new(),
            },
        );
        self.env.publish(&e).await.unwrap();
        e
    }

    async fn complete(
        &self,
        schedule: ScheduleId,
        r: ReservationId,
        seats: &[i32],
    ) -> Envelope<ReservationCompleted> {
        let e = Envelope::new(
            "reservation",
            r,
            ReservationCompleted {
                reservation_id: r,
                user_id: UserId::new(),
                concert_id: self.concert,
                schedule_id: schedule,
                seat_nos: seats.iter().copied().map(SeatNo).collect(),
                amount: Won(0),
                queue_token: String::new(),
            },
        );
        self.env.publish(&e).await.unwrap();
        e
    }

    async fn outcomes(&self, n: usize) -> (Vec<SeatReserved>, Vec<SeatReservationRejected>) {
        eventually(&format!("{n} hold outcomes"), Duration::from_secs(20), || async {
            let held = self.env.events_of::<SeatReserved>().await.unwrap();
            let rejected = self.env.events_of::<SeatReservationRejected>().await.unwrap();
            (held.len() + rejected.len() == n).then_some((held, rejected))
        })
        .await
    }
}

#[tokio::test]
async fn a_schedule_announcement_becomes_a_seat_map() {
    let s = Seats::start().await;
    let schedule = s.schedule(50).await;
    let (status, map) = s.seats(schedule, "").await;
    assert_eq!(status, 200);
    let seats = map["seats"].as_array().unwrap();
    assert_eq!(seats.len(), 50);
    assert_eq!(seats[2], serde_json::json!({"seatNo": 3, "price": 3000, "status": "AVAILABLE"}));
    assert_eq!(s.seats(schedule, "?status=SOLD").await.1["seats"].as_array().unwrap().len(), 0);
    assert_eq!(s.seats(schedule, "?status=nope").await.0, 400);
    assert_eq!(s.seats(ScheduleId::new(), "").await.0, 404);
    let bad = reqwest::get(format!("{}/schedules/xyz/seats", s.url)).await.unwrap();
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn all_requested_seats_are_held_together_or_none() {
    let s = Seats::start().await;
    let schedule = s.schedule(10).await;
    let (r1, _) = s.request(schedule, &[1, 2]).await;
    let (held, _) = s.outcomes(1).await;
    assert_eq!(held[0].reservation_id, r1);
    assert_eq!(held[0].amount, Won(3000));
    assert!(held[0].held_until > Utc::now() + Span::seconds(200), "the hold lasts the configured time");
    assert_eq!(held[0].concert_id, s.concert);

    // Overlaps on seat 2: nothing of it is held, seat 3 included.
    let (r2, _) = s.request(schedule, &[2, 3]).await;
    let (_, rejected) = s.outcomes(2).await;
    assert_eq!((rejected[0].reservation_id, rejected[0].reason), (r2, SeatRejectReason::Taken));
    assert_eq!(s.status_of(schedule, 3).await, "AVAILABLE");

    let (r3, _) = s.request(schedule, &[4, 99]).await;
    let (_, rejected) = s.outcomes(3).await;
    assert_eq!((rejected[1].reservation_id, rejected[1].reason), (r3, SeatRejectReason::NotFound));
    assert_eq!(s.status_of(schedule, 4).await, "AVAILABLE");
}

#[tokio::test]
async fn fifty_requests_for_one_seat_hold_it_once() {
    let s = Seats::start().await;
    let schedule = s.schedule(50).await;
    for _ in 0..50 {
        s.request(schedule, &[7]).await;
    }
    let (held, rejected) = s.outcomes(50).await;
    assert_eq!(held.len(), 1);
    assert_eq!(rejected.len(), 49);
    assert!(rejected.iter().all(|r| r.reason == SeatRejectReason::Taken));
}

#[tokio::test]
async fn a_release_frees_only_the_failed_reservations_own_seats() {
    let s = Seats::start().await;
    let schedule = s.schedule(5).await;
    let (r1, _) = s.request(schedule, &[1]).await;
    s.outcomes(1).await;

    // Another reservation failing for the same seat must not free r1's hold.
    let foreign = s.fail(schedule, ReservationId::new(), &[1]).await;
    s.env.wait_handled("seat", foreign.id).await;
    assert_eq!(s.status_of(schedule, 1).await, "HELD");

    let own = s.fail(schedule, r1, &[1]).await;
    let again = s.fail(schedule, r1, &[1]).await;
    s.env.wait_handled("seat", own.id).await;
    s.env.wait_handled("seat", again.id).await;
    assert_eq!(s.status_of(schedule, 1).await, "AVAILABLE");
    let released = s.env.events_of::<SeatsReleased>().await.unwrap();
    assert_eq!(released.len(), 1, "released once");
    assert_eq!(released[0].seat_nos, vec![SeatNo(1)]);
}

#[tokio::test]
async fn selling_the_last_seats_announces_sold_out_once() {
    let s = Seats::start().await;
    let schedule = s.schedule(3).await;
    let (r1, _) = s.request(schedule, &[1]).await;
    let (r2, _) = s.request(schedule, &[2, 3]).await;
    s.outcomes(2).await;
    let first = s.complete(schedule, r1, &[1]).await;
    s.env.wait_handled("seat", first.id).await;
    assert_eq!(s.status_of(schedule, 1).await, "SOLD");
    assert!(s.env.events_of::<SoldOut>().await.unwrap().is_empty());

    s.complete(schedule, r2, &[2, 3]).await;
    let sold_out = eventually("SoldOut", Duration::from_secs(10), || async {
        s.env.events_of::<SoldOut>().await.unwrap().pop()
    })
    .await;
    assert_eq!((sold_out.schedule_id, sold_out.concert_id), (schedule, s.concert));
    assert!(sold_out.seconds_to_sell_out >= 0);
    let repeat = s.complete(schedule, r2, &[2, 3]).await;
    s.env.wait_handled("seat", repeat.id).await;
    assert_eq!(s.env.events_of::<SoldOut>().await.unwrap().len(), 1);

    // A failure after the sale releases nothing.
    let late = s.fail(schedule, r2, &[2, 3]).await;
    s.env.wait_handled("seat", late.id).await;
    assert_eq!(s.status_of(schedule, 2).await, "SOLD");
}

#[tokio::test]
async fn a_request_delivered_again_after_its_hold_ended_holds_nothing() {
    let s = Seats::start().await;
    let schedule = s.schedule(5).await;
    let (r1, request) = s.request(schedule, &[1, 2]).await;
    s.outcomes(1).await;
    let released = s.fail(schedule, r1, &[1, 2]).await;
    s.env.wait_handled("seat", released.id).await;
    assert_eq!(s.status_of(schedule, 1).await, "AVAILABLE");

    // The same event again (another message id, so JetStream keeps it): the seats are free, but
    // the event was applied before, so nothing is held and nothing announced.
    let body = serde_json::to_vec(&request).unwrap();
    s.env.publish_raw("reservation.0.requested", "the-same-request-again", body).await.unwrap();
    s.env.wait_consumed("seat", contracts::Stream::Reservation).await;
    assert_eq!(s.status_of(schedule, 1).await, "AVAILABLE");
    assert_eq!(s.status_of(schedule, 2).await, "AVAILABLE");
    assert_eq!(s.env.events_of::<SeatReserved>().await.unwrap().len(), 1);
}

#[tokio::test]
async fn the_last_seats_sold_at_the_same_time_announce_sold_out_once() {
    let s = Seats::start().await;
    let schedule = s.schedule(8).await;
    let mut reservations = Vec::new();
    for seat in 1..=8 {
        reservations.push((s.request(schedule, &[seat]).await.0, seat));
    }
    s.outcomes(8).await;
    let sales = futures::future::join_all(
        reservations.iter().map(|(r, seat)| s.complete(schedule, *r, std::slice::from_ref(seat))),
    )
    .await;
    // A sale's inbox row commits before its sold-out check runs: wait until every message is
    // acked (after its handler returned), then until what they wrote has been published.
    s.env.wait_consumed("seat", contracts::Stream::Reservation).await;
    for sale in &sales {
        s.env.wait_handled("seat", sale.id).await;
    }
    let sold_out = s.env.events_of::<SoldOut>().await.unwrap();
    assert_eq!(sold_out.len(), 1, "{sold_out:?}");
    assert_eq!(s.seats(schedule, "?status=SOLD").await.1["seats"].as_array().unwrap().len(), 8);
}

/// A reservation whose end never reached the seats (its ReservationFailed lost): once the hold,
/// the pay grace and the backstop's grace have all passed, the backstop releases its seats and
/// announces it, and leaves sold seats alone.
#[tokio::test]
async fn the_backstop_releases_seats_held_past_every_deadline() {
    let metrics = platform::http::metrics_handle();
    let env = TestEnv::new().await.unwrap();
    let rt = env
        .runtime_as::<seat::Seats>(&[
            ("TICKETING_HOLD_SECS", "1"),
            ("TICKETING_PAY_GRACE_SECS", "1"),
            ("TICKETING_SEAT_BACKSTOP_GRACE_SECS", "3"),
        ])
        .await
        .unwrap();
    let url = env.spawn_app(servicekit::start::<seat::Seats>(&rt).unwrap()).await.unwrap();
    let s = Seats { env, url, concert: ConcertId::new() };
    let schedule = s.schedule(3).await;
    let (lost, _) = s.request(schedule, &[1, 2]).await;
    let (sold, _) = s.request(schedule, &[3]).await;
    s.outcomes(2).await;
    s.complete(schedule, sold, &[3]).await;
    // Past the hold and the pay grace, before the backstop's own grace: counted, not released.
    eventually("two seats counted as held past their deadline", Duration::from_secs(10), || async {
        (testkit::metric(&metrics.render(), "seats_held_past_deadline") == Some(2.0)).then_some(())
    })
    .await;
    eventually("the backstop to release the lost reservation's seats", Duration::from_secs(20), || async {
        let statuses = [s.status_of(schedule, 1).await, s.status_of(schedule, 2).await];
        (statuses == ["AVAILABLE", "AVAILABLE"]).then_some(())
    })
    .await;
    assert_eq!(s.status_of(schedule, 3).await, "SOLD");
    let released = eventually("SeatsReleased", Duration::from_secs(10), || async {
        s.env.events_of::<SeatsReleased>().await.ok().filter(|r| !r.is_empty())
    })
    .await;
    assert_eq!(released.len(), 1, "{released:?}");
    assert_eq!(
        (released[0].reservation_id, released[0].seat_nos.clone()),
        (lost, vec![SeatNo(1), SeatNo(2)])
    );
}

#[tokio::test]
async fn a_seat_map_stream_shows_each_hold_and_release_as_it_happens() {
    let s = Seats::start().await;
    let schedule = s.schedule(3).await;
    let open = |schedule: ScheduleId| reqwest::get(format!("{}/schedules/{schedule}/seats/events", s.url));
    assert_eq!(open(ScheduleId::new()).await.unwrap().status(), 404);
    let mut events = testkit::Events::of(open(schedule).await.unwrap());
    let statuses = |map: Value| -> Vec<String> {
        assert_eq!(map["scheduleId"], schedule.to_string());
        map["seats"].as_array().unwrap().iter().map(|s| s["status"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(statuses(events.next("seats").await.unwrap()), ["AVAILABLE", "AVAILABLE", "AVAILABLE"]);

    let (r, _) = s.request(schedule, &[1, 2]).await;
    assert_eq!(statuses(events.next("seats").await.unwrap()), ["HELD", "HELD", "AVAILABLE"]);
    s.fail(schedule, r, &[1, 2]).await;
    assert_eq!(statuses(events.next("seats").await.unwrap()), ["AVAILABLE", "AVAILABLE", "AVAILABLE"]);
}

/// A replica that keeps one of two partitions (`TICKETING_PARTITIONS`) answers for the schedules
/// of its partition, and a read of another's schedule 421, naming the partition that keeps it.
#[tokio::test]
async fn a_schedule_of_another_partition_is_misdirected() {
    let two = contracts::Partitions::new(2).unwrap();
    let of = |s: &ScheduleId| two.of(contracts::Bucket::of(*s));
    let mine = std::iter::repeat_with(ScheduleId::new).find(|s| of(s) == 0).unwrap();
    let other = std::iter::repeat_with(ScheduleId::new).find(|s| of(s) == 1).unwrap();
    let env = TestEnv::new().await.unwrap();
    let overrides = [("TICKETING_PARTITION_COUNT", "2"), ("TICKETING_PARTITIONS", "0")];
    let rt = env.runtime_as::<seat::Seats>(&overrides).await.unwrap();
    let url = env.spawn_app(testkit::start::<seat::Seats>(&rt).unwrap()).await.unwrap();
    let get = |path: String| async move { reqwest::get(path).await.unwrap() };
    let unknown = get(format!("{url}/schedules/{mine}/seats")).await;
    assert_eq!(unknown.status(), 404, "its own partition's schedule, never announced");
    for path in [format!("{url}/schedules/{other}/seats"), format!("{url}/schedules/{other}/seats/events")] {
        let answer = get(path.clone()).await;
        assert_eq!(answer.status(), 421, "{path}");
        let problem: Value = answer.json().await.unwrap();
        assert_eq!(problem["code"], "MISDIRECTED_REQUEST");
        assert!(problem["detail"].as_str().unwrap().contains("is kept by partition 1;"), "{problem}");
    }
}
