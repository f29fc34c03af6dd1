//! Trucks.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{Resource, UniqueConstraint};
use rust_decimal::Decimal;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use super::range;
use crate::domain::truck::{TruckFields, TruckStatus};
use crate::domain::window::Window;

/// Resource kind in error details.
pub const KIND: &str = "logistics.fleet.v1.Truck";

/// Unique values a caller chooses, and the field each guards.
const UNIQUE: &[UniqueConstraint] = &[
    UniqueConstraint {
        constraint: "trucks_plate_key",
        kind: KIND,
        field: "plate",
    },
    UniqueConstraint {
        constraint: "trucks_vin_key",
        kind: KIND,
        field: "vin",
    },
];

/// A write the database refused: a taken unique value, or a change that would invalidate an
/// active assignment (trigger), as the precondition it stands for.
fn write_error(err: sqlx::Error) -> Error {
    let constraint = err
        .as_database_error()
        .filter(|d| d.code().as_deref() == Some("23514"))
        .and_then(|d| d.constraint().map(str::to_owned));
    match constraint.as_deref() {
        Some("trucks_keep_assignments") => Error::precondition(
            "TRUCK_HAS_ASSIGNMENTS",
            "truck",
            "the truck has active assignments that have not ended; cancel them first",
        ),
        _ => Error::from_db_with(err, UNIQUE),
    }
}

/// A truck as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TruckRow {
    /// Id.
    pub id: Uuid,
    /// Plate as stored.
    pub plate: String,
    /// Plate without separators (the uniqueness and order key).
    pub plate_key: String,
    /// VIN.
    pub vin: String,
    /// Make.
    pub make: String,
    /// Model.
    pub model: String,
    /// Model year.
    pub model_year: i16,
    /// Payload capacity, kg.
    pub payload_capacity_kg: Decimal,
    /// Volume capacity, m³.
    pub volume_capacity_m3: Decimal,
    /// `active`, `in_maintenance` or `retired`.
    pub status: String,
    /// Odometer, km.
    pub odometer_km: i64,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

const SELECT: &str = "SELECT id, plate, plate_key, vin, make, model, model_year, payload_capacity_kg, \
    volume_capacity_m3, status, odometer_km, created_at, updated_at, version, deleted_at FROM fleet.trucks";

/// Inserts a truck.
pub async fn insert(tx: &mut Tx, id: Uuid, fields: &TruckFields) -> Result<TruckRow, Error> {
    sqlx::query(
        "INSERT INTO fleet.trucks (tenant_id, id, plate, vin, make, model, model_year, \
             payload_capacity_kg, volume_capacity_m3, status, odometer_km) \
         VALUES (fleet.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(fields.plate.as_str())
    .bind(fields.vin.as_str())
    .bind(fields.make.as_str())
    .bind(fields.model.as_str())
    .bind(fields.year)
    .bind(fields.payload_kg.value())
    .bind(fields.volume_m3.value())
    .bind(fields.status.as_str())
    .bind(fields.odometer_km)
    .execute(&mut **tx)
    .await
    .map_err(write_error)?;
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted truck not visible").into())
}

/// One truck; deleted ones only when `include_deleted`.
pub async fn get(tx: &mut Tx, id: Uuid, include_deleted: bool) -> Result<Option<TruckRow>, Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND ($2 OR deleted_at IS NULL)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// A live truck, or NOT_FOUND.
pub async fn get_live(tx: &mut Tx, id: Uuid) -> Result<TruckRow, Error> {
    get(tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(KIND, id)))
}

/// Writes every field of a live truck at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    fields: &TruckFields,
) -> Result<TruckRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE fleet.trucks SET plate = $3, vin = $4, make = $5, model = $6, model_year = $7, \
             payload_capacity_kg = $8, volume_capacity_m3 = $9, status = $10, odometer_km = $11, \
             version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(fields.plate.as_str())
    .bind(fields.vin.as_str())
    .bind(fields.make.as_str())
    .bind(fields.model.as_str())
    .bind(fields.year)
    .bind(fields.payload_kg.value())
    .bind(fields.volume_m3.value())
    .bind(fields.status.as_str())
    .bind(fields.odometer_km)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores a truck at `expected_version`. Restoring is
/// ALREADY_EXISTS when a live truck took its plate or VIN meanwhile.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<TruckRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE fleet.trucks SET deleted_at = CASE WHEN $3 THEN now() END, version = version + 1 \
         WHERE id = $1 AND (deleted_at IS NULL) = $3 AND ($2::int IS NULL OR version = $2) RETURNING id",
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
) -> Result<TruckRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// Whether an active assignment of the truck overlaps `window`.
pub async fn is_booked(tx: &mut Tx, id: Uuid, window: &Window) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM fleet.assignments \
             WHERE truck_id = $1 AND status = 'active' AND time_window && $2)",
    )
    .bind(id)
    .bind(range(window))
    .fetch_one(&mut **tx)
    .await?)
}

/// Whether live maintenance of the truck is scheduled during `window`.
pub async fn in_maintenance(tx: &mut Tx, id: Uuid, window: &Window) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM fleet.maintenance_records \
             WHERE truck_id = $1 AND deleted_at IS NULL AND scheduled_window && $2)",
    )
    .bind(id)
    .bind(range(window))
    .fetch_one(&mut **tx)
    .await?)
}

