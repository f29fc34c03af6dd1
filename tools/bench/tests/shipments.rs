//! The shipment loader against real, migrated partner, inventory and shipment schemas: every
//! shipment passes the schema's checks and triggers, copies a customer's address, ships three
//! materials its origin warehouse stocks, and the plannable drafts each have an hour of their own
//! in the future.

use bench::load::shipments::{self, ITEMS_PER_SHIPMENT, Shipments};
use bench::load::{self, Size};
use logistics_harness::Identity;
use uuid::Uuid;

/// A fresh database with the partner, inventory and shipment schemas migrated.
async fn migrated() -> Identity {
    let specs = [
        &partner::app::SCHEMA,
        &inventory::schema::SCHEMA,
        &shipment::schema::SCHEMA,
    ];
    let identity = Identity::start(&specs).await.expect("identity");
    for (spec, migrator) in [
        (&partner::app::SCHEMA, &partner::app::MIGRATOR),
        (&inventory::schema::SCHEMA, &inventory::schema::MIGRATOR),
        (&shipment::schema::SCHEMA, &shipment::schema::MIGRATOR),
    ] {
        let db = &identity.db;
        logistics_platform::db::migrate(&db.url_as(spec.owner_role), spec.schema, migrator)
            .await
            .expect("migrations");
    }
    identity
}

#[tokio::test]
async fn loaded_shipments_are_consistent_drafts_and_cancellations() {
    let identity = migrated().await;
    let db = &identity.db;
    let (tenant, other) = (identity.tenant_id, Uuid::now_v7());
    let size = Size {
        materials: 20,
        warehouses: 3,
        warehouses_per_material: 2,
        movements_per_level: 4,
        history_days: 30,
    };
    let admin = db.admin_pool().await.expect("admin pool");
    for t in [tenant, other] {
        load::inventory(&db.admin_url(), t, "SH", size)
            .await
            .expect("inventory");
        // Four customers with a default shipping address, and a supplier that must not be
        // shipped to.
        shipments::plain_customers(&db.admin_url(), t, 4)
            .await
            .expect("customers");
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "INSERT INTO partner.partners (tenant_id, id, kind, legal_name, display_name, \
                 country_code, default_currency_code) \
             VALUES ('{t}', gen_random_uuid(), 'organization', 'Supplier AG', 'Supplier', 'DE', 'EUR'); \
             INSERT INTO partner.partner_roles (tenant_id, partner_id, role) \
             SELECT tenant_id, id, 'supplier' FROM partner.partners \
              WHERE tenant_id = '{t}' AND legal_name = 'Supplier AG'; \
             INSERT INTO partner.addresses (tenant_id, id, partner_id, kind, line1, city, \
                 postal_code, country_code, is_default) \
             SELECT tenant_id, gen_random_uuid(), id, 'shipping', 'Supplier street', 'Berlin', \
                    '10115', 'DE', true \
               FROM partner.partners WHERE tenant_id = '{t}' AND legal_name = 'Supplier AG'"
        )))
        .execute(&admin)
        .await
        .expect("a supplier");
    }
    let wanted = Shipments {
        history: 50,
        plannable: 12,
        history_days: 30,
    };
    let loaded = shipments::load(&db.admin_url(), tenant, wanted)
        .await
        .expect("shipments");
    assert_eq!(loaded, 62);
    shipments::load(&db.admin_url(), other, wanted)
        .await
        .expect("the other tenant's");

    let (cancelled, drafts, deleted, plannable): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'cancelled' AND cancelled_at IS NOT NULL), \
                count(*) FILTER (WHERE status = 'draft' AND reference LIKE 'SO-%'), \
                count(*) FILTER (WHERE deleted_at IS NOT NULL), \
                count(*) FILTER (WHERE status = 'draft' AND reference LIKE 'PLAN-%' \
                                 AND deleted_at IS NULL AND lower(pickup_window) > now()) \
           FROM shipment.shipments WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(&admin)
    .await
    .expect("statuses");
    assert_eq!((cancelled, drafts, plannable), (30, 20, 12));
    assert!(deleted > 0 && deleted < drafts, "{deleted} deleted drafts");

    // Every shipment: three distinct materials stocked in its origin warehouse, of its own
    // tenant; totals as the trigger summed them; a destination copied from a customer's address.
    let (wrong_items, wrong_totals, wrong_destinations): (i64, i64, i64) = sqlx::query_as(
        "SELECT \
           (SELECT count(*) FROM shipment.shipments s WHERE s.tenant_id = $1 AND \
              (SELECT count(DISTINCT i.material_id) FROM shipment.shipment_items i \
                 JOIN inventory.stock_levels l ON l.tenant_id = i.tenant_id \
                  AND l.material_id = i.material_id AND l.warehouse_id = s.origin_warehouse_id \
                WHERE i.tenant_id = s.tenant_id AND i.shipment_id = s.id) <> $2), \
           (SELECT count(*) FROM shipment.shipments s WHERE s.tenant_id = $1 AND s.total_weight_kg <> \
              (SELECT sum(quantity * unit_weight_kg) FROM shipment.shipment_items i \
                WHERE i.tenant_id = s.tenant_id AND i.shipment_id = s.id)), \
           (SELECT count(*) FROM shipment.shipments s WHERE s.tenant_id = $1 AND NOT EXISTS ( \
              SELECT 1 FROM partner.addresses a \
                JOIN partner.partner_roles r ON r.tenant_id = a.tenant_id AND r.partner_id = a.partner_id \
               WHERE a.tenant_id = s.tenant_id AND a.id = s.destination_address_id \
                 AND a.partner_id = s.customer_id AND r.role = 'customer' \
                 AND a.line1 = s.dest_line1 AND a.city = s.dest_city))",
    )
    .bind(tenant)
    .bind(ITEMS_PER_SHIPMENT)
    .fetch_one(&admin)
    .await
    .expect("consistency");
    assert_eq!((wrong_items, wrong_totals, wrong_destinations), (0, 0, 0));

    // No two plannable drafts' windows overlap: each can take the first free truck.
    let overlapping: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM shipment.shipments a JOIN shipment.shipments b \
           ON b.tenant_id = a.tenant_id AND b.id > a.id \
          AND tstzrange(lower(b.pickup_window), upper(b.delivery_window)) \
           && tstzrange(lower(a.pickup_window), upper(a.delivery_window)) \
         WHERE a.tenant_id = $1 AND a.reference LIKE 'PLAN-%' AND b.reference LIKE 'PLAN-%'",
    )
    .bind(tenant)
    .fetch_one(&admin)
    .await
    .expect("windows");
    assert_eq!(overlapping, 0);
}

#[tokio::test]
async fn shipments_need_customers_and_stock_first() {
    let identity = migrated().await;
    let db = &identity.db;
    let err = shipments::load(
        &db.admin_url(),
        identity.tenant_id,
        Shipments::scaled(0.001),
    )
    .await
    .expect_err("nothing to ship from or to");
    assert!(
        err.to_string()
            .contains("customers with a default shipping address"),
        "{err}"
    );
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM shipment.shipments")
        .fetch_one(&db.admin_pool().await.expect("admin pool"))
        .await
        .expect("count");
    assert_eq!(count, 0, "nothing half-loaded");
}
