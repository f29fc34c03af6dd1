//! Loads the benchmark's data set straight into PostgreSQL, as a superuser, with server-side
//! `generate_series`: a million ledger rows take seconds, not the hours a million RPCs would.
//!
//! Only what needs no service key is loaded this way (materials, warehouses, stock levels and
//! their ledger); sealed data (drivers' licences, partners' contacts) must come through the
//! services. Superusers bypass row-level security, but every CHECK, foreign key and trigger still
//! runs: the deferred triggers that compare each level's `reserved` with its held reservations
//! judge the commit, and each level's `on_hand` is exactly the sum of its ledger entries, as
//! `CheckStockLedger` expects.

use anyhow::Context as _;
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

pub mod shipments;

/// `n` times `factor`, rounded, at least 1: the scaled-down sizes of quick runs and tests.
pub fn scale(n: u32, factor: f64) -> u32 {
    ((f64::from(n) * factor).round() as u32).max(1)
}

/// How much to load into one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// Materials.
    pub materials: u32,
    /// Warehouses.
    pub warehouses: u32,
    /// Warehouses each material is stocked in (at most `warehouses`).
    pub warehouses_per_material: u32,
    /// Ledger entries per stock level (at least 1).
    pub movements_per_level: u32,
    /// Days of ledger history, ending now; a partition is made for every month it touches.
    pub history_days: u32,
}

impl Size {
    /// The issue's per-tenant share: 10,000 materials in 100 warehouses, each in 5 of them,
    /// 10 ledger entries per level (500,000 per tenant, a million for two tenants), over 180 days.
    pub const FULL: Self = Self {
        materials: 10_000,
        warehouses: 100,
        warehouses_per_material: 5,
        movements_per_level: 10,
        history_days: 180,
    };

    /// `FULL` scaled down (at least one of everything), for tests and quick runs.
    pub fn scaled(factor: f64) -> Self {
        let of = |n: u32| scale(n, factor);
        let warehouses = of(Self::FULL.warehouses);
        Self {
            materials: of(Self::FULL.materials),
            warehouses,
            warehouses_per_material: Self::FULL.warehouses_per_material.min(warehouses),
            ..Self::FULL
        }
    }

    /// Stock levels this size makes.
    pub fn levels(&self) -> u64 {
        u64::from(self.materials) * u64::from(self.warehouses_per_material)
    }

    /// Ledger rows this size makes.
    pub fn movements(&self) -> u64 {
        self.levels() * u64::from(self.movements_per_level)
    }

    /// Entries per level that are receipts of 100; the rest are issues of 50, so every running
    /// balance stays positive.
    fn receipts(&self) -> u32 {
        self.movements_per_level - self.movements_per_level / 4
    }

    /// What each level holds once its entries are applied.
    pub fn on_hand_per_level(&self) -> u32 {
        100 * self.receipts() - 50 * (self.movements_per_level - self.receipts())
    }
}

/// What was loaded into a tenant, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Materials of the tenant.
    pub materials: i64,
    /// Warehouses of the tenant.
    pub warehouses: i64,
    /// Stock levels of the tenant.
    pub levels: i64,
    /// Ledger entries of the tenant.
    pub movements: i64,
}

