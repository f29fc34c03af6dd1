//! Inventory's SQL, one module per aggregate. Every function takes the request's transaction
//! (opened with the row-level-security context) and returns plain Rust types; none commits,
//! none sees a protobuf type. Levels and the ledger are written only through
//! `inventory.move_stock()` ([`stock::apply`], [`stock::apply_all`]).

pub mod materials;
pub mod reservations;
pub mod stock;
pub mod suppliers;
pub mod warehouses;

use logistics_platform::Error;
use logistics_platform::aip::Idempotency;
use logistics_platform::context::Tx;
use logistics_platform::error::Resource;
use rust_decimal::Decimal;
use time::OffsetDateTime;
use uuid::Uuid;

/// The idempotency claims of Create calls and stock operations.
pub const IDEMPOTENCY: Idempotency = Idempotency {
    table: "inventory.idempotency_keys",
};

/// What ReserveStock decides on, in one round trip (inventory migration 0011): the live
/// warehouses and materials of its lines locked FOR SHARE until the transaction ends
/// (warehouses first, then materials, each in id order, so two operations never wait on each
/// other crosswise), then the lines' levels locked FOR UPDATE (those that ever moved), then the
/// shipment's reservations as committed once those locks are held. NOT_FOUND names the first
/// missing or deleted warehouse, else the first such material: what an operation relies on
/// cannot be deleted or changed under it.
///
/// `warehouse_ids` and `material_ids` are the lines' keys, pairwise.
pub async fn lock_for_reservation(
    tx: &mut Tx,
    warehouse_ids: &[Uuid],
    material_ids: &[Uuid],
    shipment_id: Uuid,
) -> Result<(Vec<stock::LevelRow>, Vec<reservations::ReservationRow>), Error> {
    let rows: Vec<Locked> = sqlx::query_as(
        "SELECT part, id, warehouse_id, material_id, on_hand, reserved, reorder_point, quantity, \
             status, created_at, updated_at \
         FROM inventory.lock_for_reservation($1, $2, $3)",
    )
    .bind(warehouse_ids)
    .bind(material_ids)
    .bind(shipment_id)
    .fetch_all(&mut **tx)
    .await?;
    let live = |part: &str, id: &Uuid| rows.iter().any(|r| r.part == part && r.id == Some(*id));
    let missing = |kind: &'static str, part: &str, ids: &[Uuid]| {
        ids.iter()
            .find(|id| !live(part, id))
            .map(|id| Error::NotFound(Resource::new(kind, *id)))
    };
    if let Some(error) = missing(warehouses::KIND, "warehouse", warehouse_ids)
        .or_else(|| missing(materials::KIND, "material", material_ids))
    {
        return Err(error);
    }
    let (mut levels, mut held) = (Vec::new(), Vec::new());
    for row in rows {
        match row.part.as_str() {
            "level" => levels.push(stock::LevelRow {
                warehouse_id: required(row.warehouse_id)?,
                material_id: required(row.material_id)?,
                on_hand: required(row.on_hand)?,
                reserved: required(row.reserved)?,
                reorder_point: required(row.reorder_point)?,
                updated_at: required(row.updated_at)?,
            }),
            "reservation" => held.push(reservations::ReservationRow {
                id: required(row.id)?,
                shipment_id,
                warehouse_id: required(row.warehouse_id)?,
                material_id: required(row.material_id)?,
                quantity: required(row.quantity)?,
                status: required(row.status)?,
                created_at: required(row.created_at)?,
                updated_at: required(row.updated_at)?,
            }),
            _ => {}
        }
    }
    Ok((levels, held))
}

/// A row of `inventory.lock_for_reservation`: one of its parts, with that part's columns set.
#[derive(sqlx::FromRow)]
struct Locked {
    part: String,
    id: Option<Uuid>,
    warehouse_id: Option<Uuid>,
    material_id: Option<Uuid>,
    on_hand: Option<Decimal>,
    reserved: Option<Decimal>,
    reorder_point: Option<Decimal>,
    quantity: Option<Decimal>,
    status: Option<String>,
    created_at: Option<OffsetDateTime>,
    updated_at: Option<OffsetDateTime>,
}

/// A column its part always sets.
fn required<T>(value: Option<T>) -> Result<T, Error> {
    value.ok_or_else(|| {
        anyhow::anyhow!("lock_for_reservation left a column of its part empty").into()
    })
}
