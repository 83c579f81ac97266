//! Events spread over partitions (docs/scaling.md §2.2): with `TICKETING_PARTITION_COUNT=2`,
//! every event about a schedule carries the schedule's partition in its subject, and the
//! consumers, which filter on every partition, run the sagas of both.

use crate::scenario;
use contracts::{
    Bucket, Partitions, PaymentCompleted, ReservationCompleted, ReservationRequested, ScheduleCreated,
    ScheduleId, SeatReserved, UserId,
};
use e2e::api::id_of;

/// A deployment's partition count is set when it is deployed: its NATS users' permissions name
/// the durables of each partition (`ticketing nats auth`), so a deployment under `E2E_BASE_URL`
/// is left as it is.
fn deployed_elsewhere() -> bool {
    let elsewhere = std::env::var("E2E_BASE_URL").is_ok_and(|u| !u.is_empty());
    if elsewhere {
        eprintln!(
            "skipped: it runs a partition count of its own, which a deployment fixes when it is deployed"
        );
    }
    elsewhere
}

#[tokio::test]
async fn a_schedules_events_carry_its_partition_and_sagas_complete_in_each() {
    if deployed_elsewhere() {
        return;
    }
    let Some(s) = scenario(&[("TICKETING_PARTITION_COUNT", "2")]).await else { return };
    let partitions = Partitions::new(2).unwrap();
    let partition_of = |schedule: ScheduleId| partitions.of(Bucket::of(schedule));

    // New schedules until each partition has one: each is a coin flip, so 40 tries fail to
    // find both about once in 2^39 runs.
    let mut schedules: [Option<ScheduleId>; 2] = [None, None];
    for _ in 0..40 {
        let (_, schedule) = s.api.schedule(3, 1_000).await.unwrap();
        schedules[usize::from(partition_of(schedule))].get_or_insert(schedule);
        if schedules.iter().all(Option::is_some) {
            break;
        }
    }
    let schedules: Vec<ScheduleId> = schedules.into_iter().flatten().collect();
    assert_eq!(schedules.len(), 2, "no schedule of one partition in 40");

    // A whole saga in each: held, paid, CONFIRMED, the seat SOLD.
    let mut reservations = Vec::new();
    for &schedule in &schedules {
        let user = UserId::new();
        s.api.charge(user, 10_000).await.unwrap();
        let held = s.api.reserve(user, schedule, &[1], 10).await.unwrap();
        let id = id_of(&held).unwrap();
        assert_eq!(id.bucket(), Bucket::of(schedule), "the reservation id carries its schedule's bucket");
        let paid = s.api.pay(user, id, 10).await.unwrap();
        assert_eq!(paid.body["status"], "CONFIRMED", "{paid:?}");
        s.api
            .eventually("the seat SOLD", || async { Ok(s.api.seats(schedule).await?[&1] == "SOLD") })
            .await
            .unwrap();
        reservations.push(id);
    }

    // Each event went out on its schedule's partition, read from the schedule id or from the
    // reservation id.
    let ours = |schedule: &ScheduleId| schedules.contains(schedule);
    for (subject, e) in
        s.published::<ScheduleCreated>().await.unwrap().iter().filter(|(_, e)| ours(&e.schedule_id))
    {
        assert_eq!(*subject, format!("catalog.{}.schedule.created", partition_of(e.schedule_id)));
    }
    for (subject, e) in
        s.published::<ReservationRequested>().await.unwrap().iter().filter(|(_, e)| ours(&e.schedule_id))
    {
        assert_eq!(*subject, format!("reservation.{}.requested", partition_of(e.schedule_id)));
    }
    let held = s.published::<SeatReserved>().await.unwrap();
    let held: Vec<_> = held.iter().filter(|(_, e)| ours(&e.schedule_id)).collect();
    assert_eq!(held.len(), 2);
    for (subject, e) in held {
        assert_eq!(*subject, format!("seat.{}.reserved", partition_of(e.schedule_id)));
    }
    let paid = s.published::<PaymentCompleted>().await.unwrap();
    let paid: Vec<_> = paid.iter().filter(|(_, e)| reservations.contains(&e.reservation_id)).collect();
    assert_eq!(paid.len(), 2);
    for (subject, e) in paid {
        assert_eq!(
            *subject,
            format!("wallet.{}.payment.completed", partitions.of(e.reservation_id.bucket()))
        );
    }
    let done = s.published::<ReservationCompleted>().await.unwrap();
    let partitions_seen: Vec<&str> =
        done.iter().filter(|(_, e)| ours(&e.schedule_id)).map(|(subject, _)| subject.as_str()).collect();
    assert_eq!(partitions_seen.len(), 2);
    assert!(
        partitions_seen.contains(&"reservation.0.completed")
            && partitions_seen.contains(&"reservation.1.completed")
    );
    s.check().await.unwrap();
}

