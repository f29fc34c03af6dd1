//! Warehouses.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{Resource, UniqueConstraint};
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::warehouse::{WarehouseFields, WarehouseStatus};

/// Resource kind in error details.
pub const KIND: &str = "logistics.inventory.v1.Warehouse";

const UNIQUE: &[UniqueConstraint] = &[UniqueConstraint {
    constraint: "warehouses_code_key",
    kind: KIND,
    field: "code",
}];

/// A warehouse as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WarehouseRow {
    /// Id.
    pub id: Uuid,
    /// Code.
    pub code: String,
    /// Name.
    pub name: String,
    /// Street and number.
    pub address_line: String,
    /// City.
    pub city: String,
    /// Postal code.
    pub postal_code: String,
    /// Country.
    pub country_code: String,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
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

const SELECT: &str = "SELECT id, code, name, address_line, city, postal_code, country_code, latitude, \
    longitude, status, created_at, updated_at, version, deleted_at FROM inventory.warehouses";

/// Inserts a warehouse.
pub async fn insert(tx: &mut Tx, id: Uuid, f: &WarehouseFields) -> Result<WarehouseRow, Error> {
    sqlx::query(
        "INSERT INTO inventory.warehouses (tenant_id, id, code, name, address_line, city, postal_code, \
             country_code, latitude, longitude, status) \
         VALUES (inventory.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(f.code.as_str())
    .bind(f.name.as_str())
    .bind(f.address_line.as_str())
    .bind(f.city.as_str())
    .bind(f.postal_code.as_str())
    .bind(f.country.as_str())
    .bind(f.location.map(|l| l.latitude))
    .bind(f.location.map(|l| l.longitude))
    .bind(f.status.as_str())
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted warehouse not visible").into())
}

/// One warehouse; deleted ones only when `include_deleted`.
pub async fn get(
    tx: &mut Tx,
    id: Uuid,
    include_deleted: bool,
) -> Result<Option<WarehouseRow>, Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND ($2 OR deleted_at IS NULL)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A live warehouse, or NOT_FOUND; locked FOR SHARE until the transaction ends, so that it
/// cannot be deleted (or changed) under an operation that relies on it.
pub async fn get_live(tx: &mut Tx, id: Uuid) -> Result<WarehouseRow, Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND deleted_at IS NULL FOR SHARE");
    let row: Option<WarehouseRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.ok_or_else(|| Error::NotFound(Resource::new(KIND, id)))
}

/// Locks the warehouse FOR UPDATE before a delete decides, so operations that hold it FOR SHARE
/// finish first and their stock is seen.
pub async fn lock(tx: &mut Tx, id: Uuid) -> Result<(), Error> {
    sqlx::query("SELECT 1 FROM inventory.warehouses WHERE id = $1 FOR UPDATE")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes every field of a live warehouse at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    f: &WarehouseFields,
) -> Result<WarehouseRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE inventory.warehouses SET code = $3, name = $4, address_line = $5, city = $6, \
             postal_code = $7, country_code = $8, latitude = $9, longitude = $10, status = $11, \
             version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(f.code.as_str())
    .bind(f.name.as_str())
    .bind(f.address_line.as_str())
    .bind(f.city.as_str())
    .bind(f.postal_code.as_str())
    .bind(f.country.as_str())
    .bind(f.location.map(|l| l.latitude))
    .bind(f.location.map(|l| l.longitude))
    .bind(f.status.as_str())
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores a warehouse at `expected_version`.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<WarehouseRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE inventory.warehouses SET deleted_at = CASE WHEN $3 THEN now() END, version = version + 1 \
         WHERE id = $1 AND (deleted_at IS NULL) = $3 AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await?;
    after_write(tx, id, updated, deleted).await
}

async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<WarehouseRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// A ListWarehouses condition: `(value, negated)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Has (or not) the status.
    Status(WarehouseStatus, bool),
    /// In (or not) the country.
    Country(String, bool),
}

/// Where the previous page ended: code and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor(pub String, pub Uuid);

/// One page of warehouses by code.
pub async fn list(
    tx: &mut Tx,
    conditions: &[Condition],
    descending: bool,
    show_deleted: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<WarehouseRow>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    sql.push(" WHERE TRUE");
    if !show_deleted {
        sql.push(" AND deleted_at IS NULL");
    }
    for condition in conditions {
        match condition {
            Condition::Status(status, negated) => {
                sql.push(if *negated {
                    " AND status <> "
                } else {
                    " AND status = "
                });
                sql.push_bind(status.as_str());
            }
            Condition::Country(code, negated) => {
                sql.push(if *negated {
                    " AND country_code <> "
                } else {
                    " AND country_code = "
                });
                sql.push_bind(code.clone());
            }
        }
    }
    let (cmp, dir) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some(Cursor(code, id)) = after {
        sql.push(format!(" AND (code, id) {cmp} ("));
        sql.push_bind(code.clone())
            .push(", ")
            .push_bind(*id)
            .push(")");
    }
    sql.push(format!(" ORDER BY code {dir}, id {dir} LIMIT "));
    sql.push_bind(limit);
    Ok(sql.build_query_as().fetch_all(&mut **tx).await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &WarehouseRow) -> Cursor {
    Cursor(row.code.clone(), row.id)
}
