//! `ops maintain` on a database of the five migrated schemas: it archives and drops the tracking
//! months past retention and never a ledger month, purges what each retention no longer keeps
//! and nothing younger, rebuilds a bloated index, and a second run changes nothing.

#![allow(clippy::unwrap_used)]

mod support;

use logistics_testkit::TestDatabase;
use sqlx::PgPool;
use support::platform_database;
use uuid::Uuid;

fn maintain(db: &TestDatabase, archive: &std::path::Path, extra: &[&str]) -> String {
    let mut args = vec!["maintain", "--archive-dir", archive.to_str().unwrap()];
    args.extend_from_slice(extra);
    support::ops(&db.admin_url(), &archive.join("unused-backup-dir"), &args)
}

/// Every table of the five schemas with its row count, for "nothing changed".
async fn snapshot(pool: &PgPool) -> Vec<(String, i64)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p') \
            AND n.nspname IN ('identity', 'partner', 'fleet', 'inventory', 'shipment') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut counts = Vec::new();
    for table in tables {
        let sql = format!("SELECT count(*) FROM {table}");
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        counts.push((table, n));
    }
    counts
}

async fn exists(pool: &PgPool, table: &str) -> bool {
    sqlx::query_scalar::<_, bool>("SELECT to_regclass($1) IS NOT NULL")
        .bind(table)
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn maintain_archives_old_tracking_months_purges_what_expired_and_a_second_run_changes_nothing()
 {
    let (db, pool) = platform_database().await;
    let tenant = Uuid::now_v7();
    let user = Uuid::now_v7();
    let setup = format!(
        "INSERT INTO identity.tenants (id, display_name) VALUES ('{tenant}', 'Maintained');
         INSERT INTO identity.users (tenant_id, id, email, display_name, password_hash)
              VALUES ('{tenant}', '{user}', 'a@maintained.test', 'A', '$argon2id$v=19$m=19456,t=2,p=1$x$y');
         -- expired 40 days ago (purged), 2 days ago (kept for audit), live (kept)
         INSERT INTO identity.sessions (tenant_id, id, user_id, expires_at, created_at) VALUES
              ('{tenant}', gen_random_uuid(), '{user}', now() - interval '40 days', now() - interval '41 days'),
              ('{tenant}', gen_random_uuid(), '{user}', now() - interval '2 days', now() - interval '3 days'),
              ('{tenant}', gen_random_uuid(), '{user}', now() + interval '1 day', now());
         -- a tracking month and a ledger month far past any retention
         CREATE TABLE shipment.tracking_events_2020_01 PARTITION OF shipment.tracking_events
              FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');
         INSERT INTO shipment.tracking_events (tenant_id, id, shipment_id, client_event_id, kind, event_time, recorded_at)
              VALUES ('{tenant}', gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'note', '2020-01-15', '2020-01-15');
         CREATE TABLE inventory.stock_movements_2020_01 PARTITION OF inventory.stock_movements
              FOR VALUES FROM ('2020-01-01') TO ('2020-02-01');"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(setup))
        .execute(&pool)
        .await
        .unwrap();
    for schema in ["identity", "partner", "fleet", "inventory", "shipment"] {
        let sql = format!(
            "INSERT INTO {schema}.idempotency_keys (tenant_id, method, request_id, request_hash, created_at) VALUES
                ('{tenant}', 'Old', gen_random_uuid(), '\\x00', now() - interval '8 days'),
                ('{tenant}', 'Fresh', gen_random_uuid(), '\\x00', now() - interval '1 hour')"
        );
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
    }
    let archive = std::env::temp_dir().join(format!("ops-archive-{}", Uuid::now_v7().simple()));

    let first = maintain(&db, &archive, &[]);
    assert!(
        first.contains("tracking partitions archived and dropped: 1"),
        "{first}"
    );
    assert!(!exists(&pool, "shipment.tracking_events_2020_01").await);
    assert!(
        exists(&pool, "inventory.stock_movements_2020_01").await,
        "the ledger is never dropped"
    );
    let dump = archive.join("shipment.tracking_events_2020_01.dump");
    let listing = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&dump)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&listing.stdout)
            .contains("TABLE DATA shipment tracking_events_2020_01"),
        "the archive holds the month's rows"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM identity.sessions").await,
        2
    );
    for schema in ["identity", "partner", "fleet", "inventory", "shipment"] {
        let methods: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT method FROM {schema}.idempotency_keys"
        )))
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(methods, ["Fresh"], "{schema}");
    }
    // This month and three ahead exist for both partitioned tables.
    for parent in ["shipment.tracking_events", "inventory.stock_movements"] {
        let ahead = count(
            &pool,
            &format!(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                  WHERE i.inhparent = '{parent}'::regclass \
                    AND c.relname >= '{}_' || to_char(now(), 'YYYY_MM')",
                parent.split('.').nth(1).unwrap()
            ),
        )
        .await;
        assert_eq!(ahead, 4, "{parent}");
    }

    let before = snapshot(&pool).await;
    let second = maintain(&db, &archive, &[]);
    assert!(second.contains("nothing to change"), "{second}");
    assert!(
        second.contains("tracking partitions archived and dropped: 0"),
        "{second}"
    );
    assert_eq!(snapshot(&pool).await, before);
    let _ = std::fs::remove_dir_all(&archive);
}

#[tokio::test]
async fn an_index_left_sparse_by_a_purge_is_rebuilt_once() {
    let (db, pool) = platform_database().await;
    let tenant = Uuid::now_v7();
    // 60,000 claims in random key order, 95 % of them past their window.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "INSERT INTO inventory.idempotency_keys (tenant_id, method, request_id, request_hash, created_at)
         SELECT '{tenant}', 'ReceiveStock', gen_random_uuid(), '\\x00',
                CASE WHEN i % 20 = 0 THEN now() ELSE now() - interval '30 days' END
           FROM generate_series(1, 60000) i"
    )))
    .execute(&pool)
    .await
    .unwrap();
    let archive = std::env::temp_dir().join(format!("ops-archive-{}", Uuid::now_v7().simple()));
    let min = ["--reindex-min-bytes", "1048576"];

    let first = maintain(&db, &archive, &min);
    assert!(
        first.contains("purged from inventory.idempotency_keys: 57000"),
        "{first}"
    );
    assert!(
        first.contains("reindexed concurrently: inventory.idempotency_keys_pkey"),
        "{first}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM inventory.idempotency_keys").await,
        3000
    );
    let second = maintain(&db, &archive, &min);
    assert!(second.contains("reindexed concurrently: none"), "{second}");
    assert!(second.contains("nothing to change"), "{second}");
}