/// Replicas of the seat and reservation services that keep one of two partitions each
/// (`TICKETING_PARTITIONS`, docs/scaling.md §2.7 step 3): each runs the durables of its own
/// partition alone, and answers a request about the other's schedules 421. Every service runs
/// keeping partition 0; partition 1 has a seat and a reservation replica of its own; a router
/// sends each request to the first and, on a 421, to the replica of partition 1. With partition
/// 1's seat replica stopped, partition 0 sells and partition 1's request waits, held by no one;
/// once that replica is back, its durable takes the request up and both sagas complete. It
/// runs processes of its own.
#[tokio::test]
async fn replicas_that_keep_one_partition_each_answer_and_consume_for_it_alone() {
    if deployed_elsewhere() {
        return;
    }
    let env = testkit::TestEnv::new().await.unwrap();
    let start = |args: &[&str], kept: &str| {
        let mut cmd = e2e::harness::command(&e2e::harness::binary(), &env);
        for (k, v) in e2e::deployment::SCENARIO_DEFAULTS {
            cmd.env(k, v);
        }
        cmd.env("TICKETING_PARTITION_COUNT", "2").env("TICKETING_PARTITIONS", kept).args(args);
        e2e::harness::Process::spawn(cmd).unwrap()
    };
    let up = start(&["up"], "0");
    let reservation_1 = start(&["serve", "reservation"], "1");
    let mut seat_1 = Some(start(&["serve", "seat"], "1"));
    let seat_1_url = std::sync::Arc::new(std::sync::Mutex::new(seat_1.as_ref().unwrap().url.clone()));
    let router = Misdirected {
        first: up.url.clone(),
        reservation: reservation_1.url.clone(),
        seat: seat_1_url.clone(),
        http: reqwest::Client::new(),
    };
    let api = e2e::api::Api::new(&env.spawn_raw(router.app()).await.unwrap(), env.jwt());
    let partitions = Partitions::new(2).unwrap();

    let mut schedules: [Option<ScheduleId>; 2] = [None, None];
    for _ in 0..40 {
        let (_, schedule) = api.schedule(3, 1_000).await.unwrap();
        schedules[usize::from(partitions.of(Bucket::of(schedule)))].get_or_insert(schedule);
        if schedules.iter().all(Option::is_some) {
            break;
        }
    }
    let [Some(zero), Some(first)] = schedules else { panic!("no schedule of one partition in 40") };
    for schedule in [zero, first] {
        api.eventually("the seats on sale", || async { Ok(api.seats(schedule).await?[&1] == "AVAILABLE") })
            .await
            .unwrap();
    }
    // Partition 0's replica refuses partition 1's schedule, naming the partition.
    let misdirected = reqwest::get(format!("{}/schedules/{first}/seats", up.url)).await.unwrap();
    assert_eq!(misdirected.status(), 421);

    // Partition 1's seat replica stops: partition 0 sells, partition 1's request waits unheld.
    seat_1.take().unwrap().terminate().unwrap();
    let user = UserId::new();
    api.charge(user, 10_000).await.unwrap();
    let held = api.reserve(user, zero, &[1], 10).await.unwrap();
    assert_eq!(held.body["status"], "HELD", "{held:?}");
    let waiting = id_of(&api.reserve_raw(user, first, &[1], 1).await.unwrap()).unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        api.reservation(user, waiting).await.unwrap()["status"],
        "PENDING",
        "held with no seat replica of its partition"
    );
    let stream = env.bus.js.get_stream(env.ns.stream(contracts::Stream::Reservation)).await.unwrap();
    let info = stream.consumer_info("seat__RESERVATION__requested__p1").await.unwrap();
    assert_eq!(info.config.filter_subject, env.ns.subject("reservation.1.requested"));
    assert_eq!(info.num_pending, 1, "the request waits for partition 1's durable");
    let info = stream.consumer_info("seat__RESERVATION__requested__p0").await.unwrap();
    assert_eq!(
        (info.config.filter_subject, info.num_pending),
        (env.ns.subject("reservation.0.requested"), 0)
    );

    // It comes back: the waiting request is held, and both sagas complete.
    let back = start(&["serve", "seat"], "1");
    *seat_1_url.lock().unwrap() = back.url.clone();
    api.wait_status(user, waiting, "HELD").await.unwrap();
    for (schedule, id) in [(zero, id_of(&held).unwrap()), (first, waiting)] {
        let paid = api.pay(user, id, 10).await.unwrap();
        assert_eq!(paid.body["status"], "CONFIRMED", "{paid:?}");
        api.eventually("the seat SOLD", || async { Ok(api.seats(schedule).await?[&1] == "SOLD") })
            .await
            .unwrap();
    }
}

/// A router for two partitions: every request to `first`, and one it answers 421 (a schedule
/// or reservation of partition 1) again to partition 1's replica of the service.
#[derive(Clone)]
struct Misdirected {
    first: String,
    reservation: String,
    seat: std::sync::Arc<std::sync::Mutex<String>>,
    http: reqwest::Client,
}

impl Misdirected {
    fn app(self) -> axum::Router {
        axum::Router::new().fallback(Self::route).with_state(self)
    }

    async fn route(
        axum::extract::State(r): axum::extract::State<Self>,
        req: axum::extract::Request,
    ) -> axum::response::Response {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let path = parts.uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default();
        let send = |base: String| {
            let mut out = r.http.request(parts.method.clone(), format!("{base}{path}")).body(body.clone());
            for (k, v) in parts.headers.iter().filter(|(k, _)| *k != "host") {
                out = out.header(k, v);
            }
            out.send()
        };
        let mut res = send(r.first.clone()).await.unwrap();
        if res.status() == 421 {
            let other = match platform::routes::service_for(parts.uri.path()) {
                "seat" => r.seat.lock().unwrap().clone(),
                _ => r.reservation.clone(),
            };
            res = send(other).await.unwrap();
        }
        let mut answer = axum::http::Response::builder().status(res.status());
        for (k, v) in res.headers() {
            answer = answer.header(k, v);
        }
        answer.body(axum::body::Body::from(res.bytes().await.unwrap())).unwrap()
    }
}
