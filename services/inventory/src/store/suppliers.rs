//! Material-supplier links.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{Resource, UniqueConstraint};
use time::OffsetDateTime;
use uuid::Uuid;

/// Resource kind in error details.
pub const KIND: &str = "logistics.inventory.v1.MaterialSupplier";

const UNIQUE: &[UniqueConstraint] = &[UniqueConstraint {
    constraint: "material_suppliers_pair_key",
    kind: KIND,
    field: "supplier_id",
}];

/// A write that lost the race for the one preferred flag (the demotion runs in the same
/// transaction, so only two promotions at once get here): retry.
fn write_error(err: sqlx::Error) -> Error {
    let raced = err
        .as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "material_suppliers_one_preferred");
    if raced {
        Error::Aborted(logistics_platform::error::Conflict::Concurrency)
    } else {
        Error::from_db_with(err, UNIQUE)
    }
}

/// A link as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LinkRow {
    /// Id.
    pub id: Uuid,
    /// The material.
    pub material_id: Uuid,
    /// The supplier's partner id.
    pub supplier_id: Uuid,
    /// The supplier's code.
    pub supplier_sku: String,
    /// Lead time, days.
    pub lead_time_days: i32,
    /// Unit price, minor units.
    pub unit_price_minor: i64,
    /// Currency.
    pub currency_code: String,
    /// Preferred.
    pub preferred: bool,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

/// A link's changeable values, validated.
#[derive(Debug, Clone)]
pub struct LinkValues {
    /// The supplier's code.
    pub supplier_sku: String,
    /// Lead time, days.
    pub lead_time_days: i32,
    /// Unit price, minor units.
    pub unit_price_minor: i64,
    /// Currency.
    pub currency_code: String,
    /// Preferred.
    pub preferred: bool,
}

const SELECT: &str = "SELECT id, material_id, supplier_id, supplier_sku, lead_time_days, unit_price_minor, \
    currency_code, preferred, created_at, updated_at, version, deleted_at FROM inventory.material_suppliers";

/// Makes no live link of `material_id` but `except` preferred (before promoting `except`).
pub async fn demote_preferred(tx: &mut Tx, material_id: Uuid, except: Uuid) -> Result<(), Error> {
    sqlx::query(
        "UPDATE inventory.material_suppliers SET preferred = false, version = version + 1 \
         WHERE material_id = $1 AND id <> $2 AND preferred AND deleted_at IS NULL",
    )
    .bind(material_id)
    .bind(except)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inserts a link.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    material_id: Uuid,
    supplier_id: Uuid,
    v: &LinkValues,
) -> Result<LinkRow, Error> {
    sqlx::query(
        "INSERT INTO inventory.material_suppliers (tenant_id, id, material_id, supplier_id, supplier_sku, \
             lead_time_days, unit_price_minor, currency_code, preferred) \
         VALUES (inventory.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(material_id)
    .bind(supplier_id)
    .bind(&v.supplier_sku)
    .bind(v.lead_time_days)
    .bind(v.unit_price_minor)
    .bind(&v.currency_code)
    .bind(v.preferred)
    .execute(&mut **tx)
    .await
    .map_err(write_error)?;
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted link not visible").into())
}

/// One link; deleted ones only when `include_deleted`.
pub async fn get(tx: &mut Tx, id: Uuid, include_deleted: bool) -> Result<Option<LinkRow>, Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND ($2 OR deleted_at IS NULL)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Writes the values of a live link at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    v: &LinkValues,
) -> Result<LinkRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE inventory.material_suppliers SET supplier_sku = $3, lead_time_days = $4, \
             unit_price_minor = $5, currency_code = $6, preferred = $7, version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(&v.supplier_sku)
    .bind(v.lead_time_days)
    .bind(v.unit_price_minor)
    .bind(&v.currency_code)
    .bind(v.preferred)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores a link at `expected_version`; a restored link
/// stays preferred only if no other live link took the role.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<LinkRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE inventory.material_suppliers s SET deleted_at = CASE WHEN $3 THEN now() END, \
             preferred = s.preferred AND ($3 OR NOT EXISTS (SELECT 1 FROM inventory.material_suppliers o \
                 WHERE o.tenant_id = s.tenant_id AND o.material_id = s.material_id AND o.id <> s.id \
                   AND o.preferred AND o.deleted_at IS NULL)), \
             version = s.version + 1 \
         WHERE s.id = $1 AND (s.deleted_at IS NULL) = $3 AND ($2::int IS NULL OR s.version = $2) \
         RETURNING s.id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, deleted).await
}

async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<LinkRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// Filters of ListMaterialSuppliers.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Of this material.
    pub material_id: Option<Uuid>,
    /// Of this supplier.
    pub supplier_id: Option<Uuid>,
    /// Only preferred (or only not preferred).
    pub preferred: Option<bool>,
}

/// Where the previous page ended: creation time and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor(pub OffsetDateTime, pub Uuid);

/// One page of links by creation time.
pub async fn list(
    tx: &mut Tx,
    filter: &ListFilter,
    descending: bool,
    show_deleted: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<LinkRow>, Error> {
    let (cmp, dir) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let sql = format!(
        "{SELECT} WHERE ($1::uuid IS NULL OR material_id = $1) AND ($2::uuid IS NULL OR supplier_id = $2) \
           AND ($3::bool IS NULL OR preferred = $3) AND ($4 OR deleted_at IS NULL) \
           AND ($5::timestamptz IS NULL OR (created_at, id) {cmp} ($5, $6)) \
         ORDER BY created_at {dir}, id {dir} LIMIT $7"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(filter.material_id)
        .bind(filter.supplier_id)
        .bind(filter.preferred)
        .bind(show_deleted)
        .bind(after.map(|c| c.0))
        .bind(after.map(|c| c.1))
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &LinkRow) -> Cursor {
    Cursor(row.created_at, row.id)
}
