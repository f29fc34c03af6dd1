//! Reservations of stock for shipments. Each status change goes with its ledger entry in the
//! same transaction; the database refuses a commit after which a level's reserved differs from
//! its held reservations.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::stock::ReservationStatus;

/// A reservation as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReservationRow {
    /// Id.
    pub id: Uuid,
    /// The shipment.
    pub shipment_id: Uuid,
    /// The warehouse.
    pub warehouse_id: Uuid,
    /// The material.
    pub material_id: Uuid,
    /// How much.
    pub quantity: Decimal,
    /// Status name.
    pub status: String,
    /// Made.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
}

const SELECT: &str = "SELECT id, shipment_id, warehouse_id, material_id, quantity, status, created_at, \
    updated_at FROM inventory.reservations";

/// The shipment's reservations, by warehouse and material; with `lock`, locked for a change.
pub async fn of_shipment(
    tx: &mut Tx,
    shipment_id: Uuid,
    lock: bool,
) -> Result<Vec<ReservationRow>, Error> {
    let sql = format!(
        "{SELECT} WHERE shipment_id = $1 ORDER BY warehouse_id, material_id{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .fetch_all(&mut **tx)
        .await?)
}

/// Records a held reservation.
pub async fn insert(
    tx: &mut Tx,
    shipment_id: Uuid,
    warehouse_id: Uuid,
    material_id: Uuid,
    quantity: Decimal,
) -> Result<ReservationRow, Error> {
    let sql = format!(
        "WITH r AS (INSERT INTO inventory.reservations (tenant_id, id, shipment_id, warehouse_id, \
             material_id, quantity) VALUES (inventory.current_tenant_id(), $1, $2, $3, $4, $5) \
             RETURNING *) \
         {} ",
        SELECT.replace("FROM inventory.reservations", "FROM r")
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(shipment_id)
        .bind(warehouse_id)
        .bind(material_id)
        .bind(quantity)
        .fetch_one(&mut **tx)
        .await?)
}

/// Moves a reservation to `status` (with a new quantity when held again).
pub async fn set_status(
    tx: &mut Tx,
    id: Uuid,
    status: ReservationStatus,
    quantity: Decimal,
) -> Result<ReservationRow, Error> {
    let sql = format!(
        "WITH r AS (UPDATE inventory.reservations SET status = $2, quantity = $3, \
             version = version + 1 WHERE id = $1 RETURNING *) {}",
        SELECT.replace("FROM inventory.reservations", "FROM r")
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(status.as_str())
        .bind(quantity)
        .fetch_one(&mut **tx)
        .await?)
}
