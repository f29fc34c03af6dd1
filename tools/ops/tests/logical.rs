//! `ops export` and `ops import` of one service's schema between two databases: the target gets
//! the same rows in every table, row-level security still isolates tenants from the runtime
//! role, a second import is refused without touching the data, a damaged dump leaves nothing
//! of the schema behind, and each of the five schemas moves on its own.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use logistics_testkit::TestDatabase;
use sqlx::PgPool;
use support::platform_database;
use uuid::Uuid;

/// Inventory rows of one tenant: two materials, a warehouse, stock received and partly reserved
/// through `inventory.move_stock` (the only writer of levels and ledger), a supplier link and
/// an idempotency claim.
async fn stock_of_a_tenant(pool: &PgPool, tenant: Uuid, sku_prefix: &str) {
    let (bolt, nut, warehouse) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let sql = format!(
        "BEGIN;
         SELECT set_config('app.tenant_id', '{tenant}', true);
         INSERT INTO inventory.materials (tenant_id, id, sku, name, unit) VALUES
              ('{tenant}', '{bolt}', '{sku_prefix}-BOLT', 'Bolt M8', 'piece'),
              ('{tenant}', '{nut}', '{sku_prefix}-NUT', 'Nut M8', 'piece');
         INSERT INTO inventory.warehouses (tenant_id, id, code, name, address_line, city, country_code)
              VALUES ('{tenant}', '{warehouse}', 'WH-1', 'Main', 'Dock 1', 'Rotterdam', 'NL');
         SELECT inventory.move_stock(gen_random_uuid(), '{warehouse}', '{bolt}', 'receipt', 100, 0,
                                     '', NULL, NULL, gen_random_uuid());
         SELECT inventory.move_stock(gen_random_uuid(), '{warehouse}', '{nut}', 'receipt', 40, 0,
                                     '', NULL, NULL, gen_random_uuid());
         SELECT inventory.move_stock(gen_random_uuid(), '{warehouse}', '{bolt}', 'reserve', 0, 12,
                                     '', 'shipment', '{shipment}', gen_random_uuid());
         INSERT INTO inventory.reservations (tenant_id, id, shipment_id, warehouse_id, material_id, quantity)
              VALUES ('{tenant}', gen_random_uuid(), '{shipment}', '{warehouse}', '{bolt}', 12);
         INSERT INTO inventory.material_suppliers (tenant_id, id, material_id, supplier_id, unit_price_minor, currency_code)
              VALUES ('{tenant}', gen_random_uuid(), '{bolt}', gen_random_uuid(), 12, 'EUR');
         INSERT INTO inventory.idempotency_keys (tenant_id, method, request_id, request_hash)
              VALUES ('{tenant}', 'ReceiveStock', gen_random_uuid(), '\\x01');
         COMMIT;",
        shipment = Uuid::now_v7()
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(pool)
        .await
        .unwrap();
}

/// A digest of every row of every table of inventory (partitioned parents with all their rows,
/// `_sqlx_migrations` included), for "the same rows".
async fn digests(pool: &PgPool) -> BTreeMap<String, Option<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = 'inventory' AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut digests = BTreeMap::new();
    for table in tables {
        let sql = format!(
            "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM inventory.{table} t"
        );
        let digest: Option<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .fetch_one(pool)
            .await
            .unwrap();
        digests.insert(table, digest);
    }
    digests
}

async fn inventory_tables(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = 'inventory' AND c.relkind IN ('r', 'p')",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

fn dump_path() -> PathBuf {
    std::env::temp_dir().join(format!("ops-export-{}.dump", Uuid::now_v7().simple()))
}

/// Runs `ops export` of `service` from `source` into `out`; what it printed.
fn export_service(source: &TestDatabase, service: &str, out: &Path) -> String {
    support::ops(
        &source.admin_url(),
        &std::env::temp_dir().join("ops-unused-backup-dir"),
        &[
            "export",
            "--service",
            service,
            "--out",
            out.to_str().unwrap(),
        ],
    )
}

fn export(source: &TestDatabase, out: &Path) -> String {
    export_service(source, "inventory", out)
}

/// Runs `ops import` of `service` from `file` into `target`; its exit status and everything
/// it printed.
fn import_service(target: &TestDatabase, service: &str, file: &Path) -> (bool, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ops"))
        .args(["import", "--service", service, "--file"])
        .arg(file)
        .arg("--target-url")
        .arg(target.admin_url())
        .env_remove("IMPORT_TARGET_OWNER_URL")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn import(target: &TestDatabase, file: &Path) -> (bool, String) {
    import_service(target, "inventory", file)
}

/// Rows of `table` the runtime role sees, with `tenant` in its context or none.
async fn seen_by_the_app(pool: &PgPool, table: &str, tenant: Option<Uuid>) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    if let Some(tenant) = tenant {
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(tenant.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM inventory.{table}"
    )))
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    n
}

