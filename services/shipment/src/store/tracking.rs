//! Tracking events (append-only, partitioned by month) with their one-per-client-id claims,
//! and proofs of delivery.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::fields::LatLng;
use time::OffsetDateTime;
use uuid::Uuid;

use super::Cursor;
use crate::domain::shipment::TrackingKind;

/// A tracking event as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    /// Id.
    pub id: Uuid,
    /// Shipment.
    pub shipment_id: Uuid,
    /// The device's id of the event.
    pub client_event_id: Uuid,
    /// Kind name.
    pub kind: String,
    /// When it happened (device clock).
    pub event_time: OffsetDateTime,
    /// Where.
    pub latitude: Option<f64>,
    /// Where.
    pub longitude: Option<f64>,
    /// At which stop.
    pub stop_id: Option<Uuid>,
    /// Note.
    pub note: String,
    /// Recorded (server clock; the partition key).
    pub recorded_at: OffsetDateTime,
}

const SELECT: &str = "SELECT id, shipment_id, client_event_id, kind, event_time, latitude, longitude, \
    stop_id, note, recorded_at FROM shipment.tracking_events";

/// A new tracking event.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// Shipment.
    pub shipment_id: Uuid,
    /// The device's id of the event.
    pub client_event_id: Uuid,
    /// Kind.
    pub kind: TrackingKind,
    /// When it happened.
    pub event_time: OffsetDateTime,
    /// Where.
    pub location: Option<LatLng>,
    /// At which stop.
    pub stop_id: Option<Uuid>,
    /// Note.
    pub note: String,
}

/// The event recorded earlier under `client_event_id`, if any (waiting for a concurrent
/// recorder of the same id to finish first).
pub async fn by_client_id(tx: &mut Tx, client_event_id: Uuid) -> Result<Option<EventRow>, Error> {
    let claim: Option<(Uuid, OffsetDateTime)> = sqlx::query_as(
        "SELECT event_id, recorded_at FROM shipment.tracking_event_ids WHERE client_event_id = $1",
    )
    .bind(client_event_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some((event_id, recorded_at)) = claim else {
        return Ok(None);
    };
    let sql = format!("{SELECT} WHERE recorded_at = $1 AND id = $2");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(recorded_at)
        .bind(event_id)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Claims the client id and appends the event. `false` when the id was claimed by a
/// concurrent call first (nothing written; read it with [`by_client_id`]).
pub async fn insert(tx: &mut Tx, id: Uuid, event: &NewEvent) -> Result<Option<EventRow>, Error> {
    let claimed = sqlx::query(
        "INSERT INTO shipment.tracking_event_ids (tenant_id, client_event_id, shipment_id, event_id, \
             recorded_at) \
         VALUES (shipment.current_tenant_id(), $1, $2, $3, now()) ON CONFLICT DO NOTHING",
    )
    .bind(event.client_event_id)
    .bind(event.shipment_id)
    .bind(id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        return Ok(None);
    }
    let sql = format!(
        "WITH e AS (INSERT INTO shipment.tracking_events (tenant_id, id, shipment_id, client_event_id, \
             kind, event_time, latitude, longitude, stop_id, note, recorded_at) \
         VALUES (shipment.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, now()) RETURNING *) {}",
        SELECT.replace("FROM shipment.tracking_events", "FROM e")
    );
    let row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(event.shipment_id)
        .bind(event.client_event_id)
        .bind(event.kind.as_str())
        .bind(event.event_time)
        .bind(event.location.map(|l| l.latitude))
        .bind(event.location.map(|l| l.longitude))
        .bind(event.stop_id)
        .bind(&event.note)
        .fetch_one(&mut **tx)
        .await?;
    Ok(Some(row))
}

/// Whether the shipment has any event of `kind`.
pub async fn has_kind(tx: &mut Tx, shipment_id: Uuid, kind: TrackingKind) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM shipment.tracking_events WHERE shipment_id = $1 AND kind = $2)",
    )
    .bind(shipment_id)
    .bind(kind.as_str())
    .fetch_one(&mut **tx)
    .await?)
}

/// One page of a shipment's events in recording order.
pub async fn list(
    tx: &mut Tx,
    shipment_id: Uuid,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<EventRow>, Error> {
    let (after_at, after_id) = super::cursor_parts(after)?;
    let sql = format!(
        "{SELECT} WHERE shipment_id = $1 \
           AND ($2::timestamptz IS NULL OR (recorded_at, id) > ($2, $3)) \
         ORDER BY recorded_at, id LIMIT $4"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .bind(after_at)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &EventRow) -> Cursor {
    Cursor(row.recorded_at.unix_timestamp_nanos(), row.id)
}

/// A proof of delivery as stored (name and content sealed).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProofRow {
    /// Tenant (bound into the seals).
    pub tenant_id: Uuid,
    /// Shipment.
    pub shipment_id: Uuid,
    /// Sealed recipient name.
    pub recipient_name: Vec<u8>,
    /// Handed over at.
    pub delivered_at: OffsetDateTime,
    /// Where.
    pub latitude: Option<f64>,
    /// Where.
    pub longitude: Option<f64>,
    /// Sealed signature or photo.
    pub content: Vec<u8>,
    /// Media type.
    pub content_type: String,
    /// SHA-256 of the plaintext content.
    pub content_sha256: Vec<u8>,
    /// Recorded.
    pub created_at: OffsetDateTime,
}

const SELECT_PROOF: &str = "SELECT tenant_id, shipment_id, recipient_name, delivered_at, latitude, \
    longitude, content, content_type, content_sha256, created_at FROM shipment.proofs_of_delivery";

/// Stores a proof of delivery (already sealed).
pub async fn insert_proof(tx: &mut Tx, proof: &ProofRow) -> Result<ProofRow, Error> {
    let sql = format!(
        "WITH p AS (INSERT INTO shipment.proofs_of_delivery (tenant_id, shipment_id, recipient_name, \
             delivered_at, latitude, longitude, content, content_type, content_sha256) \
         VALUES (shipment.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8) RETURNING *) {}",
        SELECT_PROOF.replace("FROM shipment.proofs_of_delivery", "FROM p")
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(proof.shipment_id)
        .bind(&proof.recipient_name)
        .bind(proof.delivered_at)
        .bind(proof.latitude)
        .bind(proof.longitude)
        .bind(&proof.content)
        .bind(&proof.content_type)
        .bind(&proof.content_sha256)
        .fetch_one(&mut **tx)
        .await?)
}

/// A shipment's proof of delivery.
pub async fn proof(tx: &mut Tx, shipment_id: Uuid) -> Result<Option<ProofRow>, Error> {
    let sql = format!("{SELECT_PROOF} WHERE shipment_id = $1");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(shipment_id)
        .fetch_optional(&mut **tx)
        .await?)
}