/// Orders ListTrucks offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Plate without separators, then id.
    Plate,
    /// Creation time, then id.
    CreateTime,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cursor {
    /// Last plate key and id.
    Plate(String, Uuid),
    /// Last creation time and id.
    Created(OffsetDateTime, Uuid),
}

/// A ListTrucks condition: `(value, negated)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Has (or not) the status.
    Status(TruckStatus, bool),
    /// Plate key starts (or not) with.
    PlatePrefix(String, bool),
    /// Plate key is (or is not).
    PlateIs(String, bool),
}

/// A ListTrucks query.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// Order.
    pub order: Order,
    /// Descending.
    pub descending: bool,
    /// Include soft-deleted.
    pub show_deleted: bool,
    /// Continue after.
    pub after: Option<Cursor>,
    /// Rows to fetch.
    pub limit: i64,
}

/// One page of trucks in keyset order.
pub async fn list(tx: &mut Tx, query: &ListQuery) -> Result<Vec<TruckRow>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    sql.push(" WHERE TRUE");
    if !query.show_deleted {
        sql.push(" AND deleted_at IS NULL");
    }
    for condition in &query.conditions {
        match condition {
            Condition::Status(status, negated) => {
                sql.push(if *negated {
                    " AND status <> "
                } else {
                    " AND status = "
                });
                sql.push_bind(status.as_str());
            }
            Condition::PlateIs(key, negated) => {
                sql.push(if *negated {
                    " AND plate_key <> "
                } else {
                    " AND plate_key = "
                });
                sql.push_bind(key.clone());
            }
            // starts_with, not LIKE: it is leakproof, so under row-level security it can still
            // become an index condition (trucks_by_plate_prefix); LIKE can only filter.
            Condition::PlatePrefix(prefix, negated) => {
                sql.push(if *negated {
                    " AND NOT starts_with(plate_key, "
                } else {
                    " AND starts_with(plate_key, "
                });
                sql.push_bind(prefix.clone());
                sql.push(")");
            }
        }
    }
    let (cmp, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    match (&query.after, query.order) {
        (Some(Cursor::Plate(key, id)), Order::Plate) => {
            sql.push(format!(" AND (plate_key, id) {cmp} ("));
            sql.push_bind(key.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (Some(Cursor::Created(at, id)), Order::CreateTime) => {
            sql.push(format!(" AND (created_at, id) {cmp} ("));
            sql.push_bind(*at).push(", ").push_bind(*id).push(")");
        }
        (None, _) => {}
        (Some(_), _) => return Err(Error::invalid("page_token", "does not match order_by")),
    }
    match query.order {
        Order::Plate => sql.push(format!(" ORDER BY plate_key {dir}, id {dir}")),
        Order::CreateTime => sql.push(format!(" ORDER BY created_at {dir}, id {dir}")),
    };
    sql.push(" LIMIT ").push_bind(query.limit);
    Ok(sql.build_query_as().fetch_all(&mut **tx).await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &TruckRow, order: Order) -> Cursor {
    match order {
        Order::Plate => Cursor::Plate(row.plate_key.clone(), row.id),
        Order::CreateTime => Cursor::Created(row.created_at, row.id),
    }
}

/// Active, live trucks that carry at least `min_payload_kg` and `min_volume_m3` and are free
/// for the whole `window`: no active assignment and no live maintenance overlaps it. Smallest
/// fitting trucks first, so big ones stay free for big loads.
///
/// The busy trucks are found once (`NOT IN`, hashed subplans over [`super::busy`]), not once
/// per truck: see `drivers::available`.
pub async fn available(
    tx: &mut Tx,
    window: &Window,
    min_payload_kg: Option<Decimal>,
    min_volume_m3: Option<Decimal>,
    limit: i64,
) -> Result<Vec<TruckRow>, Error> {
    let sql = format!(
        "{SELECT} t {} LIMIT $4",
        free(
            super::Params {
                range: 1,
                start: 5,
                end: 6,
            },
            2,
            3
        ),
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(range(window))
        .bind(min_payload_kg)
        .bind(min_volume_m3)
        .bind(limit)
        .bind(window.start)
        .bind(window.end)
        .fetch_all(&mut **tx)
        .await?)
}

/// The WHERE and ORDER BY of [`available`] for the table aliased `t`, with the window, the
/// payload and the volume at the given parameter numbers: shared with
/// [`super::assignments::pick`].
pub(super) fn free(window: super::Params, payload: u8, volume: u8) -> String {
    let super::Params { range, start, end } = window;
    format!(
        "WHERE t.deleted_at IS NULL AND t.status = 'active' \
           AND (${payload}::numeric IS NULL OR t.payload_capacity_kg >= ${payload}) \
           AND (${volume}::numeric IS NULL OR t.volume_capacity_m3 >= ${volume}) \
           AND t.id NOT IN ({}) \
           AND t.id NOT IN (SELECT m.truck_id FROM fleet.maintenance_records m \
                 WHERE m.deleted_at IS NULL AND m.scheduled_window && ${range}) \
         ORDER BY t.payload_capacity_kg, t.volume_capacity_m3, t.id",
        super::busy("truck_id", start, end)
    )
}
