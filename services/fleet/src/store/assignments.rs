//! Assignments. The database refuses overlapping bookings (exclusion constraints) and bookings
//! of unavailable trucks or drivers (a trigger); each refusal becomes the precondition it names.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{PreconditionViolation, Resource};
use rust_decimal::Decimal;
use sqlx::postgres::types::PgRange;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Params, drivers, range, trucks};
use crate::domain::driver::LicenceClass;
use crate::domain::window::Window;

/// Resource kind in error details.
pub const KIND: &str = "logistics.fleet.v1.Assignment";

/// An assignment as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AssignmentRow {
    /// Id.
    pub id: Uuid,
    /// The truck.
    pub truck_id: Uuid,
    /// The driver.
    pub driver_id: Uuid,
    /// The shipment.
    pub shipment_id: Uuid,
    /// When.
    pub time_window: PgRange<OffsetDateTime>,
    /// `active` or `cancelled`.
    pub status: String,
    /// When cancelled.
    pub cancelled_at: Option<OffsetDateTime>,
    /// Why cancelled.
    pub cancel_reason: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
}

const COLUMNS: &str = "id, truck_id, driver_id, shipment_id, time_window, status, cancelled_at, \
    cancel_reason, created_at, updated_at, version";

/// A reason a booking is refused: the database constraint that refuses it, and the
/// precondition the caller is told.
#[derive(Debug, Clone, Copy)]
pub struct Refusal {
    /// Constraint (or trigger's constraint name) in the schema.
    pub constraint: &'static str,
    /// `PreconditionFailure.Violation.type`.
    pub kind: &'static str,
    /// `truck` or `driver`.
    pub subject: &'static str,
    /// What is wrong.
    pub description: &'static str,
}

impl Refusal {
    /// As a precondition violation.
    pub fn violation(self) -> PreconditionViolation {
        PreconditionViolation {
            kind: self.kind,
            subject: self.subject.to_owned(),
            description: self.description.to_owned(),
        }
    }
}

/// The truck has another active assignment during the window.
pub const TRUCK_BOOKED: Refusal = Refusal {
    constraint: "assignments_truck_no_overlap",
    kind: "TRUCK_BOOKED",
    subject: "truck",
    description: "the truck has another active assignment during the window",
};
/// The driver has another active assignment during the window.
pub const DRIVER_BOOKED: Refusal = Refusal {
    constraint: "assignments_driver_no_overlap",
    kind: "DRIVER_BOOKED",
    subject: "driver",
    description: "the driver has another active assignment during the window",
};
/// The truck is in maintenance, retired or deleted.
pub const TRUCK_NOT_ACTIVE: Refusal = Refusal {
    constraint: "assignments_truck_active",
    kind: "TRUCK_NOT_ACTIVE",
    subject: "truck",
    description: "the truck is not active (in maintenance or retired)",
};
/// Maintenance of the truck is scheduled during the window.
pub const TRUCK_IN_MAINTENANCE: Refusal = Refusal {
    constraint: "assignments_truck_not_in_maintenance",
    kind: "TRUCK_IN_MAINTENANCE",
    subject: "truck",
    description: "the truck has maintenance scheduled during the window",
};
/// The driver is inactive or terminated.
pub const DRIVER_NOT_ACTIVE: Refusal = Refusal {
    constraint: "assignments_driver_active",
    kind: "DRIVER_NOT_ACTIVE",
    subject: "driver",
    description: "the driver is not active",
};
/// The driver's licence ends before the window does.
pub const LICENCE_EXPIRES: Refusal = Refusal {
    constraint: "assignments_driver_licensed",
    kind: "LICENCE_EXPIRES",
    subject: "driver",
    description: "the driver's licence expires before the window ends",
};

/// No active truck that carries the load is free for the window (`AssignAvailable`; no
/// constraint: nothing was written).
pub const NO_TRUCK_AVAILABLE: Refusal = Refusal {
    constraint: "",
    kind: "NO_TRUCK_AVAILABLE",
    subject: "truck",
    description: "no active truck that carries the load is free for the window",
};
/// No active driver licensed to the window's end is free for it (`AssignAvailable`).
pub const NO_DRIVER_AVAILABLE: Refusal = Refusal {
    constraint: "",
    kind: "NO_DRIVER_AVAILABLE",
    subject: "driver",
    description: "no active driver with a valid licence is free for the window",
};

const REFUSALS: [Refusal; 6] = [
    TRUCK_BOOKED,
    DRIVER_BOOKED,
    TRUCK_NOT_ACTIVE,
    TRUCK_IN_MAINTENANCE,
    DRIVER_NOT_ACTIVE,
    LICENCE_EXPIRES,
];

fn write_error(err: sqlx::Error) -> Error {
    let refusal = err
        .as_database_error()
        .filter(|d| matches!(d.code().as_deref(), Some("23P01" | "23514")))
        .and_then(|d| d.constraint())
        .and_then(|c| REFUSALS.iter().find(|r| r.constraint == c));
    match refusal {
        Some(refusal) => Error::Precondition(vec![refusal.violation()]),
        None => Error::from_db(err),
    }
}

