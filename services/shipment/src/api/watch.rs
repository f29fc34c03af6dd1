//! WatchShipmentEvents: the outbox replayed from a resume token, then followed as it grows.
//!
//! Outbox numbers are gap-free and commit in order per tenant (the publisher gives them, see
//! `crate::publisher`), so "every event after n" read at any moment never skips one numbered
//! later: a watcher resuming from its last token gets each event once. Published batches are
//! announced by NOTIFY (one listener per replica fans out to its watchers); a watcher also
//! looks every second, so a lost notification only delays.

use std::sync::Arc;
use std::time::Duration;

use logistics_platform::Error;
use logistics_platform::aip;
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::wire::timestamp;
use logistics_proto::shipment::v1 as pb;
use prost::Message;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use uuid::Uuid;

use super::State;
use crate::store::events::{self, OutboxRow};

/// The stream a watcher reads.
pub type EventStream = ReceiverStream<Result<pb::WatchShipmentEventsResponse, Status>>;

/// The channel NOTIFY announces commits on.
pub const CHANNEL: &str = "shipment_events";
/// Events read per round trip.
const BATCH: i64 = 100;
/// How often a watcher looks without being woken.
const POLL: Duration = Duration::from_secs(1);
/// How long one stream lives: an access token's lifetime, so a stream never outlives the
/// credentials it was opened with by much. Clients reconnect with their last resume token.
const MAX_STREAM: Duration = Duration::from_secs(15 * 60);
/// What a resume token signs: the tenant's outbox (numbers are per tenant).
fn listing(tenant_id: Uuid) -> String {
    format!("watch|{tenant_id}")
}

/// Tenants with newly published events, announced to every watcher of this replica.
#[derive(Clone)]
pub struct EventFeed(broadcast::Sender<Uuid>);

impl Default for EventFeed {
    fn default() -> Self {
        Self(broadcast::channel(1024).0)
    }
}

impl EventFeed {
    /// Listens for published events and announces them until the task is dropped; reconnects
    /// after a lost connection (watchers poll meanwhile).
    pub async fn listen(self, pool: PgPool) {
        loop {
            match PgListener::connect_with(&pool).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(CHANNEL).await {
                        tracing::warn!(error = %e, "could not LISTEN for shipment events");
                    } else {
                        while let Ok(notification) = listener.recv().await {
                            if let Ok(tenant) = Uuid::parse_str(notification.payload()) {
                                let _ = self.0.send(tenant);
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not connect to LISTEN"),
            }
            tokio::time::sleep(POLL).await;
        }
    }
}

/// Starts a watcher for `caller`.
pub async fn watch(
    state: &Arc<State>,
    caller: Caller,
    request: pb::WatchShipmentEventsRequest,
) -> Result<EventStream, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let shipment_id = aip::parse_optional_id("shipment_id", &request.shipment_id)
        .map_err(|v| Error::Invalid(vec![v]))?;
    let after: i64 = state
        .page_tokens
        .decode::<i64>(&listing(caller.tenant_id), &request.resume_token)
        .map_err(|e| match e {
            Error::Invalid(_) => {
                Error::invalid("resume_token", "is not a resume token of this service")
            }
            other => other,
        })?
        .unwrap_or(0);
    // Fail now, not in the stream, when the database is down.
    let first = read(&state.pool, &caller, after, shipment_id).await?;
    let (tx, rx) = mpsc::channel(BATCH as usize);
    let state = Arc::clone(state);
    let woken = state.feed.0.subscribe();
    tokio::spawn(follow(state, caller, shipment_id, after, first, woken, tx));
    Ok(ReceiverStream::new(rx))
}

async fn read(
    pool: &PgPool,
    caller: &Caller,
    after: i64,
    shipment_id: Option<Uuid>,
) -> Result<Vec<OutboxRow>, Error> {
    let mut tx = DbContext::for_caller(caller).begin(pool).await?;
    let rows = events::after(&mut tx, after, shipment_id, BATCH).await?;
    tx.commit().await?;
    Ok(rows)
}

async fn follow(
    state: Arc<State>,
    caller: Caller,
    shipment_id: Option<Uuid>,
    mut after: i64,
    mut batch: Vec<OutboxRow>,
    mut woken: broadcast::Receiver<Uuid>,
    out: mpsc::Sender<Result<pb::WatchShipmentEventsResponse, Status>>,
) {
    let ends = tokio::time::Instant::now() + MAX_STREAM;
    loop {
        if tokio::time::Instant::now() >= ends {
            return;
        }
        let full = batch.len() as i64 == BATCH;
        for row in batch.drain(..) {
            after = row.sequence;
            let message = match event(&state, caller.tenant_id, &row) {
                Ok(event) => Ok(pb::WatchShipmentEventsResponse { event: Some(event) }),
                Err(e) => Err(Status::from(e)),
            };
            let failed = message.is_err();
            if out.send(message).await.is_err() || failed {
                return;
            }
        }
        if !full {
            // Wait for an announcement of this tenant, or look anyway after a while.
            let wait = async {
                loop {
                    match woken.recv().await {
                        Ok(tenant) if tenant == caller.tenant_id => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            };
            tokio::select! {
                () = wait => {}
                () = tokio::time::sleep(POLL) => {}
                () = tokio::time::sleep_until(ends) => return,
                () = out.closed() => return,
            }
        }
        batch = match read(&state.pool, &caller, after, shipment_id).await {
            Ok(rows) => rows,
            Err(e) => {
                let _ = out.send(Err(Status::from(e))).await;
                return;
            }
        };
    }
}

fn event(state: &State, tenant_id: Uuid, row: &OutboxRow) -> Result<pb::ShipmentEvent, Error> {
    let mut event = pb::ShipmentEvent::decode(row.payload.as_slice())
        .map_err(|e| anyhow::anyhow!("outbox payload {} does not decode: {e}", row.sequence))?;
    event.sequence = row.sequence;
    event.resume_token = state.page_tokens.encode(&listing(tenant_id), &row.sequence);
    event.event_time = Some(timestamp(row.created_at));
    Ok(event)
}
