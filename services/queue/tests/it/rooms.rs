//! A sale's own waiting room: its own line, only its tokens book it, and SOLD_OUT for everyone
//! in it once the seat service announces the schedule sold out.

use crate::{conn, keys};
use axum::{Json, Router, extract::Path, routing::post};
use contracts::{ConcertId, Envelope, ScheduleCreated, ScheduleId, SoldOut, UserId};
use platform::queue_guard::{QueueGate, QueueTicket};
use queue::{TokenStatus, store};
use reqwest::Method;
use serde_json::{Value, json};
use testkit::TestEnv;

/// The queue service with capacity 1, admitting 1 per tick (ticks driven by the test).
async fn start() -> (TestEnv, String) {
    let env = TestEnv::new().await.unwrap();
    let rt = env.runtime_with(&[
        ("TICKETING_QUEUE_MAX_ACTIVE", "1"),
        ("TICKETING_QUEUE_ADMIT_PER_TICK", "1"),
        ("TICKETING_QUEUE_TICK_MS", "3600000"),
    ]);
    let url = env.spawn_app(testkit::start::<queue::Queue>(&rt).unwrap()).await.unwrap();
    (env, url)
}

/// The catalog announces `schedule`; the queue knows it once this returns.
async fn announce(env: &TestEnv, schedule: ScheduleId) {
    announce_sale(env, schedule, None).await;
}

/// The catalog announces `schedule`, on sale from `opens` (at once with `None`).
async fn announce_sale(env: &TestEnv, schedule: ScheduleId, opens: Option<chrono::DateTime<chrono::Utc>>) {
    let created = Envelope::new(
        "concert",
        schedule.0,
        ScheduleCreated {
            schedule_id: schedule,
            concert_id: ConcertId::new(),
            starts_at: chrono::Utc::now(),
            seats: vec![],
            sales_open_at: opens,
        },
    );
    env.publish(&created).await.unwrap();
    env.wait_redis_handled("queue__CATALOG", created.id).await;
}

/// The seat service announces `schedule` sold out.
async fn sell_out(env: &TestEnv, schedule: ScheduleId) {
    let sold = Envelope::new(
        "seat",
        schedule.0,
        SoldOut {
            schedule_id: schedule,
            concert_id: ConcertId::new(),
            sold_out_at: chrono::Utc::now(),
            seconds_to_sell_out: 1,
        },
    );
    env.publish(&sold).await.unwrap();
    env.wait_redis_handled("queue__SEAT", sold.id).await;
}

async fn status(env: &TestEnv, token: &str) -> store::Token {
    store::poll(&mut conn(env).await, &keys(env), token, chrono::Utc::now().timestamp_millis())
        .await
        .unwrap()
        .unwrap()
}

