use crate::{conn, keys};
use contracts::UserId;
use queue::store;
use std::sync::Arc;
use testkit::TestEnv;

#[tokio::test]
async fn ten_thousand_concurrent_joins_get_positions_one_to_n_in_join_order() {
    let env = TestEnv::new().await.unwrap();
    let keys = Arc::new(keys(&env));
    let users: Vec<UserId> = (0..10_000).map(|_| UserId::new()).collect();
    let tasks = users.chunks(100).map(|chunk| {
        let (redis, keys, chunk) = (env.redis.clone(), keys.clone(), chunk.to_vec());
        tokio::spawn(async move {
            let mut conn = redis.clone();
            let mut out = Vec::new();
            for user in chunk {
                let store::Joined { token, created, position, .. } =
                    store::join(&mut conn, &keys, user, chrono::Utc::now().timestamp_millis()).await.unwrap();
                assert!(created);
                out.push((user, token, position));
            }
            out
        })
    });
    let joined: Vec<_> =
        futures::future::join_all(tasks).await.into_iter().flat_map(|r| r.unwrap()).collect();

    let mut positions: Vec<u64> = joined.iter().map(|(_, _, p)| *p).collect();
    positions.sort_unstable();
    assert_eq!(positions, (1..=10_000).collect::<Vec<u64>>(), "positions are exactly 1..=10,000");
    // Join order is the INCR sequence each join took; the position is its rank.
    let mut c = conn(&env).await;
    for (_, token, position) in joined.iter().step_by(97) {
        let seq: u64 =
            redis::cmd("HGET").arg(keys.token(token)).arg("seq").query_async(&mut c).await.unwrap();
        assert_eq!(seq, *position);
    }
    // Joining again returns the same token and place.
    for (user, token, position) in joined.iter().take(50) {
        let again = store::join(&mut c, &keys, *user, chrono::Utc::now().timestamp_millis()).await.unwrap();
        assert_eq!((again.token, again.created, again.position), (token.clone(), false, *position));
    }
    let (waiting, active) = store::sizes(&mut c, &keys).await.unwrap();
    assert_eq!((waiting, active), (10_000, 0));
}
