use crate::{base_ms, conn, keys};
use contracts::{
    ConcertId, Envelope, ReservationCompleted, ReservationFailed, ReservationFailureReason, ReservationId,
    ScheduleId, SeatNo, UserId, Won,
};
use platform::queue_guard::QueueKeys;
use queue::{TokenStatus, store};
use testkit::TestEnv;

fn completed(user: UserId, token: &str) -> Envelope<ReservationCompleted> {
    let r = ReservationId::new();
    Envelope::new(
        "reservation",
        r,
        ReservationCompleted {
            reservation_id: r,
            user_id: user,
            concert_id: ConcertId::new(),
            schedule_id: ScheduleId::new(),
            seat_nos: vec![SeatNo(1)],
            amount: Won(1),
            queue_token: token.to_owned(),
        },
    )
}

fn failed(user: UserId, token: &str) -> Envelope<ReservationFailed> {
    failed_for(user, token, ReservationFailureReason::PaymentFailed)
}

fn failed_for(user: UserId, token: &str, reason: ReservationFailureReason) -> Envelope<ReservationFailed> {
    let r = ReservationId::new();
    Envelope::new(
        "reservation",
        r,
        ReservationFailed {
            reservation_id: r,
            user_id: user,
            schedule_id: ScheduleId::new(),
            seat_nos: vec![SeatNo(1)],
            reason,
            queue_token: token.to_owned(),
        },
    )
}

/// The queue service with capacity 1, admitting 1 per tick (ticks driven by the test).
async fn start() -> TestEnv {
    let env = TestEnv::new().await.unwrap();
    let rt = env.runtime_with(&[
        ("TICKETING_QUEUE_MAX_ACTIVE", "1"),
        ("TICKETING_QUEUE_ADMIT_PER_TICK", "1"),
        ("TICKETING_QUEUE_TICK_MS", "3600000"),
        ("TICKETING_QUEUE_RESTORE_MIN_SECS", "60"),
    ]);
    let _routes = testkit::start::<queue::Queue>(&rt).unwrap();
    env
}

async fn status(env: &TestEnv, token: &str) -> store::Token {
    store::poll(&mut conn(env).await, &keys(env), token, chrono::Utc::now().timestamp_millis())
        .await
        .unwrap()
        .unwrap()
}

/// Lets an active token's time run until `at` (ms).
async fn active_until(c: &mut platform::pools::Redis, keys: &QueueKeys, token: &str, at: i64) {
    redis::cmd("HSET")
        .arg(keys.token(token))
        .arg("activeUntil")
        .arg(at)
        .query_async::<()>(&mut *c)
        .await
        .unwrap();
    redis::cmd("ZADD").arg(&keys.active).arg(at).arg(token).query_async::<()>(&mut *c).await.unwrap();
}

async fn handled(env: &TestEnv, event_id: contracts::EventId) {
    env.wait_redis_handled("queue__RESERVATION", event_id).await;
}

#[tokio::test]
async fn a_completed_reservation_spends_the_token_and_frees_its_slot() {
    let env = start().await;
    let (keys, s) = (keys(&env), crate::settings(1, 1));
    let mut c = conn(&env).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let a = store::join(&mut c, &keys, alice, base_ms()).await.unwrap().token;
    let b = store::join(&mut c, &keys, bob, base_ms()).await.unwrap().token;
    let now = chrono::Utc::now().timestamp_millis();
    store::tick(&mut c, &keys, &s, now).await.unwrap();
    assert_eq!(status(&env, &a).await.status, TokenStatus::Active);
    assert_eq!(status(&env, &b).await.position, 1);

    let done = completed(alice, &a);
    env.publish(&done).await.unwrap();
    handled(&env, done.id).await;
    assert_eq!(status(&env, &a).await.status, TokenStatus::Expired);
    // The same event again (a redelivered copy) changes nothing, and a late failure of an older
    // reservation does not bring a spent token back.
    env.publish_raw("reservation.0.completed", "copy", serde_json::to_vec(&done).unwrap()).await.unwrap();
    let late = failed(alice, &a);
    env.publish(&late).await.unwrap();
    handled(&env, late.id).await;
    assert_eq!(status(&env, &a).await.status, TokenStatus::Expired);
    // The freed slot goes to bob on the next tick.
    store::tick(&mut c, &keys, &s, now + 1000).await.unwrap();
    assert_eq!(status(&env, &b).await.status, TokenStatus::Active);
    assert_eq!(store::sizes(&mut c, &keys).await.unwrap(), (0, 1));
}