async fn call(
    url: &str,
    env: &TestEnv,
    method: Method,
    path: &str,
    user: UserId,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req =
        reqwest::Client::new().request(method, format!("{url}{path}")).bearer_auth(env.user_token(user));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    if status >= 400 {
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    (status, res.json().await.unwrap_or(Value::Null))
}

/// A booking route of `schedule`, behind the guard.
async fn book(
    Path(schedule): Path<uuid::Uuid>,
    ticket: QueueTicket,
) -> Result<Json<Value>, platform::Problem> {
    let admitted = ticket.admit(Some(ScheduleId(schedule))).await?;
    Ok(Json(json!({"token": admitted.token})))
}

#[derive(Clone, axum::extract::FromRef)]
struct Booking {
    gate: QueueGate,
    jwt: platform::auth::JwtKeys,
}

async fn booking_app(env: &TestEnv) -> String {
    let state = Booking { gate: QueueGate::new(env.redis.clone(), &env.ns, true), jwt: env.jwt() };
    env.spawn_app(Router::new().route("/book/{schedule}", post(book)).with_state(state)).await.unwrap()
}

async fn try_book(url: &str, env: &TestEnv, user: UserId, token: &str, schedule: ScheduleId) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("{url}/book/{schedule}"))
        .bearer_auth(env.user_token(user))
        .header("X-Queue-Token", token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_sale_has_its_own_line_and_only_its_tokens_book_it() {
    let (env, url) = start().await;
    let booking = booking_app(&env).await;
    let (sale, other) = (ScheduleId::new(), ScheduleId::new());
    let (alice, bob, dave) = (UserId::new(), UserId::new(), UserId::new());

    // Only a schedule the catalog announced has a room; a body that is not one is refused.
    let (code, body) =
        call(&url, &env, Method::POST, "/queue/tokens", alice, Some(json!({"scheduleId": sale}))).await;
    assert_eq!((code, body["code"].as_str()), (404, Some("SCHEDULE_NOT_FOUND")), "{body}");
    let (code, body) =
        call(&url, &env, Method::POST, "/queue/tokens", alice, Some(json!({"schedule": sale}))).await;
    assert_eq!((code, body["code"].as_str()), (400, Some("VALIDATION_FAILED")), "{body}");
    announce(&env, sale).await;

    let join = |user: UserId, body: Option<Value>| {
        let (url, env) = (url.clone(), &env);
        async move {
            let (code, t) = call(&url, env, Method::POST, "/queue/tokens", user, body).await;
            assert_eq!(code, 201, "{t}");
            t
        }
    };
    let a = join(alice, Some(json!({"scheduleId": sale}))).await;
    let b = join(bob, Some(json!({"scheduleId": sale}))).await;
    // `null` is the optional body's absence: the global line.
    let d = join(dave, Some(Value::Null)).await;
    // Each room is its own line.
    assert_eq!(
        (a["position"].as_u64(), b["position"].as_u64(), d["position"].as_u64()),
        (Some(1), Some(2), Some(1))
    );
    assert_eq!((a["scheduleId"].as_str(), d.get("scheduleId")), (Some(sale.to_string().as_str()), None));
    let (a, b, d) =
        (a["token"].as_str().unwrap(), b["token"].as_str().unwrap(), d["token"].as_str().unwrap());

    // One tick admits the head of every room, each at the room's own pace.
    let keys = keys(&env);
    let mut c = conn(&env).await;
    let rooms = store::rooms(&mut c, &keys).await.unwrap();
    assert_eq!(rooms.iter().map(|r| r.schedule).collect::<Vec<_>>(), [None, Some(sale)]);
    let now = chrono::Utc::now().timestamp_millis();
    for room in &rooms {
        assert_eq!(store::tick(&mut c, room, &crate::settings(1, 1), now).await.unwrap(), (0, 1));
    }
    assert_eq!(status(&env, a).await.status, TokenStatus::Active);
    assert_eq!((status(&env, b).await.status, status(&env, b).await.position), (TokenStatus::Waiting, 1));
    assert_eq!(status(&env, d).await.schedule, None);

    // Alice's token books her sale and no other; dave's global token does not book a sale
    // whose own room has users in it, but books one without a room.
    assert_eq!(try_book(&booking, &env, alice, a, sale).await.0, 200);
    let (code, refused) = try_book(&booking, &env, alice, a, other).await;
    assert_eq!((code, refused["code"].as_str()), (403, Some("QUEUE_TOKEN_OTHER_SALE")), "{refused}");
    let (code, refused) = try_book(&booking, &env, dave, d, sale).await;
    assert_eq!((code, refused["code"].as_str()), (403, Some("QUEUE_TOKEN_OTHER_SALE")), "{refused}");
    assert_eq!(try_book(&booking, &env, dave, d, other).await.0, 200);

    let (_, st) = call(&url, &env, Method::GET, &format!("/queue/status?scheduleId={sale}"), bob, None).await;
    assert_eq!(
        (st["waiting"].as_u64(), st["active"].as_u64(), st["soldOut"].as_bool()),
        (Some(1), Some(1), Some(false))
    );
    let (_, st) = call(&url, &env, Method::GET, "/queue/status", bob, None).await;
    assert_eq!((st["waiting"].as_u64(), st["active"].as_u64()), (Some(0), Some(1)));
}

#[tokio::test]
async fn a_sold_out_sale_tells_everyone_in_its_room_at_once() {
    let (env, url) = start().await;
    let booking = booking_app(&env).await;
    let sale = ScheduleId::new();
    announce(&env, sale).await;
    let keys = keys(&env);
    let room = keys.room(Some(sale));
    let mut c = conn(&env).await;
    let now = chrono::Utc::now().timestamp_millis();
    let users: Vec<UserId> = (0..4).map(|_| UserId::new()).collect();
    let mut tokens = Vec::new();
    for u in &users {
        tokens.push(store::join(&mut c, &room, *u, now).await.unwrap().token);
    }
    let global_user = UserId::new();
    let global = store::join(&mut c, &keys, global_user, now).await.unwrap().token;
    store::tick(&mut c, &room, &crate::settings(1, 1), now).await.unwrap();
    store::tick(&mut c, &keys, &crate::settings(1, 1), now).await.unwrap();
    // The first user bought (the reservation completed and spent the token); the second left.
    let spent = Envelope::new(
        "reservation",
        uuid::Uuid::new_v4(),
        contracts::ReservationCompleted {
            reservation_id: contracts::ReservationId::new(),
            user_id: users[0],
            concert_id: ConcertId::new(),
            schedule_id: sale,
            seat_nos: vec![contracts::SeatNo(1)],
            amount: contracts::Won(1),
            queue_token: tokens[0].clone(),
        },
    );
    env.publish(&spent).await.unwrap();
    env.wait_redis_handled("queue__RESERVATION", spent.id).await;
    store::tick(&mut c, &room, &crate::settings(1, 1), now + 1000).await.unwrap();
    assert!(store::leave(&mut c, &room, &tokens[3], users[3]).await.unwrap());
    assert_eq!(status(&env, &tokens[1]).await.status, TokenStatus::Active);
    assert_eq!(status(&env, &tokens[2]).await.status, TokenStatus::Waiting);

    sell_out(&env, sale).await;
    // Admitted without a purchase or still waiting: SOLD_OUT, at once and with no place.
    let read: Vec<(TokenStatus, u64)> = {
        let mut out = Vec::new();
        for t in &tokens {
            let t = status(&env, t).await;
            out.push((t.status, t.position));
        }
        out
    };
    assert_eq!(
        read,
        [
            (TokenStatus::Expired, 0),
            (TokenStatus::SoldOut, 0),
            (TokenStatus::SoldOut, 0),
            (TokenStatus::Expired, 0)
        ]
    );
    let (_, seen) =
        call(&url, &env, Method::GET, &format!("/queue/tokens/{}", tokens[2]), users[2], None).await;
    assert_eq!((seen["status"].as_str(), seen["etaSeconds"].as_u64()), (Some("SOLD_OUT"), Some(0)));
    let (code, refused) = try_book(&booking, &env, users[1], &tokens[1], sale).await;
    assert_eq!((code, refused["code"].as_str()), (409, Some("SOLD_OUT")), "{refused}");
    // No one joins it any more, no tick admits from it, and the ticker no longer visits it.
    let (code, refused) =
        call(&url, &env, Method::POST, "/queue/tokens", UserId::new(), Some(json!({"scheduleId": sale})))
            .await;
    assert_eq!((code, refused["code"].as_str()), (409, Some("SOLD_OUT")), "{refused}");
    assert_eq!(store::tick(&mut c, &room, &crate::settings(10, 10), now + 5000).await.unwrap(), (0, 0));
    assert_eq!(store::sizes(&mut c, &room).await.unwrap(), (0, 0));
    assert_eq!(store::rooms(&mut c, &keys).await.unwrap().len(), 1, "only the global room is left");
    // A late failure of a reservation of the sale brings no token back.
    let late = Envelope::new(
        "reservation",
        uuid::Uuid::new_v4(),
        contracts::ReservationFailed {
            reservation_id: contracts::ReservationId::new(),
            user_id: users[1],
            schedule_id: sale,
            seat_nos: vec![contracts::SeatNo(2)],
            reason: contracts::ReservationFailureReason::SeatUnavailable,
            queue_token: tokens[1].clone(),
        },
    );
    env.publish(&late).await.unwrap();
    env.wait_redis_handled("queue__RESERVATION", late.id).await;
    assert_eq!(status(&env, &tokens[1]).await.status, TokenStatus::SoldOut);
    assert_eq!(store::rooms(&mut c, &keys).await.unwrap().len(), 1);
    // The global room goes on as before.
    assert_eq!(status(&env, &global).await.status, TokenStatus::Active);
    assert_eq!(try_book(&booking, &env, global_user, &global, ScheduleId::new()).await.0, 200);
}

#[tokio::test]
async fn a_token_stream_tells_each_move_and_ends_with_sold_out() {
    let env = TestEnv::new().await.unwrap();
    let rt = env.runtime_with(&[
        ("TICKETING_QUEUE_MAX_ACTIVE", "1"),
        ("TICKETING_QUEUE_ADMIT_PER_TICK", "1"),
        ("TICKETING_QUEUE_TICK_MS", "3600000"),
        ("TICKETING_QUEUE_LIVE_MS", "50"),
    ]);
    let url = env.spawn_app(testkit::start::<queue::Queue>(&rt).unwrap()).await.unwrap();
    let sale = ScheduleId::new();
    announce(&env, sale).await;
    let (alice, bob, carol) = (UserId::new(), UserId::new(), UserId::new());
    let mut tokens = Vec::new();
    for u in [alice, bob, carol] {
        let (_, t) =
            call(&url, &env, Method::POST, "/queue/tokens", u, Some(json!({"scheduleId": sale}))).await;
        tokens.push(t["token"].as_str().unwrap().to_owned());
    }
    let open = |user: UserId, token: &str| {
        reqwest::Client::new()
            .get(format!("{url}/queue/tokens/{token}/events"))
            .bearer_auth(env.user_token(user))
            .send()
    };
    // Only the token's user may watch it.
    assert_eq!(open(alice, &tokens[2]).await.unwrap().status(), 404);
    let mut events = testkit::Events::of(open(carol, &tokens[2]).await.unwrap());
    macro_rules! next {
        () => {
            events
                .next("token")
                .await
                .map(|v| (v["status"].as_str().unwrap().to_owned(), v["position"].as_u64().unwrap()))
        };
    }

    // Each move of the line reaches the stream, and the stream ends after SOLD_OUT.
    assert_eq!(next!(), Some(("WAITING".into(), 3)));
    let (room, mut c) = (keys(&env).room(Some(sale)), conn(&env).await);
    let now = chrono::Utc::now().timestamp_millis();
    store::tick(&mut c, &room, &crate::settings(1, 1), now).await.unwrap();
    assert_eq!(next!(), Some(("WAITING".into(), 2)));
    assert!(store::leave(&mut c, &room, &tokens[0], alice).await.unwrap());
    store::tick(&mut c, &room, &crate::settings(1, 1), now + 1000).await.unwrap();
    assert_eq!(next!(), Some(("WAITING".into(), 1)));
    assert_eq!(status(&env, &tokens[1]).await.status, TokenStatus::Active, "bob was admitted");
    sell_out(&env, sale).await;
    assert_eq!(next!(), Some(("SOLD_OUT".into(), 0)));
    assert_eq!(next!(), None);
}

#[tokio::test]
async fn a_waiting_read_is_answered_on_admission_or_when_the_sale_sells_out() {
    let env = TestEnv::new().await.unwrap();
    let rt = env.runtime_with(&[
        ("TICKETING_QUEUE_MAX_ACTIVE", "1"),
        ("TICKETING_QUEUE_ADMIT_PER_TICK", "1"),
        ("TICKETING_QUEUE_TICK_MS", "3600000"),
        ("TICKETING_QUEUE_LIVE_MS", "50"),
    ]);
    let url = env.spawn_app(testkit::start::<queue::Queue>(&rt).unwrap()).await.unwrap();
    let sale = ScheduleId::new();
    announce(&env, sale).await;
    let wait_for = |user: UserId, method: Method, path: String, body: Option<Value>| {
        let mut req = reqwest::Client::new()
            .request(method, format!("{url}{path}"))
            .bearer_auth(env.user_token(user))
            .header("Prefer", "wait=10");
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let started = std::time::Instant::now();
            let v: Value = req.send().await.unwrap().json().await.unwrap();
            (v, started.elapsed())
        }
    };
    let (alice, bob) = (UserId::new(), UserId::new());
    let (_, a) =
        call(&url, &env, Method::POST, "/queue/tokens", alice, Some(json!({"scheduleId": sale}))).await;
    let a = a["token"].as_str().unwrap().to_owned();
    // Bob joins and waits in the same request; alice waits on her token.
    let bob_joins =
        tokio::spawn(wait_for(bob, Method::POST, "/queue/tokens".into(), Some(json!({"scheduleId": sale}))));
    let alice_waits = tokio::spawn(wait_for(alice, Method::GET, format!("/queue/tokens/{a}"), None));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!alice_waits.is_finished() && !bob_joins.is_finished(), "both still wait");
    let (room, mut c) = (keys(&env).room(Some(sale)), conn(&env).await);
    store::tick(&mut c, &room, &crate::settings(1, 1), chrono::Utc::now().timestamp_millis()).await.unwrap();
    let (seen, took) = alice_waits.await.unwrap();
    assert_eq!(seen["status"], "ACTIVE", "{seen}");
    assert!(took < std::time::Duration::from_secs(5), "answered on admission, not at the limit: {took:?}");
    assert!(!bob_joins.is_finished(), "bob's place was not reached");
    sell_out(&env, sale).await;
    let (seen, took) = bob_joins.await.unwrap();
    assert_eq!((seen["status"].as_str(), seen["position"].as_u64()), (Some("SOLD_OUT"), Some(0)), "{seen}");
    assert!(took < std::time::Duration::from_secs(9), "answered when the sale sold out: {took:?}");
}

