//! The outbox: shipment events written in the transaction of the change they report, numbered
//! per tenant without gaps and in commit order (by `shipment.append_event`).

use logistics_platform::Error;
use logistics_platform::context::Tx;
use time::OffsetDateTime;
use uuid::Uuid;

use super::shipments::ShipmentRow;
use crate::domain::shipment::EventType;

/// An outbox row as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// Sequence number in the tenant's outbox.
    pub sequence: i64,
    /// The encoded `ShipmentEvent` (without sequence and resume token).
    pub payload: Vec<u8>,
    /// Committed at.
    pub created_at: OffsetDateTime,
}

/// Appends an event about `shipment` (as it is now) with its encoded payload.
pub async fn append(
    tx: &mut Tx,
    shipment: &ShipmentRow,
    event_type: EventType,
    payload: &[u8],
) -> Result<i64, Error> {
    Ok(
        sqlx::query_scalar("SELECT shipment.append_event($1, $2, $3, $4, $5, $6)")
            .bind(shipment.id)
            .bind(event_type.as_str())
            .bind(shipment.customer_id)
            .bind(shipment.supplier_id)
            .bind(shipment.driver_id)
            .bind(payload)
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// Up to `limit` visible events after `after`, oldest first; only `shipment_id`'s when given.
pub async fn after(
    tx: &mut Tx,
    after: i64,
    shipment_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OutboxRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT sequence, payload, created_at FROM shipment.outbox \
         WHERE sequence > $1 AND ($2::uuid IS NULL OR shipment_id = $2) \
         ORDER BY sequence LIMIT $3",
    )
    .bind(after)
    .bind(shipment_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}