/// Loads `size` into `tenant_id` of the database `admin_url` points at (a superuser), in one
/// transaction, then analyzes the tables so the planner sees the new sizes. SKUs and warehouse
/// codes carry `prefix` (upper case letters and digits), so a second load into the same tenant
/// with another prefix adds rather than collides.
pub async fn inventory(
    admin_url: &str,
    tenant_id: Uuid,
    prefix: &str,
    size: Size,
) -> anyhow::Result<Loaded> {
    anyhow::ensure!(
        !prefix.is_empty()
            && prefix.len() <= 8
            && prefix
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "the prefix must be 1 to 8 upper-case letters or digits"
    );
    anyhow::ensure!(
        size.movements_per_level >= 1
            && (1..=size.warehouses).contains(&size.warehouses_per_material),
        "every level needs an entry, and a material at most one level per warehouse"
    );
    let mut conn = PgConnection::connect(admin_url)
        .await
        .context("connecting as a superuser to load the data set")?;
    let superuser: bool =
        sqlx::query_scalar("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&mut conn)
            .await?;
    anyhow::ensure!(superuser, "loading needs a superuser connection");

    let mut tx = conn.begin().await?;
    history_partitions(&mut tx, size.history_days).await?;
    sqlx::query(
        "INSERT INTO inventory.materials (tenant_id, id, sku, name, description, unit, \
             unit_weight_kg, unit_volume_m3, hazard_class, reorder_point, created_at, updated_at) \
         SELECT $1, gen_random_uuid(), format('%s-MAT-%s', $2, lpad(i::text, 6, '0')), \
             format('Material %s %s', $2, i), 'Loaded by the benchmark', \
             (ARRAY['piece', 'kilogram', 'tonne', 'litre', 'cubic_metre', 'metre', 'square_metre', 'pallet'])[1 + i % 8], \
             round(0.5 + (i % 97) * 1.25, 4), round(0.001 + (i % 89) * 0.01, 6), \
             CASE WHEN i % 25 = 0 THEN '3' END, (i % 50) * 10, \
             now() - make_interval(days => $4) + make_interval(secs => i), \
             now() - make_interval(days => $4) + make_interval(secs => i) \
         FROM generate_series(1, $3) AS i",
    )
    .bind(tenant_id)
    .bind(prefix)
    .bind(i64::from(size.materials))
    .bind(i32::try_from(size.history_days)?)
    .execute(&mut *tx)
    .await
    .context("loading materials")?;
    sqlx::query(
        "INSERT INTO inventory.warehouses (tenant_id, id, code, name, address_line, city, \
             postal_code, country_code, latitude, longitude) \
         SELECT $1, gen_random_uuid(), format('%s-W%s', $2, lpad(i::text, 4, '0')), \
             format('Warehouse %s %s', $2, i), format('Lagerweg %s', i), \
             (ARRAY['Berlin', 'Hamburg', 'Munich', 'Cologne', 'Leipzig'])[1 + i % 5], \
             lpad((10000 + i)::text, 5, '0'), 'DE', 47.5 + (i % 50) * 0.1, 6.0 + (i % 80) * 0.1 \
         FROM generate_series(1, $3) AS i",
    )
    .bind(tenant_id)
    .bind(prefix)
    .bind(i64::from(size.warehouses))
    .execute(&mut *tx)
    .await
    .context("loading warehouses")?;

    // Material i is stocked in warehouses i, i + stride, i + 2 stride, ... (mod the count).
    sqlx::query(
        "CREATE TEMPORARY TABLE bench_levels ON COMMIT DROP AS \
         WITH m AS (SELECT id, row_number() OVER (ORDER BY sku) - 1 AS n FROM inventory.materials \
                     WHERE tenant_id = $1 AND sku LIKE $2 || '-MAT-%'), \
              w AS (SELECT id, row_number() OVER (ORDER BY code) - 1 AS n FROM inventory.warehouses \
                     WHERE tenant_id = $1 AND code LIKE $2 || '-W%') \
         SELECT w.id AS warehouse_id, m.id AS material_id, \
                row_number() OVER (ORDER BY m.n, g) AS n \
           FROM m CROSS JOIN generate_series(0, $3 - 1) AS g \
           JOIN w ON w.n = (m.n + g * ($4 / $3)) % $4",
    )
    .bind(tenant_id)
    .bind(prefix)
    .bind(i64::from(size.warehouses_per_material))
    .bind(i64::from(size.warehouses))
    .execute(&mut *tx)
    .await
    .context("choosing the stock levels")?;
    sqlx::query(
        "INSERT INTO inventory.stock_levels (tenant_id, warehouse_id, material_id, on_hand, \
             reserved, created_at, updated_at, version) \
         SELECT $1, warehouse_id, material_id, $2, 0, now() - make_interval(days => $3), now(), $4 + 1 \
           FROM bench_levels",
    )
    .bind(tenant_id)
    .bind(i64::from(size.on_hand_per_level()))
    .bind(i32::try_from(size.history_days)?)
    .bind(i32::try_from(size.movements_per_level)?)
    .execute(&mut *tx)
    .await
    .context("loading stock levels")?;
    // Entry j of a level (0-based): a receipt of 100 while j < r, then issues of 50; the balance
    // after it is the running sum. Entries of one level are in time order, spread over the
    // history with a per-level offset so that levels interleave.
    sqlx::query(
        "INSERT INTO inventory.stock_movements (tenant_id, id, warehouse_id, material_id, kind, \
             on_hand_change, reserved_change, on_hand_after, reserved_after, reason, \
             reference_type, reference_id, idempotency_key, created_at) \
         SELECT $1, gen_random_uuid(), l.warehouse_id, l.material_id, \
                CASE WHEN j < $3 THEN 'receipt' ELSE 'issue' END, \
                CASE WHEN j < $3 THEN 100 ELSE -50 END, 0, \
                CASE WHEN j < $3 THEN 100 * (j + 1) ELSE 100 * $3 - 50 * (j - $3 + 1) END, 0, '', \
                CASE WHEN j >= $3 THEN 'bench_order' END, \
                CASE WHEN j >= $3 THEN gen_random_uuid() END, gen_random_uuid(), \
                now() - make_interval(secs => (($2 - j - 1) * slot + (l.n % 997) * slot / 997)::double precision) \
           FROM bench_levels l CROSS JOIN generate_series(0, $2 - 1) AS j \
          CROSS JOIN (SELECT $4::double precision * 86400 / $2 AS slot) s",
    )
    .bind(tenant_id)
    .bind(i64::from(size.movements_per_level))
    .bind(i64::from(size.receipts()))
    .bind(f64::from(size.history_days))
    .execute(&mut *tx)
    .await
    .context("loading the ledger")?;
    tx.commit()
        .await
        .context("committing the load (the deferred ledger checks judge it)")?;

    for table in [
        "inventory.materials",
        "inventory.warehouses",
        "inventory.stock_levels",
        "inventory.stock_movements",
    ] {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(&mut conn)
            .await?;
    }
    let loaded = counts(&mut conn, tenant_id).await?;
    conn.close().await?;
    Ok(loaded)
}

/// Monthly ledger partitions for the past `days` (the service's own function only makes them
/// from this month on), owned like the ones it makes, with no right for the runtime role.
async fn history_partitions(conn: &mut PgConnection, days: u32) -> anyhow::Result<()> {
    let months: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT format('stock_movements_%s', to_char(m, 'YYYY_MM')), \
                m::date::text || ' 00:00:00+00', (m + interval '1 month')::date::text || ' 00:00:00+00' \
           FROM generate_series(date_trunc('month', (now() - make_interval(days => $1)) AT TIME ZONE 'UTC'), \
                                date_trunc('month', now() AT TIME ZONE 'UTC'), interval '1 month') AS m",
    )
    .bind(i32::try_from(days)?)
    .fetch_all(&mut *conn)
    .await?;
    for (name, from, to) in months {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('inventory.' || $1) IS NOT NULL")
            .bind(&name)
            .fetch_one(&mut *conn)
            .await?;
        if exists {
            continue;
        }
        for sql in [
            format!(
                "CREATE TABLE inventory.{name} PARTITION OF inventory.stock_movements \
                 FOR VALUES FROM ('{from}') TO ('{to}')"
            ),
            format!("ALTER TABLE inventory.{name} OWNER TO inventory_owner"),
            format!("REVOKE ALL ON inventory.{name} FROM PUBLIC, inventory_app"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .with_context(|| format!("creating ledger partition {name}"))?;
        }
    }
    Ok(())
}

/// The tenant's row counts.
pub async fn counts(conn: &mut PgConnection, tenant_id: Uuid) -> anyhow::Result<Loaded> {
    let (materials, warehouses, levels, movements) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM inventory.materials WHERE tenant_id = $1), \
                (SELECT count(*) FROM inventory.warehouses WHERE tenant_id = $1), \
                (SELECT count(*) FROM inventory.stock_levels WHERE tenant_id = $1), \
                (SELECT count(*) FROM inventory.stock_movements WHERE tenant_id = $1)",
    )
    .bind(tenant_id)
    .fetch_one(conn)
    .await?;
    Ok(Loaded {
        materials,
        warehouses,
        levels,
        movements,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_size_is_the_issues_share_per_tenant() {
        assert_eq!(Size::FULL.levels(), 50_000);
        assert_eq!(Size::FULL.movements(), 500_000);
        // 8 receipts of 100, 2 issues of 50.
        assert_eq!(Size::FULL.on_hand_per_level(), 700);
    }

    #[test]
    fn scaling_keeps_at_least_one_of_everything() {
        let tiny = Size::scaled(0.0001);
        assert_eq!((tiny.materials, tiny.warehouses), (1, 1));
        assert_eq!(tiny.warehouses_per_material, 1);
        assert_eq!(tiny.movements_per_level, Size::FULL.movements_per_level);
    }
}