/// Every token of `tokens` in the order the room admits them: by place, read at `at`.
async fn places(env: &TestEnv, tokens: &[String], at: i64) -> Vec<u64> {
    let mut c = conn(env).await;
    let mut out = Vec::new();
    for t in tokens {
        out.push(store::poll(&mut c, &keys(env), t, at).await.unwrap().unwrap().position);
    }
    out
}

#[tokio::test]
async fn those_who_join_before_a_sale_opens_are_drawn_in_random_order_and_go_first() {
    let (env, url) = start().await;
    let opens = chrono::Utc::now() + chrono::Duration::hours(1);
    let opens_ms = opens.timestamp_millis();
    let (sale, other) = (ScheduleId::new(), ScheduleId::new());
    announce_sale(&env, sale, Some(opens)).await;
    announce_sale(&env, other, Some(opens)).await;
    let keys = keys(&env);
    let mut c = conn(&env).await;
    let before = opens_ms - 60_000;
    let early: Vec<UserId> = (0..30).map(|_| UserId::new()).collect();
    let (mut tokens, mut elsewhere) = (Vec::new(), Vec::new());
    for u in &early {
        let joined = store::join(&mut c, &keys.room(Some(sale)), *u, before).await.unwrap();
        assert_eq!(joined.opens_at, Some(opens_ms), "a join before the opening is told when it opens");
        tokens.push(joined.token);
        elsewhere.push(store::join(&mut c, &keys.room(Some(other)), *u, before).await.unwrap().token);
    }

    // The order is a draw, not arrival, and each sale draws its own.
    let drawn = places(&env, &tokens, before).await;
    let mut sorted = drawn.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=30).collect::<Vec<u64>>());
    assert_ne!(drawn, sorted, "thirty joins kept their arrival order: no draw was made");
    assert_ne!(drawn, places(&env, &elsewhere, before).await, "two sales drew the same order");

    // Leaving and joining again before the opening finds the same place: no second draw.
    let last = drawn[29];
    assert!(store::leave(&mut c, &keys, &tokens[29], early[29]).await.unwrap());
    let again = store::join(&mut c, &keys.room(Some(sale)), early[29], before + 1).await.unwrap();
    assert!(again.created);
    assert_eq!(again.position, last);
    tokens[29] = again.token;

    // The token says when the sale opens, and its ETA counts the wait for it.
    let (code, seen) =
        call(&url, &env, Method::GET, &format!("/queue/tokens/{}", tokens[0]), early[0], None).await;
    assert_eq!(code, 200, "{seen}");
    let said: chrono::DateTime<chrono::Utc> = seen["salesOpenAt"].as_str().unwrap().parse().unwrap();
    assert_eq!(said.timestamp_millis(), opens_ms);
    assert!(seen["etaSeconds"].as_u64().unwrap() >= 3500, "{seen}");

    // No tick admits before the opening.
    let room = keys.room(Some(sale));
    assert_eq!(store::tick(&mut c, &room, &crate::settings(100, 10), before + 1000).await.unwrap(), (0, 0));
    assert_eq!(store::tick(&mut c, &room, &crate::settings(100, 10), opens_ms - 1).await.unwrap(), (0, 0));

    // After the opening, first come first served: behind every early joiner.
    let late = UserId::new();
    let joined = store::join(&mut c, &room, late, opens_ms + 10).await.unwrap();
    assert_eq!((joined.position, joined.opens_at), (31, None));

    // The opening tick admits the first ten of the draw, the next the next ten.
    let admitted =
        |drawn: &[u64], upto: u64| -> Vec<usize> { (0..drawn.len()).filter(|i| drawn[*i] <= upto).collect() };
    assert_eq!(
        store::tick(&mut c, &room, &crate::settings(100, 10), opens_ms + 1000).await.unwrap(),
        (0, 10)
    );
    let mut active = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if status(&env, t).await.status == TokenStatus::Active {
            active.push(i);
        }
    }
    assert_eq!(active, admitted(&drawn, 10));
    assert_eq!(
        store::tick(&mut c, &room, &crate::settings(100, 30), opens_ms + 2000).await.unwrap(),
        (0, 21)
    );
    assert_eq!(status(&env, &joined.token).await.status, TokenStatus::Active, "the late joiner came last");
    let (_, seen) =
        call(&url, &env, Method::GET, &format!("/queue/tokens/{}", tokens[0]), early[0], None).await;
    assert!(seen.get("salesOpenAt").is_none(), "{seen}");
}

