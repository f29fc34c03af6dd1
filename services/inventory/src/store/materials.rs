//! Materials.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{Resource, UniqueConstraint};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::material::{MaterialFields, MaterialStatus};

/// Resource kind in error details.
pub const KIND: &str = "logistics.inventory.v1.Material";

const UNIQUE: &[UniqueConstraint] = &[UniqueConstraint {
    constraint: "materials_sku_key",
    kind: KIND,
    field: "sku",
}];

/// A material as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MaterialRow {
    /// Id.
    pub id: Uuid,
    /// SKU.
    pub sku: String,
    /// Name.
    pub name: String,
    /// Lower-cased name (order key).
    pub name_key: String,
    /// Description.
    pub description: String,
    /// Unit name.
    pub unit: String,
    /// Weight of one unit, kg.
    pub unit_weight_kg: Decimal,
    /// Volume of one unit, m³.
    pub unit_volume_m3: Decimal,
    /// UN class, if hazardous.
    pub hazard_class: Option<String>,
    /// Reorder point.
    pub reorder_point: Decimal,
    /// Status name.
    pub status: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

const SELECT: &str = "SELECT id, sku, name, lower(name) AS name_key, description, unit, unit_weight_kg, \
    unit_volume_m3, hazard_class, reorder_point, status, created_at, updated_at, version, deleted_at \
    FROM inventory.materials";

/// Inserts a material.
pub async fn insert(tx: &mut Tx, id: Uuid, f: &MaterialFields) -> Result<MaterialRow, Error> {
    sqlx::query(
        "INSERT INTO inventory.materials (tenant_id, id, sku, name, description, unit, unit_weight_kg, \
             unit_volume_m3, hazard_class, reorder_point, status) \
         VALUES (inventory.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(f.sku.as_str())
    .bind(f.name.as_str())
    .bind(f.description.as_str())
    .bind(f.unit.as_str())
    .bind(f.unit_weight_kg)
    .bind(f.unit_volume_m3)
    .bind(f.hazard_class)
    .bind(f.reorder_point)
    .bind(f.status.as_str())
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted material not visible").into())
}

/// One material; deleted ones only when `include_deleted`.
pub async fn get(
    tx: &mut Tx,
    id: Uuid,
    include_deleted: bool,
) -> Result<Option<MaterialRow>, Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND ($2 OR deleted_at IS NULL)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A live material, or NOT_FOUND; locked FOR SHARE until the transaction ends, so that it
/// cannot be deleted (or changed) under an operation that relies on it.
pub async fn get_live(tx: &mut Tx, id: Uuid) -> Result<MaterialRow, Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND deleted_at IS NULL FOR SHARE");
    let row: Option<MaterialRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.ok_or_else(|| Error::NotFound(Resource::new(KIND, id)))
}

/// Locks the material FOR UPDATE before a delete decides, so operations that hold it FOR SHARE
/// finish first and their stock is seen.
pub async fn lock(tx: &mut Tx, id: Uuid) -> Result<(), Error> {
    sqlx::query("SELECT 1 FROM inventory.materials WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes every field of a live material at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    f: &MaterialFields,
) -> Result<MaterialRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE inventory.materials SET sku = $3, name = $4, description = $5, unit = $6, \
             unit_weight_kg = $7, unit_volume_m3 = $8, hazard_class = $9, reorder_point = $10, \
             status = $11, version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(f.sku.as_str())
    .bind(f.name.as_str())
    .bind(f.description.as_str())
    .bind(f.unit.as_str())
    .bind(f.unit_weight_kg)
    .bind(f.unit_volume_m3)
    .bind(f.hazard_class)
    .bind(f.reorder_point)
    .bind(f.status.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores a material at `expected_version`.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<MaterialRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE inventory.materials SET deleted_at = CASE WHEN $3 THEN now() END, version = version + 1 \
         WHERE id = $1 AND (deleted_at IS NULL) = $3 AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    after_write(tx, id, updated, deleted).await
}

async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<MaterialRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// Orders ListMaterials offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// SKU, then id.
    Sku,
    /// Lower-cased name, then id.
    Name,
    /// Creation time, then id.
    CreateTime,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cursor {
    /// Last SKU or name key, and id.
    Text(String, Uuid),
    /// Last creation time and id.
    Created(OffsetDateTime, Uuid),
}

/// A ListMaterials condition: `(value, negated)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Has (or not) the status.
    Status(MaterialStatus, bool),
    /// SKU starts (or not) with.
    SkuPrefix(String, bool),
    /// SKU is (or is not).
    SkuIs(String, bool),
    /// Has a hazard class (or not).
    Hazardous(bool),
}

/// A ListMaterials query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// Order.
    pub order: Order,
    /// Descending.
    pub descending: bool,
    /// Include soft-deleted.
    pub show_deleted: bool,
    /// Continue after.
    pub after: Option<Cursor>,
    /// Rows to fetch.
    pub limit: i64,
}

/// One page of materials in keyset order.
pub async fn list(tx: &mut Tx, query: &ListQuery) -> Result<Vec<MaterialRow>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    sql.push(" WHERE TRUE");
    if !query.show_deleted {
        sql.push(" AND deleted_at IS NULL");
    }
    for condition in &query.conditions {
        match condition {
            Condition::Status(status, negated) => {
                sql.push(if *negated {
                    " AND status <> "
                } else {
                    " AND status = "
                });
                sql.push_bind(status.as_str());
            }
            Condition::SkuIs(sku, negated) => {
                sql.push(if *negated {
                    " AND sku <> "
                } else {
                    " AND sku = "
                });
                sql.push_bind(sku.clone());
            }
            // starts_with, not LIKE: it is leakproof, so under row-level security it can still
            // become an index condition (materials_by_sku_prefix); LIKE can only filter.
            Condition::SkuPrefix(prefix, negated) => {
                sql.push(if *negated {
                    " AND NOT starts_with(sku, "
                } else {
                    " AND starts_with(sku, "
                });
                sql.push_bind(prefix.clone());
                sql.push(")");
            }
            Condition::Hazardous(hazardous) => {
                sql.push(if *hazardous {
                    " AND hazard_class IS NOT NULL"
                } else {
                    " AND hazard_class IS NULL"
                });
            }
        }
    }
    let (cmp, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let key = match query.order {
        Order::Sku => "sku",
        Order::Name => "lower(name)",
        Order::CreateTime => "created_at",
    };
    match (&query.after, query.order) {
        (Some(Cursor::Text(text, id)), Order::Sku | Order::Name) => {
            sql.push(format!(" AND ({key}, id) {cmp} ("));
            sql.push_bind(text.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (Some(Cursor::Created(at, id)), Order::CreateTime) => {
            sql.push(format!(" AND ({key}, id) {cmp} ("));
            sql.push_bind(*at).push(", ").push_bind(*id).push(")");
        }
        (None, _) => {}
        (Some(_), _) => return Err(Error::invalid("page_token", "does not match order_by")),
    }
    sql.push(format!(" ORDER BY {key} {dir}, id {dir} LIMIT "));
    sql.push_bind(query.limit);
    Ok(sql.build_query_as().fetch_all(&mut **tx).await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &MaterialRow, order: Order) -> Cursor {
    match order {
        Order::Sku => Cursor::Text(row.sku.clone(), row.id),
        Order::Name => Cursor::Text(row.name_key.clone(), row.id),
        Order::CreateTime => Cursor::Created(row.created_at, row.id),
    }
}