#[tokio::test]
async fn a_failed_reservation_restores_the_token() {
    let env = start().await;
    let (keys, s) = (keys(&env), crate::settings(1, 1));
    let mut c = conn(&env).await;
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let a = store::join(&mut c, &keys, alice, base_ms()).await.unwrap().token;
    let now = chrono::Utc::now().timestamp_millis();
    store::tick(&mut c, &keys, &s, now).await.unwrap();

    // Live token with little active time left: it keeps at least restoreMin (60 s).
    active_until(&mut c, &keys, &a, now + 5_000).await;
    let f = failed(alice, &a);
    env.publish(&f).await.unwrap();
    handled(&env, f.id).await;
    let t = status(&env, &a).await;
    assert_eq!(t.status, TokenStatus::Active);
    assert!(t.active_until.unwrap() >= now + 59_000, "kept at least a minute");
    let kept = t.active_until;
    env.publish_raw("reservation.0.failed", "copy", serde_json::to_vec(&f).unwrap()).await.unwrap();

    // An expired token goes back to the head of the waiting queue.
    let b = store::join(&mut c, &keys, bob, base_ms()).await.unwrap().token;
    let carol_token = store::join(&mut c, &keys, carol, base_ms()).await.unwrap().token;
    // Alice's active time runs out (the reservation took too long), and the ticker expires it.
    let past = chrono::Utc::now().timestamp_millis() - 1;
    redis::cmd("ZADD").arg(&keys.active).arg(past).arg(&a).query_async::<()>(&mut c).await.unwrap();
    store::tick(&mut c, &keys, &s, now + 3_600_000).await.unwrap();
    assert_eq!(status(&env, &a).await.status, TokenStatus::Expired);
    let again = failed(alice, &a);
    env.publish(&again).await.unwrap();
    handled(&env, again.id).await;
    let t = status(&env, &a).await;
    // The tick that expired alice gave her slot to bob; alice is now ahead of carol.
    assert_eq!(status(&env, &b).await.status, TokenStatus::Active);
    assert_eq!((t.status, t.position), (TokenStatus::Waiting, 1), "back at the head");
    assert_eq!(status(&env, &carol_token).await.position, 2);
    assert!(kept.is_some());
    // Joining again finds the restored token: no re-queuing.
    let again = store::join(&mut c, &keys, alice, base_ms()).await.unwrap();
    assert_eq!((again.token, again.created, again.position), (a, false, 1));
}

#[tokio::test]
async fn a_token_its_user_left_stays_out_of_the_queue_when_a_reservation_fails_later() {
    let env = start().await;
    let (keys, s) = (keys(&env), crate::settings(1, 1));
    let mut c = conn(&env).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let a = store::join(&mut c, &keys, alice, base_ms()).await.unwrap().token;
    store::tick(&mut c, &keys, &s, chrono::Utc::now().timestamp_millis()).await.unwrap();
    assert_eq!(status(&env, &a).await.status, TokenStatus::Active);
    // Alice books, then leaves the waiting room; her reservation fails afterwards.
    assert!(store::leave(&mut c, &keys, &a, alice).await.unwrap());
    let late = failed(alice, &a);
    env.publish(&late).await.unwrap();
    handled(&env, late.id).await;
    let t = status(&env, &a).await;
    assert_eq!((t.status, t.position), (TokenStatus::Expired, 0), "not back in the queue");
    // Her slot is free: the next user is admitted at the next tick.
    let b = store::join(&mut c, &keys, bob, base_ms()).await.unwrap().token;
    store::tick(&mut c, &keys, &s, chrono::Utc::now().timestamp_millis() + 3_600_000).await.unwrap();
    assert_eq!(status(&env, &b).await.status, TokenStatus::Active);
}

#[tokio::test]
async fn cancelling_or_letting_a_hold_expire_gives_back_no_time_and_no_place() {
    let env = start().await;
    let (keys, s) = (keys(&env), crate::settings(1, 1));
    let mut c = conn(&env).await;
    let (alice, bob) = (UserId::new(), UserId::new());
    let a = store::join(&mut c, &keys, alice, base_ms()).await.unwrap().token;
    let now = chrono::Utc::now().timestamp_millis();
    store::tick(&mut c, &keys, &s, now).await.unwrap();
    // Little active time left; alice cancels her hold: the time keeps running out.
    active_until(&mut c, &keys, &a, now + 5_000).await;
    let cancelled = failed_for(alice, &a, ReservationFailureReason::Cancelled);
    env.publish(&cancelled).await.unwrap();
    handled(&env, cancelled.id).await;
    let t = status(&env, &a).await;
    assert_eq!((t.status, t.active_until), (TokenStatus::Active, Some(now + 5_000)), "no time given back");

    // Her token runs out; a hold of hers that expires later does not put it back in the queue,
    // ahead of bob, who waits.
    let b = store::join(&mut c, &keys, bob, base_ms()).await.unwrap().token;
    let past = chrono::Utc::now().timestamp_millis() - 1;
    redis::cmd("ZADD").arg(&keys.active).arg(past).arg(&a).query_async::<()>(&mut c).await.unwrap();
    let lapsed = failed_for(alice, &a, ReservationFailureReason::Expired);
    env.publish(&lapsed).await.unwrap();
    handled(&env, lapsed.id).await;
    store::tick(&mut c, &keys, &s, now + 3_600_000).await.unwrap();
    let t = status(&env, &a).await;
    assert_eq!((t.status, t.position), (TokenStatus::Expired, 0), "not back in the queue");
    assert_eq!(status(&env, &b).await.status, TokenStatus::Active, "bob keeps his turn");
}

