//! The runtime's background tasks: one that dies stops the process, named on `/healthz`.

use std::time::Duration;
use testkit::{TestEnv, eventually};

#[tokio::test]
async fn a_background_task_that_ends_or_panics_stops_the_process_and_is_named() {
    for (name, dies) in [("returns", false), ("panics", true)] {
        let env = TestEnv::new().await.unwrap();
        let rt = env.runtime();
        rt.spawn("steady", {
            let shutdown = rt.shutdown.clone();
            async move { shutdown.cancelled().await }
        });
        rt.spawn(name, async move {
            assert!(!dies, "boom");
        });
        eventually("the process to stop", Duration::from_secs(5), || {
            let stopped = rt.shutdown.is_cancelled();
            async move { stopped.then_some(()) }
        })
        .await;
        let dead = rt.liveness.dead();
        assert_eq!(dead.len(), 1, "only the task that died: {dead:?}");
        assert!(dead[0].starts_with(name), "{dead:?}");
        let why = if dies { "panicked: boom" } else { "ended while the process was running" };
        assert!(dead[0].ends_with(why), "{dead:?}");
        tokio::time::timeout(Duration::from_secs(5), rt.drain()).await.unwrap();
    }
}
