//! The outbox: shipment events written in the transaction of the change they report
//! (`shipment.append_event`), numbered per tenant without gaps and in commit order when the
//! publisher publishes them (`shipment.publish_events`, migration 0005).

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

/// Appends an unnumbered event about `shipment` (as it is now) with its encoded payload.
pub async fn append(
    tx: &mut Tx,
    shipment: &ShipmentRow,
    event_type: EventType,
    payload: &[u8],
) -> Result<(), Error> {
    sqlx::query("SELECT shipment.append_event($1, $2, $3, $4, $5, $6)")
        .bind(shipment.id)
        .bind(event_type.as_str())
        .bind(shipment.customer_id)
        .bind(shipment.supplier_id)
        .bind(shipment.driver_id)
        .bind(payload)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The tenants with committed events still to number (the service's system context).
pub async fn unpublished_tenants(tx: &mut Tx) -> Result<Vec<Uuid>, Error> {
    Ok(
        sqlx::query_scalar("SELECT DISTINCT tenant_id FROM shipment.outbox WHERE sequence IS NULL")
            .fetch_all(&mut **tx)
            .await?,
    )
}

/// Numbers up to `limit` committed events of the context's tenant; how many it numbered.
pub async fn publish(tx: &mut Tx, limit: i32) -> Result<i32, Error> {
    Ok(sqlx::query_scalar("SELECT shipment.publish_events($1)")
        .bind(limit)
        .fetch_one(&mut **tx)
        .await?)
}

/// Up to `limit` published events after `after`, oldest first; only `shipment_id`'s when given.
/// The tenant is named: the publisher's policy is ORed with tenant isolation.
pub async fn after(
    tx: &mut Tx,
    after: i64,
    shipment_id: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OutboxRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT sequence, payload, created_at FROM shipment.outbox \
         WHERE tenant_id = shipment.current_tenant_id() AND sequence > $1 \
           AND ($2::uuid IS NULL OR shipment_id = $2) \
         ORDER BY sequence LIMIT $3",
    )
    .bind(after)
    .bind(shipment_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}
