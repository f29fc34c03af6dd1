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
use uuid::Uuid;

/// The idempotency claims of Create calls and stock operations.
pub const IDEMPOTENCY: Idempotency = Idempotency {
    table: "inventory.idempotency_keys",
};

/// Locks the live warehouses and materials an operation relies on FOR SHARE until the
/// transaction ends, in one statement: warehouses first, then materials, each in id order (two
/// operations never wait on each other crosswise); or NOT_FOUND naming the first missing or
/// deleted warehouse, else the first such material. What an operation relies on cannot be
/// deleted or changed under it.
pub async fn lock_live(
    tx: &mut Tx,
    warehouse_ids: &[Uuid],
    material_ids: &[Uuid],
) -> Result<(), Error> {
    // Warehouses first (inventory migration 0008), from a plan kept for the session.
    let found: Vec<(bool, Uuid)> =
        sqlx::query_as("SELECT is_warehouse, locked_id FROM inventory.lock_live($1, $2)")
            .bind(warehouse_ids)
            .bind(material_ids)
            .fetch_all(&mut **tx)
            .await?;
    let missing = |kind: &'static str, warehouse: bool, ids: &[Uuid]| {
        ids.iter()
            .find(|id| !found.contains(&(warehouse, **id)))
            .map(|id| Error::NotFound(Resource::new(kind, *id)))
    };
    match missing(warehouses::KIND, true, warehouse_ids)
        .or_else(|| missing(materials::KIND, false, material_ids))
    {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
