//! Inventory's SQL, one module per aggregate. Every function takes the request's transaction
//! (opened with the row-level-security context) and returns plain Rust types; none commits,
//! none sees a protobuf type. Levels and the ledger are written only through
//! `inventory.move_stock()` ([`stock::apply`]).

pub mod materials;
pub mod reservations;
pub mod stock;
pub mod suppliers;
pub mod warehouses;

use logistics_platform::aip::Idempotency;

/// The idempotency claims of Create calls and stock operations.
pub const IDEMPOTENCY: Idempotency = Idempotency {
    table: "inventory.idempotency_keys",
};