#[tokio::test]
async fn an_imported_schema_has_the_same_rows_keeps_tenants_apart_and_is_never_imported_twice() {
    let (source, source_pool) = platform_database().await;
    let (tenant, other) = (Uuid::now_v7(), Uuid::now_v7());
    stock_of_a_tenant(&source_pool, tenant, "A").await;
    stock_of_a_tenant(&source_pool, other, "B").await;
    // The target as the service's own provisioning leaves a new cluster: an empty schema.
    let target = TestDatabase::create(&inventory::schema::SCHEMA)
        .await
        .unwrap();
    let target_pool = target.admin_pool().await.unwrap();
    let file = dump_path();

    let exported = export(&source, &file);
    support::report(&exported);
    assert!(exported.contains("exported inventory to"), "{exported}");
    assert!(
        exported.contains("inventory.materials") && exported.contains("inventory._sqlx_migrations"),
        "{exported}"
    );
    assert!(!file.with_extension("dump.partial").exists());

    let (ok, imported) = import(&target, &file);
    assert!(ok, "{imported}");
    support::report(&imported);
    assert!(imported.contains("nothing left to apply"), "{imported}");
    assert!(
        imported.contains("enabled and forced on 7 tables"),
        "{imported}"
    );
    let before = digests(&source_pool).await;
    assert!(
        before["materials"].is_some() && before["stock_movements"].is_some(),
        "the source has rows"
    );
    assert_eq!(digests(&target_pool).await, before);

    let app = target.pool_as("inventory_app").await.unwrap();
    for table in ["materials", "warehouses", "stock_levels", "stock_movements"] {
        assert_eq!(seen_by_the_app(&app, table, None).await, 0, "{table}");
    }
    assert_eq!(seen_by_the_app(&app, "materials", Some(tenant)).await, 2);
    assert_eq!(seen_by_the_app(&app, "stock_levels", Some(tenant)).await, 2);
    assert_eq!(
        seen_by_the_app(&app, "stock_movements", Some(tenant)).await,
        3
    );
    assert_eq!(seen_by_the_app(&app, "reservations", Some(other)).await, 1);
    // The grants came along: the runtime role still cannot write the ledger.
    let write = sqlx::query("DELETE FROM inventory.stock_movements")
        .execute(&app)
        .await
        .unwrap_err();
    assert_eq!(
        write.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );

    let (ok, again) = import(&target, &file);
    assert!(!ok, "a second import must be refused:\n{again}");
    support::report(&again);
    assert!(
        again.contains("already has schema inventory") && again.contains("never overwrites"),
        "{again}"
    );
    assert_eq!(digests(&target_pool).await, before);

    app.close().await;
    target_pool.close().await;
    source_pool.close().await;
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn a_truncated_or_corrupt_dump_is_refused_and_leaves_no_table_behind() {
    let (source, source_pool) = platform_database().await;
    stock_of_a_tenant(&source_pool, Uuid::now_v7(), "A").await;
    // Enough incompressible rows that cutting the dump's tail cuts into the data, past the
    // table of contents at its start.
    sqlx::raw_sql(
        "INSERT INTO inventory.idempotency_keys (tenant_id, method, request_id, request_hash)
         SELECT gen_random_uuid(), 'Bulk', gen_random_uuid(), sha512(random()::text::bytea)
           FROM generate_series(1, 20000)",
    )
    .execute(&source_pool)
    .await
    .unwrap();
    let target = TestDatabase::create(&identity::app::SCHEMA).await.unwrap();
    let target_pool = target.admin_pool().await.unwrap();
    let file = dump_path();
    export(&source, &file);

    let bytes = std::fs::read(&file).unwrap();
    let truncated = file.with_extension("truncated");
    std::fs::write(&truncated, &bytes[..bytes.len() * 9 / 10]).unwrap();
    let listing = std::process::Command::new("pg_restore")
        .arg("--list")
        .arg(&truncated)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "the cut leaves the table of contents whole, so the restore itself must fail"
    );
    let (ok, out) = import(&target, &truncated);
    assert!(!ok, "{out}");
    assert!(out.contains("nothing of inventory was imported"), "{out}");
    support::report(&out);
    assert_eq!(inventory_tables(&target_pool).await, 0);

    let corrupt = file.with_extension("corrupt");
    let mut garbage = bytes.clone();
    garbage[..64].fill(0x5a);
    std::fs::write(&corrupt, &garbage).unwrap();
    let (ok, out) = import(&target, &corrupt);
    assert!(!ok, "{out}");
    assert!(out.contains("reading the table of contents"), "{out}");
    assert_eq!(inventory_tables(&target_pool).await, 0);

    // The untouched dump still imports into the same target afterwards.
    let (ok, out) = import(&target, &file);
    assert!(ok, "{out}");
    assert_eq!(digests(&target_pool).await, digests(&source_pool).await);

    target_pool.close().await;
    source_pool.close().await;
    for f in [&file, &truncated, &corrupt] {
        let _ = std::fs::remove_file(f);
    }
}

#[tokio::test]
async fn every_service_schema_moves_on_its_own_into_one_target() {
    let (source, source_pool) = platform_database().await;
    let target = TestDatabase::create(&identity::app::SCHEMA).await.unwrap();
    for service in ops::services::ALL {
        let file = dump_path();
        export_service(&source, service.name, &file);
        let (ok, out) = import_service(&target, service.name, &file);
        let _ = std::fs::remove_file(&file);
        assert!(ok, "{}: {out}", service.name);
        assert!(out.contains("nothing left to apply"), "{out}");
    }
    source_pool.close().await;
}
