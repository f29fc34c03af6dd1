//! Shipments, straight into PostgreSQL as a superuser, after the inventory load and after the
//! services have created the customers (their shipping addresses are copied into each shipment,
//! as CreateShipment does).
//!
//! Two kinds:
//! - history: created over the past days, each with three items, 60 % then cancelled and the
//!   rest left as drafts (one in twenty of those soft-deleted): the bulk ListShipments reads;
//! - plannable: drafts of one piece of each of three materials stocked in their origin warehouse,
//!   each in its own hour from tomorrow on (pickup the first half, delivery the second), so that
//!   `bench run`'s PlanShipment scenario measures the saga, not a fight over one truck.
//!
//! Items go in while their shipment is a draft: the draft-only trigger and the totals trigger
//! run for every row, as they do for CreateShipmentItem.

use anyhow::Context as _;
use sqlx::{Connection, PgConnection};

use super::scale;
use uuid::Uuid;

/// How many shipments to load into one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipments {
    /// Past shipments (cancelled or draft).
    pub history: u32,
    /// Drafts ready to plan, with references `PLAN-000001`, ….
    pub plannable: u32,
    /// Days the history spans, ending now.
    pub history_days: u32,
}

impl Shipments {
    /// The per-tenant share: 100,000 shipments, 20,000 of them ready to plan (more than
    /// a run of PlanShipment gets through), the rest over 180 days.
    pub const FULL: Self = Self {
        history: 80_000,
        plannable: 20_000,
        history_days: 180,
    };

    /// `FULL` scaled down (at least one of each).
    pub fn scaled(factor: f64) -> Self {
        let of = |n: u32| scale(n, factor);
        Self {
            history: of(Self::FULL.history),
            plannable: of(Self::FULL.plannable),
            ..Self::FULL
        }
    }
}

/// Items per loaded shipment.
pub const ITEMS_PER_SHIPMENT: i64 = 3;

/// Reference prefix of the plannable drafts (a ListShipments filter finds them).
pub const PLANNABLE_PREFIX: &str = "PLAN-";

