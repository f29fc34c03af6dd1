//! Shipment's schema, roles, embedded migrations and tracking-event partitions.

use logistics_platform::db::SchemaSpec;
use sqlx::PgPool;

/// Shipment's schema and roles.
pub const SCHEMA: SchemaSpec =
    SchemaSpec::for_service("shipment", "shipment_owner", "shipment_app");

/// Shipment's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Months of tracking-event partitions kept ahead of the current one.
pub const PARTITION_MONTHS_AHEAD: i32 = 3;

/// Creates the tracking-event partitions missing from this month to
/// [`PARTITION_MONTHS_AHEAD`] ahead (through the owner's function). Returns how many it created.
pub async fn ensure_partitions(pool: &PgPool) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("SELECT shipment.ensure_tracking_partitions($1)")
        .bind(PARTITION_MONTHS_AHEAD)
        .fetch_one(pool)
        .await
}
