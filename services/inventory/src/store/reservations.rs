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

/// The shipment's reservations, by warehouse and material, as committed when the statement
/// starts; nothing is locked.
pub async fn of_shipment(tx: &mut Tx, shipment_id: Uuid) -> Result<Vec<ReservationRow>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{SELECT} WHERE shipment_id = $1 ORDER BY warehouse_id, material_id"
    )))
    .bind(shipment_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// The condition naming a shipment's ($1) held ($2) reservations, of one warehouse ($3) and/or
/// one material ($4) when given; [`fetch_held`] binds them.
const HELD: &str = "shipment_id = $1 AND status = $2 AND ($3::uuid IS NULL OR warehouse_id = $3) \
    AND ($4::uuid IS NULL OR material_id = $4)";

/// The rows of `sql`, a statement filtered by [`HELD`], for the shipment's held reservations
/// of one warehouse and/or one material when given.
async fn fetch_held<O>(
    tx: &mut Tx,
    sql: String,
    shipment_id: Uuid,
    warehouse_id: Option<Uuid>,
    material_id: Option<Uuid>,
) -> Result<Vec<O>, Error>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow> + Send + Unpin,
{
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .bind(ReservationStatus::Held.as_str())
        .bind(warehouse_id)
        .bind(material_id)
        .fetch_all(&mut **tx)
        .await?)
}

/// Locks the levels of the shipment's held reservations (of one warehouse and/or one material
/// when given), in the order every writer of levels locks them, and returns the keys
/// (warehouse, material) locked. Every change of a reservation happens under its level's lock,
/// so once this returns, the held reservations of those levels stay as they are: read them with
/// [`held_of_shipment`]. Locking levels first and reservations never is what keeps a release
/// from deadlocking with a ReserveStock of the same shipment, which locks levels first too.
pub async fn lock_held_levels(
    tx: &mut Tx,
    shipment_id: Uuid,
    warehouse_id: Option<Uuid>,
    material_id: Option<Uuid>,
) -> Result<Vec<(Uuid, Uuid)>, Error> {
    let sql = format!(
        "WITH h AS MATERIALIZED (SELECT warehouse_id, material_id FROM inventory.reservations \
                                 WHERE {HELD}) \
         SELECT l.warehouse_id, l.material_id FROM inventory.lock_levels( \
             ARRAY(SELECT warehouse_id FROM h ORDER BY warehouse_id, material_id), \
             ARRAY(SELECT material_id FROM h ORDER BY warehouse_id, material_id)) l"
    );
    fetch_held(tx, sql, shipment_id, warehouse_id, material_id).await
}

/// The shipment's held reservations, of one warehouse and/or one material when given, by
/// warehouse and material, as committed when the statement starts; nothing is locked (see
/// [`lock_held_levels`]).
pub async fn held_of_shipment(
    tx: &mut Tx,
    shipment_id: Uuid,
    warehouse_id: Option<Uuid>,
    material_id: Option<Uuid>,
) -> Result<Vec<ReservationRow>, Error> {
    let sql = format!("{SELECT} WHERE {HELD} ORDER BY warehouse_id, material_id");
    fetch_held(tx, sql, shipment_id, warehouse_id, material_id).await
}

/// Records held reservations of `shipment_id`, one per line (warehouse, material, quantity),
/// in one statement (none when there are no lines); returned by warehouse and material.
pub async fn insert_all(
    tx: &mut Tx,
    shipment_id: Uuid,
    lines: &[(Uuid, Uuid, Decimal)],
) -> Result<Vec<ReservationRow>, Error> {
    if lines.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = lines.iter().map(|_| Uuid::now_v7()).collect();
    let warehouses: Vec<Uuid> = lines.iter().map(|l| l.0).collect();
    let materials: Vec<Uuid> = lines.iter().map(|l| l.1).collect();
    let quantities: Vec<Decimal> = lines.iter().map(|l| l.2).collect();
    let sql = format!(
        "WITH r AS (INSERT INTO inventory.reservations (tenant_id, id, shipment_id, warehouse_id, \
             material_id, quantity) \
             SELECT inventory.current_tenant_id(), l.id, $1, l.warehouse_id, l.material_id, \
                    l.quantity \
               FROM unnest($2::uuid[], $3::uuid[], $4::uuid[], $5::numeric[]) \
                    WITH ORDINALITY AS l(id, warehouse_id, material_id, quantity, n) \
              ORDER BY l.n \
             RETURNING *) \
         {} ORDER BY warehouse_id, material_id",
        SELECT.replace("FROM inventory.reservations", "FROM r")
    );
    let rows: Vec<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .bind(ids)
        .bind(warehouses)
        .bind(materials)
        .bind(quantities)
        .fetch_all(&mut **tx)
        .await?;
    expect_rows(lines.len(), rows)
}

/// Moves reservations (id, quantity: the new one when held again) to `status`, in one
/// statement (none when there are none); returned by warehouse and material.
pub async fn set_status_all(
    tx: &mut Tx,
    reservations: &[(Uuid, Decimal)],
    status: ReservationStatus,
) -> Result<Vec<ReservationRow>, Error> {
    if reservations.is_empty() {
        return Ok(Vec::new());
    }
    let (ids, quantities): (Vec<Uuid>, Vec<Decimal>) = reservations.iter().copied().unzip();
    let sql = format!(
        "WITH r AS (UPDATE inventory.reservations t SET status = $3, quantity = u.quantity, \
             version = t.version + 1 \
             FROM unnest($1::uuid[], $2::numeric[]) AS u(id, quantity) \
             WHERE t.id = u.id RETURNING t.*) \
         {} ORDER BY warehouse_id, material_id",
        SELECT.replace("FROM inventory.reservations", "FROM r")
    );
    let rows: Vec<ReservationRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .bind(quantities)
        .bind(status.as_str())
        .fetch_all(&mut **tx)
        .await?;
    expect_rows(reservations.len(), rows)
}

/// `rows`, if there are as many as were written: a reservation that vanished under its lock
/// is a bug, not an answer.
fn expect_rows(written: usize, rows: Vec<ReservationRow>) -> Result<Vec<ReservationRow>, Error> {
    if rows.len() == written {
        Ok(rows)
    } else {
        Err(anyhow::anyhow!("{written} reservations written, {} returned", rows.len()).into())
    }
}
