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

/// Locks the live rows of `table` (a warehouse or material table, `kind` its resource name) with
/// the given ids FOR SHARE until the transaction ends, in one statement and in id order (two
/// operations never wait on each other crosswise); or NOT_FOUND naming the first of `ids` that
/// is missing or deleted. What an operation relies on cannot be deleted or changed under it.
async fn lock_live(
    tx: &mut Tx,
    table: &str,
    kind: &'static str,
    ids: &[Uuid],
) -> Result<(), Error> {
    let sql = format!(
        "SELECT id FROM {table} WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR SHARE"
    );
    let found: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?;
    match ids.iter().find(|id| !found.contains(id)) {
        Some(missing) => Err(Error::NotFound(Resource::new(kind, *missing))),
        None => Ok(()),
    }
}