#[tokio::test]
async fn a_moved_opening_moves_the_room_and_a_cancelled_schedule_closes_it() {
    let (env, url) = start().await;
    let sale = ScheduleId::new();
    let keys = keys(&env);
    let room = keys.room(Some(sale));
    let mut c = conn(&env).await;
    announce(&env, sale).await;
    let now = chrono::Utc::now();
    let user = UserId::new();
    assert_eq!(store::join(&mut c, &room, user, now.timestamp_millis()).await.unwrap().opens_at, None);

    // The organizer moves the opening an hour ahead: the room waits for it.
    let opens = now + chrono::Duration::hours(1);
    let changed = Envelope::new(
        "concert",
        sale.0,
        contracts::ScheduleChanged {
            schedule_id: sale,
            concert_id: ConcertId::new(),
            starts_at: now + chrono::Duration::days(1),
            sales_open_at: Some(opens),
        },
    );
    env.publish(&changed).await.unwrap();
    env.wait_redis_handled("queue__CATALOG", changed.id).await;
    let other = store::join(&mut c, &room, UserId::new(), now.timestamp_millis()).await.unwrap();
    assert_eq!(other.opens_at, Some(opens.timestamp_millis()));
    assert_eq!(
        store::tick(&mut c, &room, &crate::settings(10, 10), now.timestamp_millis()).await.unwrap(),
        (0, 0)
    );

    // Cancelled: every token of it reads SOLD_OUT (nothing is left to buy), and no one joins.
    let cancelled = Envelope::new(
        "concert",
        sale.0,
        contracts::ScheduleCancelled { schedule_id: sale, concert_id: ConcertId::new(), cancelled_at: now },
    );
    env.publish(&cancelled).await.unwrap();
    env.wait_redis_handled("queue__CATALOG", cancelled.id).await;
    assert_eq!(status(&env, &other.token).await.status, TokenStatus::SoldOut);
    let (code, refused) =
        call(&url, &env, Method::POST, "/queue/tokens", UserId::new(), Some(json!({"scheduleId": sale})))
            .await;
    assert_eq!(code, 409, "{refused}");
}
