//! Inventory's schema, roles, embedded migrations and ledger partitions.

use logistics_platform::db::SchemaSpec;
use sqlx::PgPool;

/// Inventory's schema and roles.
pub const SCHEMA: SchemaSpec =
    SchemaSpec::for_service("inventory", "inventory_owner", "inventory_app");

/// Inventory's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Months of ledger partitions kept ahead of the current one.
pub const PARTITION_MONTHS_AHEAD: i32 = 3;

/// The owner's function that creates this schema's monthly partitions.
pub const PARTITION_FUNCTION: &str = "inventory.ensure_movement_partitions";

/// Creates the ledger partitions missing from this month to [`PARTITION_MONTHS_AHEAD`] ahead
/// (through the owner's function; the runtime role owns nothing). Returns how many it created.
pub async fn ensure_partitions(pool: &PgPool) -> Result<i32, sqlx::Error> {
    logistics_platform::db::ensure_partitions(pool, PARTITION_FUNCTION, PARTITION_MONTHS_AHEAD)
        .await
}
