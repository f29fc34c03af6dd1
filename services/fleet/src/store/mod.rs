//! Fleet's SQL, one module per aggregate. Every function takes the request's transaction
//! (opened with the row-level-security context) and returns plain Rust types; none commits,
//! none sees a protobuf type or a plaintext licence number or phone.

pub mod assignments;
pub mod drivers;
pub mod maintenance;
pub mod trucks;

use logistics_platform::aip::Idempotency;
use sqlx::postgres::types::PgRange;
use time::OffsetDateTime;

use crate::domain::window::Window;

/// The idempotency claims of this service's Create calls.
pub const IDEMPOTENCY: Idempotency = Idempotency {
    table: "fleet.idempotency_keys",
};

/// A window as a `tstzrange` `[start, end)`.
pub fn range(window: &Window) -> PgRange<OffsetDateTime> {
    window.range()
}

/// A stored `[start, end)` range as a window (the schema allows no other shape).
pub fn window(range: &PgRange<OffsetDateTime>) -> Option<Window> {
    Window::from_range(range)
}
