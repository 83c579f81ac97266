use crate::{base_ms, conn, keys, settings};
use contracts::UserId;
use queue::{TokenStatus, store, ticker};
use std::time::Duration;
use testkit::TestEnv;

async fn join_many(env: &TestEnv, n: usize) -> Vec<String> {
    let keys = keys(env);
    let mut c = conn(env).await;
    let mut tokens = Vec::new();
    for _ in 0..n {
        tokens.push(store::join(&mut c, &keys, UserId::new(), base_ms()).await.unwrap().token);
    }
    tokens
}

async fn statuses(env: &TestEnv, tokens: &[String], now: i64) -> Vec<TokenStatus> {
    let keys = keys(env);
    let mut c = conn(env).await;
    let mut out = Vec::new();
    for t in tokens {
        out.push(store::poll(&mut c, &keys, t, now).await.unwrap().unwrap().status);
    }
    out
}

#[tokio::test]
async fn ticks_admit_in_fifo_order_up_to_the_capacity() {
    let env = TestEnv::new().await.unwrap();
    let (keys, s) = (keys(&env), settings(100, 10));
    let tokens = join_many(&env, 150).await;
    let mut c = conn(&env).await;
    let start = base_ms() + 10_000;
    for k in 1..=12u64 {
        let now = start + (k as i64) * 1000;
        let (_, admitted) = store::tick(&mut c, &keys, &s, now).await.unwrap();
        assert_eq!(admitted, if k <= 10 { 10 } else { 0 }, "tick {k}");
        let expected = (10 * k).min(100) as usize;
        let st = statuses(&env, &tokens, now).await;
        assert!(
            st[..expected].iter().all(|s| *s == TokenStatus::Active),
            "tick {k}: the first {expected} are active"
        );
        assert!(st[expected..].iter().all(|s| *s == TokenStatus::Waiting), "tick {k}: the rest still wait");
    }
    // A second tick in the same window admits nothing.
    assert_eq!(store::tick(&mut c, &keys, &s, start + 12_500).await.unwrap(), (0, 0));
    // Once the active TTL (600 s) has passed, the slots free and the next ten come in.
    let later = start + 12_000 + 601_000;
    let (expired, admitted) = store::tick(&mut c, &keys, &s, later).await.unwrap();
    assert_eq!((expired, admitted), (100, 10));
    let st = statuses(&env, &tokens, later).await;
    assert!(st[..100].iter().all(|s| *s == TokenStatus::Expired));
    assert!(st[100..110].iter().all(|s| *s == TokenStatus::Active));
    assert!(st[110..].iter().all(|s| *s == TokenStatus::Waiting));
    let mut c = conn(&env).await;
    let positions: Vec<u64> = futures::future::join_all(tokens[110..].iter().map(|t| {
        let keys = keys.clone();
        let redis = env.redis.clone();
        let t = t.clone();
        async move { store::poll(&mut redis.clone(), &keys, &t, later).await.unwrap().unwrap().position }
    }))
    .await;
    assert_eq!(positions, (1..=40).collect::<Vec<u64>>());
    assert_eq!(store::sizes(&mut c, &keys).await.unwrap(), (40, 10));
}

#[tokio::test]
async fn two_replicas_ticking_at_once_admit_one_batch_per_tick() {
    let env = TestEnv::new().await.unwrap();
    let (keys, s) = (keys(&env), settings(10_000, 7));
    join_many(&env, 500).await;
    let start = base_ms() + 20_000;
    for window in 1..=20i64 {
        let now = start + window * 1000;
        let (a, b) = tokio::join!(
            async { store::tick(&mut conn(&env).await, &keys, &s, now).await.unwrap().1 },
            async { store::tick(&mut conn(&env).await, &keys, &s, now + 3).await.unwrap().1 },
        );
        assert_eq!(a + b, 7, "window {window}: {a} + {b}");
    }
    assert_eq!(store::sizes(&mut conn(&env).await, &keys).await.unwrap().1, 140);
}

#[tokio::test]
async fn two_running_tickers_never_exceed_the_rate() {
    let env = TestEnv::new().await.unwrap();
    let keys = keys(&env);
    let mut s = settings(10_000, 5);
    s.tick = Duration::from_millis(100);
    join_many(&env, 400).await;
    let started = std::time::Instant::now();
    for _ in 0..2 {
        tokio::spawn(ticker::run(env.redis.clone(), keys.clone(), s.clone(), env.shutdown.clone()));
    }
    // Let both tickers run through several windows; the property is an upper bound, so how
    // many windows pass does not matter.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let active = store::sizes(&mut conn(&env).await, &keys).await.unwrap().1;
    let windows = started.elapsed().as_millis() as u64 / 100 + 2;
    assert!(active <= 5 * windows, "{active} admitted in at most {windows} tick windows");
}

/// A restart with a longer or a shorter tick keeps admitting: the last window is remembered by
/// when it started, not by its number under the old length (which would, under a longer tick,
/// leave every window "already spent" for ages).
#[tokio::test]
async fn a_changed_tick_length_neither_stalls_nor_repeats_admission() {
    let env = TestEnv::new().await.unwrap();
    let keys = keys(&env);
    join_many(&env, 10).await;
    let mut c = conn(&env).await;
    let mut short = settings(10_000, 1);
    short.tick = Duration::from_millis(50);
    let mut long = short.clone();
    long.tick = Duration::from_millis(200);
    let start = (base_ms() / 1000 + 60) * 1000;
    assert_eq!(store::tick(&mut c, &keys, &short, start + 150).await.unwrap().1, 1);
    // The 200 ms window that began at `start` began before the 50 ms one just spent.
    assert_eq!(store::tick(&mut c, &keys, &long, start + 160).await.unwrap().1, 0);
    assert_eq!(store::tick(&mut c, &keys, &long, start + 200).await.unwrap().1, 1);
    assert_eq!(store::tick(&mut c, &keys, &long, start + 399).await.unwrap().1, 0);
    assert_eq!(store::tick(&mut c, &keys, &short, start + 410).await.unwrap().1, 1);
    assert_eq!(store::tick(&mut c, &keys, &short, start + 449).await.unwrap().1, 0);
    assert_eq!(store::sizes(&mut c, &keys).await.unwrap(), (7, 3));
}
