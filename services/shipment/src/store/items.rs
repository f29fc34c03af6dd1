//! Shipment items (shipment × material). The database refuses any change to the items of a
//! shipment that is not an editable draft, and keeps the shipment's totals in step.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{Resource, UniqueConstraint};
use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Cursor, db_error};

/// Resource kind in error details.
pub const KIND: &str = "logistics.shipment.v1.ShipmentItem";

const UNIQUE: &[UniqueConstraint] = &[UniqueConstraint {
    constraint: "shipment_items_material_key",
    kind: KIND,
    field: "material_id",
}];

/// An item as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ItemRow {
    /// Id.
    pub id: Uuid,
    /// Shipment.
    pub shipment_id: Uuid,
    /// Material.
    pub material_id: Uuid,
    /// Quantity.
    pub quantity: Decimal,
    /// Unit weight snapshot.
    pub unit_weight_kg: Decimal,
    /// Unit volume snapshot.
    pub unit_volume_m3: Decimal,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

const SELECT: &str = "SELECT id, shipment_id, material_id, quantity, unit_weight_kg, unit_volume_m3, \
    created_at, updated_at, version, deleted_at FROM shipment.shipment_items";

/// What a new item holds.
#[derive(Debug, Clone)]
pub struct NewItem {
    /// Shipment.
    pub shipment_id: Uuid,
    /// Material.
    pub material_id: Uuid,
    /// Quantity, more than zero.
    pub quantity: Decimal,
    /// The material's unit weight now.
    pub unit_weight_kg: Decimal,
    /// The material's unit volume now.
    pub unit_volume_m3: Decimal,
}

/// Inserts an item.
pub async fn insert(tx: &mut Tx, id: Uuid, item: &NewItem) -> Result<ItemRow, Error> {
    sqlx::query(
        "INSERT INTO shipment.shipment_items (tenant_id, id, shipment_id, material_id, quantity, \
             unit_weight_kg, unit_volume_m3) \
         VALUES (shipment.current_tenant_id(), $1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(item.shipment_id)
    .bind(item.material_id)
    .bind(item.quantity)
    .bind(item.unit_weight_kg)
    .bind(item.unit_volume_m3)
    .execute(&mut **tx)
    .await
    .map_err(|e| db_error(e, UNIQUE))?;
    reread(tx, id).await
}

/// One item; deleted ones only when `include_deleted`.
pub async fn get(tx: &mut Tx, id: Uuid, include_deleted: bool) -> Result<Option<ItemRow>, Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND ($2 OR deleted_at IS NULL)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A shipment's live items, oldest first.
pub async fn of_shipment(tx: &mut Tx, shipment_id: Uuid) -> Result<Vec<ItemRow>, Error> {
    let sql =
        format!("{SELECT} WHERE shipment_id = $1 AND deleted_at IS NULL ORDER BY created_at, id");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .fetch_all(&mut **tx)
        .await?)
}

/// What a plan reserves of an item: its material and quantity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanLine {
    /// Material.
    pub material_id: Uuid,
    /// Quantity.
    pub quantity: Decimal,
}

impl From<ItemRow> for PlanLine {
    fn from(item: ItemRow) -> Self {
        PlanLine {
            material_id: item.material_id,
            quantity: item.quantity,
        }
    }
}

/// Changes the quantity of a live item at `expected_version`.
pub async fn set_quantity(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    quantity: Decimal,
) -> Result<ItemRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE shipment.shipment_items SET quantity = $3, version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(quantity)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| db_error(e, &[]))?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores an item at `expected_version`.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<ItemRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE shipment.shipment_items SET deleted_at = CASE WHEN $3 THEN now() END, \
             version = version + 1 \
         WHERE id = $1 AND (deleted_at IS NULL) = $3 AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| db_error(e, UNIQUE))?;
    after_write(tx, id, updated, deleted).await
}

async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<ItemRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

async fn reread(tx: &mut Tx, id: Uuid) -> Result<ItemRow, Error> {
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("written item vanished").into())
}

/// One page of a shipment's items by creation time; `material_id` narrows to one material.
pub async fn list(
    tx: &mut Tx,
    shipment_id: Uuid,
    material_id: Option<(Uuid, bool)>,
    descending: bool,
    show_deleted: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<ItemRow>, Error> {
    let (cmp, dir) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let sql = format!(
        "{SELECT} WHERE shipment_id = $1 AND ($2 OR deleted_at IS NULL) \
           AND ($3::uuid IS NULL OR (material_id = $3) <> $4) \
           AND ($5::timestamptz IS NULL OR (created_at, id) {cmp} ($5, $6)) \
         ORDER BY created_at {dir}, id {dir} LIMIT $7"
    );
    let (after_at, after_id) = super::cursor_parts(after)?;
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .bind(show_deleted)
        .bind(material_id.map(|(m, _)| m))
        .bind(material_id.is_some_and(|(_, negated)| negated))
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &ItemRow) -> Cursor {
    Cursor(row.created_at.unix_timestamp_nanos(), row.id)
}
