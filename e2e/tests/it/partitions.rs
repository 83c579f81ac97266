//! Events spread over partitions (docs/scaling.md §2.2): with `TICKETING_PARTITION_COUNT=2`,
//! every event about a schedule carries the schedule's partition in its subject, and the
//! consumers, which filter on every partition, run the sagas of both.

use crate::scenario;
use contracts::{
    Bucket, Partitions, PaymentCompleted, ReservationCompleted, ReservationRequested, ScheduleCreated,
    ScheduleId, SeatReserved, UserId,
};
use e2e::api::id_of;

#[tokio::test]
async fn a_schedules_events_carry_its_partition_and_sagas_complete_in_each() {
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
