//! Identity's SQL, one module per aggregate. Every function takes the request's transaction
//! (`&mut Tx`, opened with the row-level-security context) and returns plain Rust types; none
//! commits, none sees a protobuf type.

pub mod sessions;
pub mod signing_keys;
pub mod tenants;
pub mod users;

use logistics_platform::aip::Idempotency;

/// The idempotency claims of this service's Create calls.
pub const IDEMPOTENCY: Idempotency = Idempotency {
    table: "identity.idempotency_keys",
};
