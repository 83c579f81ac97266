//! The wallet's credentials reach the wallet's state and nothing else.

use sea_orm::{ConnectionTrait, DbErr};
use testkit::{TestEnv, with_user};

/// Runs `sql` as `role` on the environment's database.
async fn run_as(env: &TestEnv, role: &str, sql: &str) -> Result<(), DbErr> {
    let db = platform::pools::connect_db(&with_user(&env.database_url, role), 1)
        .await
        .map_err(|e| DbErr::Custom(e.to_string()))?;
    let outcome = db.execute_unprepared(sql).await.map(|_| ());
    db.close().await?;
    outcome
}

fn refused(outcome: Result<(), DbErr>, what: &str) {
    let e = outcome.expect_err(what);
    assert!(e.to_string().contains("permission denied"), "{what}: {e}");
}

#[tokio::test]
async fn the_wallets_database_role_cannot_touch_the_seat_schema() {
    let env = TestEnv::new().await.unwrap();
    let wallet = migrations::service_role("wallet");
    // Its own schema: read, write, vacuum.
    run_as(&env, &wallet, "SELECT count(*) FROM wallet.wallets").await.unwrap();
    run_as(&env, &wallet, "DELETE FROM wallet.inbox WHERE false").await.unwrap();
    run_as(&env, &wallet, "VACUUM wallet.outbox").await.unwrap();
    // Another service's: nothing.
    refused(run_as(&env, &wallet, "SELECT count(*) FROM seat.seats").await, "read the seats");
    refused(run_as(&env, &wallet, "UPDATE seat.seats SET status = 'AVAILABLE'").await, "free a seat");
    refused(
        run_as(&env, &wallet, "INSERT INTO seat.outbox (id) VALUES (gen_random_uuid())").await,
        "write seat's outbox",
    );
    refused(run_as(&env, &wallet, "CREATE TABLE seat.planted (x int)").await, "create in seat's schema");
    refused(run_as(&env, &wallet, "CREATE TABLE public.planted (x int)").await, "create in public");
    refused(run_as(&env, &wallet, "CREATE ROLE planted").await, "make a role");
    // A service whose state is in Redis reads no schema at all.
    refused(
        run_as(&env, &migrations::service_role("queue"), "SELECT count(*) FROM wallet.wallets").await,
        "queue reads wallets",
    );
}
