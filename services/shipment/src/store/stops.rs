//! Stops on a shipment's route. Their route fields change only while the shipment is an
//! editable draft; arrival and departure are written by tracking events.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{Resource, UniqueConstraint};
use logistics_platform::window::Window;
use sqlx::postgres::types::PgRange;
use time::OffsetDateTime;
use uuid::Uuid;

use super::db_error;
use crate::domain::shipment::{AddressSnapshot, StopKind};

/// Resource kind in error details.
pub const KIND: &str = "logistics.shipment.v1.Stop";

const UNIQUE: &[UniqueConstraint] = &[UniqueConstraint {
    constraint: "stops_sequence_key",
    kind: KIND,
    field: "sequence",
}];

/// A stop as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StopRow {
    /// Id.
    pub id: Uuid,
    /// Shipment.
    pub shipment_id: Uuid,
    /// Route order.
    pub sequence: i32,
    /// Kind name.
    pub kind: String,
    /// Address.
    pub line1: String,
    /// Address.
    pub line2: String,
    /// Address.
    pub city: String,
    /// Address.
    pub region: String,
    /// Address.
    pub postal_code: String,
    /// Address.
    pub country_code: String,
    /// Address.
    pub latitude: Option<f64>,
    /// Address.
    pub longitude: Option<f64>,
    /// Expected window.
    pub time_window: PgRange<OffsetDateTime>,
    /// Arrived.
    pub arrived_at: Option<OffsetDateTime>,
    /// Departed.
    pub departed_at: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

const SELECT: &str = "SELECT id, shipment_id, sequence, kind, line1, line2, city, region, postal_code, \
    country_code, latitude, longitude, time_window, arrived_at, departed_at, created_at, updated_at, \
    version, deleted_at FROM shipment.stops";

/// Every caller field of a stop.
#[derive(Debug, Clone)]
pub struct StopFields {
    /// Route order, 1 to 1000.
    pub sequence: i32,
    /// Pickup or drop-off.
    pub kind: StopKind,
    /// Where.
    pub address: AddressSnapshot,
    /// When.
    pub window: Window,
}

/// Inserts a stop of `shipment_id`.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    shipment_id: Uuid,
    f: &StopFields,
) -> Result<StopRow, Error> {
    sqlx::query(
        "INSERT INTO shipment.stops (tenant_id, id, shipment_id, sequence, kind, line1, line2, city, \
             region, postal_code, country_code, latitude, longitude, time_window) \
         VALUES (shipment.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(shipment_id)
    .bind(f.sequence)
    .bind(f.kind.as_str())
    .bind(f.address.line1.as_str())
    .bind(f.address.line2.as_str())
    .bind(f.address.city.as_str())
    .bind(f.address.region.as_str())
    .bind(f.address.postal_code.as_str())
    .bind(f.address.country.as_str())
    .bind(f.address.location.map(|l| l.latitude))
    .bind(f.address.location.map(|l| l.longitude))
    .bind(f.window.range())
    .execute(&mut **tx)
    .await
    .map_err(|e| db_error(e, UNIQUE))?;
    reread(tx, id).await
}

/// One stop; deleted ones only when `include_deleted`.
pub async fn get(tx: &mut Tx, id: Uuid, include_deleted: bool) -> Result<Option<StopRow>, Error> {
    let sql = format!("{SELECT} WHERE id = $1 AND ($2 OR deleted_at IS NULL)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Writes every caller field of a live stop at `expected_version`.
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    f: &StopFields,
) -> Result<StopRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE shipment.stops SET sequence = $3, kind = $4, line1 = $5, line2 = $6, city = $7, \
             region = $8, postal_code = $9, country_code = $10, latitude = $11, longitude = $12, \
             time_window = $13, version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(f.sequence)
    .bind(f.kind.as_str())
    .bind(f.address.line1.as_str())
    .bind(f.address.line2.as_str())
    .bind(f.address.city.as_str())
    .bind(f.address.region.as_str())
    .bind(f.address.postal_code.as_str())
    .bind(f.address.country.as_str())
    .bind(f.address.location.map(|l| l.latitude))
    .bind(f.address.location.map(|l| l.longitude))
    .bind(f.window.range())
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| db_error(e, UNIQUE))?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores a stop at `expected_version`.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<StopRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE shipment.stops SET deleted_at = CASE WHEN $3 THEN now() END, version = version + 1 \
         WHERE id = $1 AND (deleted_at IS NULL) = $3 AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| db_error(e, UNIQUE))?;
    after_write(tx, id, updated, deleted).await
}

/// Stamps the arrival (`arrived` true) or departure at a live stop of `shipment_id`, once: a
/// later event does not move an earlier stamp. NOT_FOUND when the stop is not the shipment's.
pub async fn stamp(
    tx: &mut Tx,
    shipment_id: Uuid,
    id: Uuid,
    arrived: bool,
    at: OffsetDateTime,
) -> Result<(), Error> {
    let column = if arrived { "arrived_at" } else { "departed_at" };
    let sql = format!(
        "UPDATE shipment.stops SET {column} = coalesce({column}, $3), version = version + 1 \
         WHERE id = $1 AND shipment_id = $2 AND deleted_at IS NULL RETURNING id"
    );
    let updated: Option<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(shipment_id)
        .bind(at)
        .fetch_optional(&mut **tx)
        .await
        .map_err(|e| match Error::from_db(e) {
            Error::Internal(_) => Error::precondition(
                "DEPARTURE_BEFORE_ARRIVAL",
                "tracking_event.event_time",
                "a stop's departure cannot be earlier than its arrival",
            ),
            other => other,
        })?;
    updated
        .map(|_| ())
        .ok_or_else(|| Error::NotFound(Resource::new(KIND, id)))
}

/// Whether `id` is a live stop of `shipment_id`.
pub async fn is_live_stop_of(tx: &mut Tx, shipment_id: Uuid, id: Uuid) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM shipment.stops \
         WHERE id = $1 AND shipment_id = $2 AND deleted_at IS NULL)",
    )
    .bind(id)
    .bind(shipment_id)
    .fetch_one(&mut **tx)
    .await?)
}

async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<StopRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

async fn reread(tx: &mut Tx, id: Uuid) -> Result<StopRow, Error> {
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("written stop vanished").into())
}

/// Where the previous page ended: sequence and id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StopCursor(pub i32, pub Uuid);

/// One page of a shipment's stops by sequence; `kind` narrows.
pub async fn list(
    tx: &mut Tx,
    shipment_id: Uuid,
    kind: Option<(StopKind, bool)>,
    descending: bool,
    show_deleted: bool,
    after: Option<&StopCursor>,
    limit: i64,
) -> Result<Vec<StopRow>, Error> {
    let (cmp, dir) = if descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let sql = format!(
        "{SELECT} WHERE shipment_id = $1 AND ($2 OR deleted_at IS NULL) \
           AND ($3::text IS NULL OR (kind = $3) <> $4) \
           AND ($5::int IS NULL OR (sequence, id) {cmp} ($5, $6)) \
         ORDER BY sequence {dir}, id {dir} LIMIT $7"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .bind(show_deleted)
        .bind(kind.map(|(k, _)| k.as_str()))
        .bind(kind.is_some_and(|(_, negated)| negated))
        .bind(after.map(|c| c.0))
        .bind(after.map(|c| c.1))
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &StopRow) -> StopCursor {
    StopCursor(row.sequence, row.id)
}
