//! The runtime pool (`platform::db::pool`) against a real PostgreSQL: a connection that sat idle
//! is checked before it is handed out, so one the server dropped is replaced rather than failing
//! the next request.

use std::time::Duration;

use logistics_platform::db::{self, SchemaSpec};
use logistics_testkit::TestDatabase;
use sqlx::PgPool;

const SPEC: SchemaSpec = SchemaSpec::for_service("pooltest", "pooltest_owner", "pooltest_app");

/// The server process behind the connection the pool lends for one query.
async fn backend_pid(pool: &PgPool) -> sqlx::Result<i32> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
}

#[tokio::test]
async fn an_idle_connection_the_server_dropped_is_replaced_not_returned() -> anyhow::Result<()> {
    let database = TestDatabase::create(&SPEC).await?;
    let pool = db::pool(&database.admin_url(), 1, "pooltest")?;
    let first = backend_pid(&pool).await?;

    let admin = database.admin_pool().await?;
    let terminated: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(first)
        .fetch_one(&admin)
        .await?;
    assert!(terminated, "the pooled backend should have been terminated");
    // Longer than the idle time after which the pool checks a connection before lending it.
    tokio::time::sleep(db::CHECK_IDLE_AFTER + Duration::from_millis(200)).await;

    let second = backend_pid(&pool).await?;
    assert_ne!(
        first, second,
        "a fresh connection should have replaced the dropped one"
    );
    Ok(())
}

#[tokio::test]
async fn a_busy_connection_is_reused_without_reconnecting() -> anyhow::Result<()> {
    let database = TestDatabase::create(&SPEC).await?;
    let pool = db::pool(&database.admin_url(), 1, "pooltest")?;
    let mut pids = Vec::new();
    for _ in 0..5 {
        pids.push(backend_pid(&pool).await?);
    }
    pids.dedup();
    assert_eq!(
        pids.len(),
        1,
        "one connection should serve every call: {pids:?}"
    );
    Ok(())
}
