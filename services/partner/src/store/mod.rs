//! Partner's SQL, one module per aggregate. Every function takes the request's transaction
//! (opened with the row-level-security context) and returns plain Rust types; none commits,
//! none sees a protobuf type or a plaintext personal field.

pub mod addresses;
pub mod contacts;
pub mod partners;
pub mod profiles;

use logistics_platform::aip::Idempotency;

/// The idempotency claims of this service's Create calls.
pub const IDEMPOTENCY: Idempotency = Idempotency {
    table: "partner.idempotency_keys",
};
