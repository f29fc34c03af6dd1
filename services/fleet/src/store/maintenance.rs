//! Maintenance records of a truck.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::Resource;
use sqlx::postgres::types::PgRange;
use time::OffsetDateTime;
use uuid::Uuid;

use super::range;
use crate::domain::maintenance::MaintenanceKind;
use crate::domain::window::Window;

/// Resource kind in error details.
pub const KIND: &str = "logistics.fleet.v1.MaintenanceRecord";

/// A maintenance record as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MaintenanceRow {
    /// Id.
    pub id: Uuid,
    /// The truck.
    pub truck_id: Uuid,
    /// Kind name.
    pub kind: String,
    /// When the truck is in the workshop.
    pub scheduled_window: PgRange<OffsetDateTime>,
    /// When the work was finished.
    pub performed_at: Option<OffsetDateTime>,
    /// Odometer at the work, km.
    pub odometer_km: i64,
    /// Cost in minor units.
    pub cost_minor: Option<i64>,
    /// Cost currency.
    pub cost_currency_code: Option<String>,
    /// Notes.
    pub notes: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

/// A record's values, validated.
#[derive(Debug, Clone)]
pub struct MaintenanceValues {
    /// Kind.
    pub kind: MaintenanceKind,
    /// When the truck is in the workshop.
    pub scheduled: Window,
    /// When the work was finished.
    pub performed_at: Option<OffsetDateTime>,
    /// Odometer at the work, km.
    pub odometer_km: i64,
    /// Cost: minor units and currency.
    pub cost: Option<(i64, String)>,
    /// Notes.
    pub notes: String,
}

const SELECT: &str = "SELECT id, truck_id, kind, scheduled_window, performed_at, odometer_km, \
    cost_minor, cost_currency_code, notes, created_at, updated_at, version, deleted_at \
    FROM fleet.maintenance_records";

/// Maintenance over an active assignment is refused by the database (trigger); the service
/// checks first, so this is the loser of a race with a booking.
fn write_error(err: sqlx::Error) -> Error {
    let booked = err
        .as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "maintenance_records_truck_free");
    if booked {
        truck_booked()
    } else {
        Error::from_db(err)
    }
}

/// FAILED_PRECONDITION: the truck is booked during the window.
pub fn truck_booked() -> Error {
    Error::precondition(
        "TRUCK_BOOKED",
        "truck",
        "the truck has an active assignment during the scheduled window",
    )
}

/// Inserts a record of `truck_id`.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    truck_id: Uuid,
    values: &MaintenanceValues,
) -> Result<MaintenanceRow, Error> {
    sqlx::query(
        "INSERT INTO fleet.maintenance_records (tenant_id, id, truck_id, kind, scheduled_window, \
             performed_at, odometer_km, cost_minor, cost_currency_code, notes) \
         VALUES (fleet.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(truck_id)
    .bind(values.kind.as_str())
    .bind(range(&values.scheduled))
    .bind(values.performed_at)
    .bind(values.odometer_km)
    .bind(values.cost.as_ref().map(|c| c.0))
    .bind(values.cost.as_ref().map(|c| c.1.as_str()))
    .bind(&values.notes)
    .execute(&mut **tx)
    .await
    .map_err(write_error)?;
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted record not visible").into())
}

/// One record; deleted ones only when `include_deleted`. Records of a deleted truck are hidden
/// with it.
pub async fn get(
    tx: &mut Tx,
    id: Uuid,
    include_deleted: bool,
) -> Result<Option<MaintenanceRow>, Error> {
    let sql = format!(
        "{SELECT} m WHERE id = $1 AND ($2 OR deleted_at IS NULL) AND EXISTS (SELECT 1 FROM \
         fleet.trucks t WHERE t.tenant_id = m.tenant_id AND t.id = m.truck_id AND t.deleted_at IS NULL)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Writes every value of a live record at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    values: &MaintenanceValues,
) -> Result<MaintenanceRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE fleet.maintenance_records m SET kind = $3, scheduled_window = $4, performed_at = $5, \
             odometer_km = $6, cost_minor = $7, cost_currency_code = $8, notes = $9, \
             version = m.version + 1 \
         WHERE m.id = $1 AND m.deleted_at IS NULL AND ($2::int IS NULL OR m.version = $2) \
           AND EXISTS (SELECT 1 FROM fleet.trucks t WHERE t.tenant_id = m.tenant_id \
                       AND t.id = m.truck_id AND t.deleted_at IS NULL) \
         RETURNING m.id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(values.kind.as_str())
    .bind(range(&values.scheduled))
    .bind(values.performed_at)
    .bind(values.odometer_km)
    .bind(values.cost.as_ref().map(|c| c.0))
    .bind(values.cost.as_ref().map(|c| c.1.as_str()))
    .bind(&values.notes)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores a record at `expected_version`. Restoring is
/// FAILED_PRECONDITION when the truck was booked for the window meanwhile.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<MaintenanceRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE fleet.maintenance_records m SET deleted_at = CASE WHEN $3 THEN now() END, \
             version = m.version + 1 \
         WHERE m.id = $1 AND (m.deleted_at IS NULL) = $3 AND ($2::int IS NULL OR m.version = $2) \
           AND EXISTS (SELECT 1 FROM fleet.trucks t WHERE t.tenant_id = m.tenant_id \
                       AND t.id = m.truck_id AND t.deleted_at IS NULL) \
         RETURNING m.id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, deleted).await
}

async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<MaintenanceRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// Where the previous page ended: window start and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor(pub OffsetDateTime, pub Uuid);

/// A ListMaintenanceRecords query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// The truck.
    pub truck_id: Uuid,
    /// Only this kind (negated: all but).
    pub kind: Option<(MaintenanceKind, bool)>,
    /// Only performed (true) or planned (false) ones.
    pub performed: Option<bool>,
    /// Latest first.
    pub descending: bool,
    /// Include soft-deleted.
    pub show_deleted: bool,
    /// Continue after.
    pub after: Option<Cursor>,
    /// Rows to fetch.
    pub limit: i64,
}

/// One page of a truck's records by scheduled start.
pub async fn list(tx: &mut Tx, query: &ListQuery) -> Result<Vec<MaintenanceRow>, Error> {
    let (cmp, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let sql = format!(
        "{SELECT} WHERE truck_id = $1 AND ($2 OR deleted_at IS NULL) \
           AND ($3::text IS NULL OR (kind = $3) <> $4) \
           AND ($5::bool IS NULL OR (performed_at IS NOT NULL) = $5) \
           AND ($6::timestamptz IS NULL OR (lower(scheduled_window), id) {cmp} ($6, $7)) \
         ORDER BY lower(scheduled_window) {dir}, id {dir} LIMIT $8"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query.truck_id)
        .bind(query.show_deleted)
        .bind(query.kind.map(|k| k.0.as_str()))
        .bind(query.kind.is_some_and(|k| k.1))
        .bind(query.performed)
        .bind(query.after.as_ref().map(|c| c.0))
        .bind(query.after.as_ref().map(|c| c.1))
        .bind(query.limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &MaintenanceRow) -> Option<Cursor> {
    super::window(&row.scheduled_window).map(|w| Cursor(w.start, row.id))
}