/// Loads `size` into `tenant_id`. Needs the tenant's warehouses, stock levels and customers with
/// a shipping address.
pub async fn load(admin_url: &str, tenant_id: Uuid, size: Shipments) -> anyhow::Result<u64> {
    let mut conn = PgConnection::connect(admin_url)
        .await
        .context("connecting as a superuser to load shipments")?;
    let mut tx = conn.begin().await?;
    // Each customer's default shipping address; each warehouse's levels numbered from 0.
    sqlx::query(
        "CREATE TEMPORARY TABLE bench_destinations ON COMMIT DROP AS \
         SELECT row_number() OVER (ORDER BY a.id) - 1 AS n, a.partner_id, a.id, a.line1, a.line2, \
                a.city, a.region, a.postal_code, a.country_code, a.latitude, a.longitude \
           FROM partner.addresses a \
           JOIN partner.partner_roles r ON r.tenant_id = a.tenant_id AND r.partner_id = a.partner_id \
                                       AND r.role = 'customer' \
          WHERE a.tenant_id = $1 AND a.kind = 'shipping' AND a.is_default AND a.deleted_at IS NULL",
    )
    .bind(tenant_id)
    .execute(&mut *tx)
    .await
    .context("reading the customers' addresses")?;
    sqlx::query(
        "CREATE TEMPORARY TABLE bench_stock ON COMMIT DROP AS \
         SELECT w.n AS w, l.material_id, m.unit_weight_kg, m.unit_volume_m3, \
                row_number() OVER (PARTITION BY l.warehouse_id ORDER BY l.material_id) - 1 AS k, \
                count(*) OVER (PARTITION BY l.warehouse_id) AS levels, l.warehouse_id \
           FROM inventory.stock_levels l \
           JOIN inventory.materials m ON m.tenant_id = l.tenant_id AND m.id = l.material_id \
           JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM inventory.warehouses \
                  WHERE tenant_id = $1 AND deleted_at IS NULL) w ON w.id = l.warehouse_id \
          WHERE l.tenant_id = $1 AND m.deleted_at IS NULL AND l.on_hand - l.reserved >= 1",
    )
    .bind(tenant_id)
    .execute(&mut *tx)
    .await
    .context("reading the stock levels")?;
    let (destinations, warehouses, fewest): (i64, i64, Option<i64>) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM bench_destinations), (SELECT count(DISTINCT w) FROM bench_stock), \
                (SELECT min(levels) FROM bench_stock)",
    )
    .fetch_one(&mut *tx)
    .await?;
    anyhow::ensure!(
        destinations > 0 && warehouses > 0 && fewest.unwrap_or(0) >= ITEMS_PER_SHIPMENT,
        "shipments need customers with a default shipping address and warehouses stocking at \
         least {ITEMS_PER_SHIPMENT} materials (found {destinations} addresses, {warehouses} warehouses)"
    );

    // Shipment i (1-based): history first, then the plannable ones.
    sqlx::query(
        "CREATE TEMPORARY TABLE bench_shipments ON COMMIT DROP AS \
         SELECT i, gen_random_uuid() AS id, i > $2 AS plannable, \
                CASE WHEN i > $2 THEN date_trunc('day', now()) + interval '1 day' \
                                      + make_interval(hours => (i - $2 - 1)::int) \
                     ELSE now() - make_interval(secs => (($2 - i) * $4 * 86400.0 / $2)::double precision) \
                END AS at \
           FROM generate_series(1, $2 + $3) AS i",
    )
    .bind(tenant_id)
    .bind(i64::from(size.history))
    .bind(i64::from(size.plannable))
    .bind(f64::from(size.history_days))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO shipment.shipments (tenant_id, id, reference, customer_id, origin_warehouse_id, \
             destination_address_id, dest_line1, dest_line2, dest_city, dest_region, \
             dest_postal_code, dest_country_code, dest_latitude, dest_longitude, pickup_window, \
             delivery_window, priority, created_at, updated_at) \
         SELECT $1, s.id, \
                CASE WHEN s.plannable THEN format('PLAN-%s', lpad((s.i - $2)::text, 6, '0')) \
                     ELSE format('SO-%s', lpad(s.i::text, 7, '0')) END, \
                d.partner_id, w.warehouse_id, d.id, d.line1, d.line2, d.city, d.region, \
                d.postal_code, d.country_code, d.latitude, d.longitude, \
                CASE WHEN s.plannable THEN tstzrange(s.at, s.at + interval '30 minutes') \
                     ELSE tstzrange(s.at + interval '1 day', s.at + interval '1 day 4 hours') END, \
                CASE WHEN s.plannable THEN tstzrange(s.at + interval '30 minutes', s.at + interval '1 hour') \
                     ELSE tstzrange(s.at + interval '2 days', s.at + interval '2 days 6 hours') END, \
                (ARRAY['normal', 'normal', 'low', 'high', 'urgent'])[1 + s.i % 5], \
                CASE WHEN s.plannable THEN now() ELSE s.at END, \
                CASE WHEN s.plannable THEN now() ELSE s.at END \
           FROM bench_shipments s \
           JOIN bench_destinations d ON d.n = s.i % $3 \
           JOIN (SELECT DISTINCT w, warehouse_id FROM bench_stock) w ON w.w = s.i % $4",
    )
    .bind(tenant_id)
    .bind(i64::from(size.history))
    .bind(destinations)
    .bind(warehouses)
    .execute(&mut *tx)
    .await
    .context("loading shipments")?;
    // Items j = 0, 1, 2 of shipment i: consecutive levels of its warehouse, so never the same
    // material twice.
    sqlx::query(
        "INSERT INTO shipment.shipment_items (tenant_id, id, shipment_id, material_id, quantity, \
             unit_weight_kg, unit_volume_m3, created_at, updated_at) \
         SELECT $1, gen_random_uuid(), s.id, st.material_id, \
                CASE WHEN s.plannable THEN 1 ELSE 1 + (s.i + j) % 20 END, \
                st.unit_weight_kg, st.unit_volume_m3, sh.created_at, sh.created_at \
           FROM bench_shipments s \
           JOIN shipment.shipments sh ON sh.tenant_id = $1 AND sh.id = s.id \
          CROSS JOIN generate_series(0, $2 - 1) AS j \
           JOIN bench_stock st ON st.w = s.i % $3 AND st.k = (s.i * $2 + j) % st.levels",
    )
    .bind(tenant_id)
    .bind(ITEMS_PER_SHIPMENT)
    .bind(warehouses)
    .execute(&mut *tx)
    .await
    .context("loading shipment items")?;
    // History: three in five cancelled an hour after they were made; one draft in twenty of the
    // rest deleted.
    sqlx::query(
        "UPDATE shipment.shipments sh \
            SET status = CASE WHEN s.i % 5 < 3 THEN 'cancelled' ELSE 'draft' END, \
                status_reason = CASE WHEN s.i % 5 < 3 THEN 'cancelled by the customer' ELSE '' END, \
                cancelled_at = CASE WHEN s.i % 5 < 3 THEN s.at + interval '1 hour' END, \
                deleted_at = CASE WHEN s.i % 5 >= 3 AND s.i % 20 = 4 THEN s.at + interval '2 hours' END \
           FROM bench_shipments s \
          WHERE sh.tenant_id = $1 AND sh.id = s.id AND NOT s.plannable",
    )
    .bind(tenant_id)
    .execute(&mut *tx)
    .await
    .context("cancelling past shipments")?;
    tx.commit().await?;
    for table in ["shipment.shipments", "shipment.shipment_items"] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(&mut conn)
            .await?;
    }
    let loaded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM shipment.shipments WHERE tenant_id = $1")
            .bind(tenant_id)
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    Ok(u64::try_from(loaded)?)
}

/// `n` customers of `tenant_id` with a default shipping address, straight in SQL: for tests and
/// EXPLAIN runs that need shipments without the partner service (no sealed fields are set).
pub async fn plain_customers(admin_url: &str, tenant_id: Uuid, n: u32) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect(admin_url).await?;
    let mut tx = conn.begin().await?;
    for sql in [
        "INSERT INTO partner.partners (tenant_id, id, kind, legal_name, display_name, \
             country_code, default_currency_code) \
         SELECT $1, gen_random_uuid(), 'organization', format('Customer %s GmbH', i), \
                format('Customer %s', i), 'DE', 'EUR' \
           FROM generate_series(1, $2) AS i",
        "INSERT INTO partner.partner_roles (tenant_id, partner_id, role) \
         SELECT tenant_id, id, 'customer' FROM partner.partners \
          WHERE tenant_id = $1 AND legal_name LIKE 'Customer % GmbH' AND $2 > 0",
        "INSERT INTO partner.addresses (tenant_id, id, partner_id, kind, line1, city, \
             postal_code, country_code, is_default) \
         SELECT tenant_id, gen_random_uuid(), id, 'shipping', 'Street ' || display_name, \
                'Berlin', '10115', 'DE', true \
           FROM partner.partners WHERE tenant_id = $1 AND legal_name LIKE 'Customer % GmbH' AND $2 > 0",
    ] {
        sqlx::query(sql)
            .bind(tenant_id)
            .bind(i64::from(n))
            .execute(&mut *tx)
            .await
            .context("loading plain customers")?;
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(())
}