/// The first free truck (carrying `min_payload_kg` and `min_volume_m3`) and the first free
/// driver (licensed for `class`) for a booking over `window`, in the orders of
/// `trucks::available` and `drivers::available`, in one statement (one round trip, not two).
///
/// Both are locked (`FOR UPDATE`), and rows another transaction has locked to book are passed
/// over (`SKIP LOCKED`), so concurrent bookings pick different trucks and drivers instead of
/// queueing on the same one. Either is `None` when none is free and unlocked; the driver is
/// locked even when no truck is (the caller's transaction ends then).
pub async fn pick(
    tx: &mut Tx,
    window: &Window,
    min_payload_kg: Option<Decimal>,
    min_volume_m3: Option<Decimal>,
    class: Option<LicenceClass>,
) -> Result<(Option<Uuid>, Option<Uuid>), Error> {
    let bounds = Params {
        range: 1,
        start: 2,
        end: 3,
    };
    let sql = format!(
        "SELECT (SELECT t.id FROM fleet.trucks t {} LIMIT 1 FOR UPDATE OF t SKIP LOCKED), \
                (SELECT d.id FROM fleet.drivers d {} LIMIT 1 FOR UPDATE OF d SKIP LOCKED)",
        trucks::free(bounds, 4, 5),
        drivers::free(bounds, 6),
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(range(window))
        .bind(window.start)
        .bind(window.end)
        .bind(min_payload_kg)
        .bind(min_volume_m3)
        .bind(class.map(LicenceClass::as_str))
        .fetch_one(&mut **tx)
        .await?)
}

/// Books `truck_id` and `driver_id` for `shipment_id` over `window`.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    truck_id: Uuid,
    driver_id: Uuid,
    shipment_id: Uuid,
    window: &Window,
) -> Result<AssignmentRow, Error> {
    // RETURNING, not a read after: one round trip less per booking.
    let sql = format!(
        "INSERT INTO fleet.assignments (tenant_id, id, truck_id, driver_id, shipment_id, time_window) \
         VALUES (fleet.current_tenant_id(), $1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(truck_id)
        .bind(driver_id)
        .bind(shipment_id)
        .bind(range(window))
        .fetch_one(&mut **tx)
        .await
        .map_err(write_error)
}

/// One assignment.
pub async fn get(tx: &mut Tx, id: Uuid) -> Result<Option<AssignmentRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM fleet.assignments WHERE id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Cancels an active assignment at `expected_version`: NOT_FOUND, ABORTED on a stale etag,
/// FAILED_PRECONDITION `NOT_ACTIVE` when it is already cancelled.
pub async fn cancel(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    reason: &str,
) -> Result<AssignmentRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE fleet.assignments SET status = 'cancelled', cancelled_at = now(), \
             cancel_reason = $3, version = version + 1 \
         WHERE id = $1 AND status = 'active' AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(reason)
    .fetch_optional(&mut **tx)
    .await?;
    let now = get(tx, id).await?;
    match (updated, now) {
        (Some(_), Some(row)) => Ok(row),
        (_, None) => Err(Error::NotFound(Resource::new(KIND, id))),
        (None, Some(row)) if row.status == "active" => Err(Error::Aborted(
            logistics_platform::error::Conflict::StaleEtag,
        )),
        (None, Some(_)) => Err(Error::precondition(
            "NOT_ACTIVE",
            "assignment",
            "the assignment is already cancelled",
        )),
    }
}

/// Where the previous page ended: window start and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor(pub OffsetDateTime, pub Uuid);

/// A ListAssignments query; every given filter must hold.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// Of this truck.
    pub truck_id: Option<Uuid>,
    /// Of this driver.
    pub driver_id: Option<Uuid>,
    /// For this shipment.
    pub shipment_id: Option<Uuid>,
    /// Overlapping this window.
    pub window: Option<Window>,
    /// Include cancelled ones.
    pub show_cancelled: bool,
    /// Continue after.
    pub after: Option<Cursor>,
    /// Rows to fetch.
    pub limit: i64,
}

/// One page of assignments by window start.
pub async fn list(tx: &mut Tx, query: &ListQuery) -> Result<Vec<AssignmentRow>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM fleet.assignments WHERE ($1::uuid IS NULL OR truck_id = $1) AND ($2::uuid IS NULL OR driver_id = $2) \
           AND ($3::uuid IS NULL OR shipment_id = $3) AND ($4::tstzrange IS NULL OR time_window && $4) \
           AND ($5 OR status = 'active') \
           AND ($6::timestamptz IS NULL OR (lower(time_window), id) > ($6, $7)) \
         ORDER BY lower(time_window), id LIMIT $8"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query.truck_id)
        .bind(query.driver_id)
        .bind(query.shipment_id)
        .bind(query.window.as_ref().map(range))
        .bind(query.show_cancelled)
        .bind(query.after.as_ref().map(|c| c.0))
        .bind(query.after.as_ref().map(|c| c.1))
        .bind(query.limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &AssignmentRow) -> Option<Cursor> {
    super::window(&row.time_window).map(|w| Cursor(w.start, row.id))
}