#[tokio::test]
async fn a_restore_never_gives_one_user_two_tokens() {
    let env = start().await;
    let (keys, s) = (keys(&env), crate::settings(1, 1));
    let mut c = conn(&env).await;
    let alice = UserId::new();
    let a = store::join(&mut c, &keys, alice, base_ms()).await.unwrap().token;
    let now = chrono::Utc::now().timestamp_millis();
    store::tick(&mut c, &keys, &s, now).await.unwrap();
    // Her token runs out while her reservation is pending; she joins again and waits.
    let past = chrono::Utc::now().timestamp_millis() - 1;
    redis::cmd("ZADD").arg(&keys.active).arg(past).arg(&a).query_async::<()>(&mut c).await.unwrap();
    store::tick(&mut c, &keys, &s, now + 3_600_000).await.unwrap();
    let store::Joined { token: again, created, .. } =
        store::join(&mut c, &keys, alice, base_ms()).await.unwrap();
    assert!(created && again != a);
    // The reservation then fails through no doing of hers: the old token is not restored
    // beside the new one.
    let f = failed_for(alice, &a, ReservationFailureReason::SeatUnavailable);
    env.publish(&f).await.unwrap();
    handled(&env, f.id).await;
    assert_eq!(status(&env, &a).await.status, TokenStatus::Expired);
    assert_eq!(status(&env, &again).await.status, TokenStatus::Waiting);
    assert_eq!(store::sizes(&mut c, &keys).await.unwrap(), (1, 0), "one token of hers in the room");
    assert_eq!(store::join(&mut c, &keys, alice, base_ms()).await.unwrap().token, again);
}

/// An admin blocks or unblocks `user` (`UserStatusChanged`); the queue has taken it on return.
async fn user_status(env: &TestEnv, user: UserId, status: contracts::UserStatus) {
    let e = Envelope::new(
        "user",
        user.0,
        contracts::UserStatusChanged { user_id: user, status, changed_at: chrono::Utc::now() },
    );
    env.publish(&e).await.unwrap();
    env.wait_redis_handled("queue__USER", e.id).await;
}

#[tokio::test]
async fn a_blocked_user_loses_every_token_and_joins_no_room_until_unblocked() {
    let env = start().await;
    let (keys, s) = (keys(&env), crate::settings(1, 1));
    let mut c = conn(&env).await;
    let (mallory, alice) = (UserId::new(), UserId::new());
    // Mallory is admitted in the global room and waits in a sale's room; Alice waits behind her.
    let admitted = store::join(&mut c, &keys, mallory, base_ms()).await.unwrap().token;
    store::tick(&mut c, &keys, &s, chrono::Utc::now().timestamp_millis()).await.unwrap();
    assert_eq!(status(&env, &admitted).await.status, TokenStatus::Active);
    let sale = ScheduleId::new();
    let created = Envelope::new(
        "concert",
        sale.0,
        contracts::ScheduleCreated {
            schedule_id: sale,
            concert_id: ConcertId::new(),
            starts_at: chrono::Utc::now() + chrono::Duration::days(1),
            seats: vec![],
            sales_open_at: None,
        },
    );
    env.publish(&created).await.unwrap();
    env.wait_redis_handled("queue__CATALOG", created.id).await;
    let room = keys.room(Some(sale));
    let waiting = store::join(&mut c, &room, mallory, base_ms()).await.unwrap().token;
    let behind = store::join(&mut c, &room, alice, base_ms()).await.unwrap().token;
    assert_eq!(status(&env, &behind).await.position, 2);

    user_status(&env, mallory, contracts::UserStatus::Blocked).await;
    // Both her tokens are gone: her admission freed its place, Alice moved up.
    for token in [&admitted, &waiting] {
        assert_eq!(status(&env, token).await.status, TokenStatus::Expired, "{token}");
    }
    assert_eq!(store::sizes(&mut c, &keys).await.unwrap(), (0, 0));
    assert_eq!(status(&env, &behind).await.position, 1);
    // She joins no room.
    for k in [&keys, &room] {
        match store::join(&mut c, k, mallory, base_ms()).await {
            Err(e) => assert!(e.to_string().contains("blocked"), "{e}"),
            Ok(j) => panic!("a blocked user joined: {}", j.token),
        }
    }
    // Unblocked, she joins again, at the back.
    user_status(&env, mallory, contracts::UserStatus::Active).await;
    let again = store::join(&mut c, &room, mallory, base_ms()).await.unwrap();
    assert_eq!((again.created, again.position), (true, 2));
}
