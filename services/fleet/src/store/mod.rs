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

/// Parameter numbers of an availability search's window: as a range, and its bounds.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// The window, a `tstzrange`.
    pub range: u8,
    /// The window's start.
    pub start: u8,
    /// The window's end.
    pub end: u8,
}

/// The `column` (`truck_id` or `driver_id`) of every active assignment overlapping the window
/// whose start and end are bound as parameters `$start` and `$end`, for a `NOT IN`.
///
/// The overlap is written on the stored bounds, not as `time_window && ...`: under row-level
/// security only leakproof comparisons may become index conditions. A booking that overlaps
/// starts before the end and after the start minus the tenant's longest active booking (the
/// joined `l`, from `assignments_active_by_length`), so the scan of `assignments_active_by_start`
/// covers only the bookings that can overlap (migration 0006). The bound is a join column, not
/// a sub-select in the condition, so that it becomes part of the index condition. The tenant
/// is named so the conditions hold whatever other policies are ORed in.
fn busy(column: &str, start: u8, end: u8) -> String {
    format!(
        "SELECT a.{column} \
           FROM (SELECT ${start}::timestamptz \
                        - coalesce(max(b.window_end - b.window_start), interval '0') AS earliest \
                   FROM fleet.assignments b \
                  WHERE b.tenant_id = fleet.current_tenant_id() AND b.status = 'active') l \
           JOIN fleet.assignments a ON a.window_start > l.earliest \
          WHERE a.tenant_id = fleet.current_tenant_id() AND a.status = 'active' \
            AND a.window_start < ${end} AND a.window_end > ${start}"
    )
}

/// A window as a `tstzrange` `[start, end)`.
pub fn range(window: &Window) -> PgRange<OffsetDateTime> {
    window.range()
}

/// A stored `[start, end)` range as a window (the schema allows no other shape).
pub fn window(range: &PgRange<OffsetDateTime>) -> Option<Window> {
    Window::from_range(range)
}
