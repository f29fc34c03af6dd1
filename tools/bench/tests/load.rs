//! The loader against a real, migrated inventory schema: what it writes is what the service's
//! own ledger check accepts, each tenant sees only its own rows, and the planner knows the sizes.

use bench::load::{self, Size};
use inventory::schema::{MIGRATOR, SCHEMA};
use logistics_platform::context::DbContext;
use logistics_testkit::TestDatabase;
use rust_decimal::Decimal;
use uuid::Uuid;

#[tokio::test]
async fn loaded_ledger_passes_the_services_check_and_stays_in_its_tenant() {
    let db = TestDatabase::create(&SCHEMA).await.expect("database");
    logistics_platform::db::migrate(&db.url_as(SCHEMA.owner_role), SCHEMA.schema, &MIGRATOR)
        .await
        .expect("migrations");
    let size = Size {
        materials: 40,
        warehouses: 6,
        warehouses_per_material: 3,
        movements_per_level: 9,
        history_days: 75,
    };
    let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
    let loaded = load::inventory(&db.admin_url(), a, "TA", size)
        .await
        .expect("load a");
    assert_eq!(
        loaded,
        load::Loaded {
            materials: 40,
            warehouses: 6,
            levels: 120,
            movements: 1080,
        }
    );
    load::inventory(&db.admin_url(), b, "TB", Size::scaled(0.001))
        .await
        .expect("load b");
    // A second load into the same tenant with another prefix adds to it.
    let more = load::inventory(&db.admin_url(), a, "TC", size)
        .await
        .expect("load a again");
    assert_eq!(more.movements, 2160);

    let pool = db.pool_as(SCHEMA.app_role).await.expect("app pool");
    let mut tx = DbContext::system(Some(a))
        .begin(&pool)
        .await
        .expect("tenant a");
    let (checked, mismatches) = inventory::store::stock::check_ledger(&mut tx)
        .await
        .expect("ledger check");
    assert_eq!(checked, 240, "tenant a sees its own levels only");
    assert!(mismatches.is_empty(), "{mismatches:?}");
    // Every level holds what the size says, and its newest entry's balance is that level.
    let (levels, wrong): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE l.on_hand <> $1 OR newest.on_hand_after <> l.on_hand) \
           FROM inventory.stock_levels l \
           CROSS JOIN LATERAL (SELECT on_hand_after FROM inventory.stock_movements m \
                                WHERE m.warehouse_id = l.warehouse_id AND m.material_id = l.material_id \
                                ORDER BY created_at DESC, id DESC LIMIT 1) newest",
    )
    .bind(Decimal::from(size.on_hand_per_level()))
    .fetch_one(&mut *tx)
    .await
    .expect("balances");
    assert_eq!((levels, wrong), (240, 0));
    tx.rollback().await.expect("rollback");

    // The history spans three months or more, each in its own partition, and the runtime role
    // has no right on a partition itself.
    let admin = db.admin_pool().await.expect("admin pool");
    let (partitions, app_rights): (i64, i64) = sqlx::query_as(
        "SELECT count(*), count(*) FILTER (WHERE has_table_privilege('inventory_app', c.oid, 'SELECT')) \
           FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
          WHERE i.inhparent = 'inventory.stock_movements'::regclass \
            AND EXISTS (SELECT 1 FROM inventory.stock_movements m WHERE m.tableoid = c.oid)",
    )
    .fetch_one(&admin)
    .await
    .expect("partitions");
    assert!(partitions >= 3, "{partitions} partitions hold the history");
    assert_eq!(app_rights, 0);
    let analyzed: Option<f32> = sqlx::query_scalar(
        "SELECT reltuples FROM pg_class WHERE oid = 'inventory.materials'::regclass",
    )
    .fetch_one(&admin)
    .await
    .expect("statistics");
    assert!(analyzed.is_some_and(|n| n >= 80.0), "{analyzed:?}");

    // Loading refuses anything but a superuser.
    let err = load::inventory(&db.url_as(SCHEMA.owner_role), a, "TD", size)
        .await
        .expect_err("not a superuser");
    assert!(err.to_string().contains("superuser"), "{err}");
}
