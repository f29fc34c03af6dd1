//! Shipment's gRPC handlers: decode, authorize, validate, call peers and the store, encode. No
//! SQL here; every error leaves as a platform `Error`.

mod convert;
mod items;
mod lifecycle;
pub(crate) mod references;
mod road;
mod shipments;
mod stops;
mod watch;

use std::sync::Arc;

use logistics_platform::Error;
use logistics_platform::aip::PageTokens;
use logistics_platform::auth;
use logistics_platform::context::Tx;
use logistics_proto::shipment::v1 as pb;
use pb::shipment_service_server::ShipmentService;
use prost::Message;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::config::SagaConfig;
use crate::domain::shipment::EventType;
use crate::peers::{CallContext, Peers};
use crate::sealing::Sealer;
use crate::store::events;
use crate::store::shipments::{self as shipment_store, ShipmentRow};

pub use watch::EventFeed;

/// What every handler (and every saga) shares.
pub struct State {
    /// Runtime-role pool; only ever used through `DbContext::begin`.
    pub pool: PgPool,
    /// Page-token and resume-token signer.
    pub page_tokens: PageTokens,
    /// Seals proofs of delivery and saga credentials.
    pub sealer: Sealer,
    /// Partner, inventory and fleet.
    pub peers: Peers,
    /// How sagas run.
    pub saga: SagaConfig,
    /// This replica's id as a saga lease owner.
    pub replica_id: Uuid,
    /// Wakes event watchers when a published batch of events is announced.
    pub feed: EventFeed,
}

/// The `ShipmentService` implementation.
#[derive(Clone)]
pub struct ShipmentApi {
    state: Arc<State>,
}

impl ShipmentApi {
    /// Handlers over `state`.
    pub fn new(state: Arc<State>) -> Self {
        Self { state }
    }
}

/// Implements each listed unary RPC by taking the verified caller and its call context (the
/// credentials and trace that outgoing calls carry) and calling the handler.
macro_rules! rpcs {
    ($($method:ident($request:ident) -> $response:ident => $handler:path;)+) => {
        #[tonic::async_trait]
        impl ShipmentService for ShipmentApi {
            $(
                async fn $method(&self, request: Request<pb::$request>) -> Result<Response<pb::$response>, Status> {
                    let caller = auth::caller(&request)?;
                    let call = CallContext::of_request(&request)?;
                    $handler(&self.state, &caller, &call, request.into_inner())
                        .await
                        .map(Response::new)
                        .map_err(Status::from)
                }
            )+

            type WatchShipmentEventsStream = watch::EventStream;

            async fn watch_shipment_events(
                &self,
                request: Request<pb::WatchShipmentEventsRequest>,
            ) -> Result<Response<Self::WatchShipmentEventsStream>, Status> {
                let caller = auth::caller(&request)?;
                watch::watch(&self.state, caller, request.into_inner())
                    .await
                    .map(Response::new)
                    .map_err(Status::from)
            }
        }
    };
}

rpcs! {
    create_shipment(CreateShipmentRequest) -> CreateShipmentResponse => shipments::create_shipment;
    get_shipment(GetShipmentRequest) -> GetShipmentResponse => shipments::get_shipment;
    list_shipments(ListShipmentsRequest) -> ListShipmentsResponse => shipments::list_shipments;
    update_shipment(UpdateShipmentRequest) -> UpdateShipmentResponse => shipments::update_shipment;
    delete_shipment(DeleteShipmentRequest) -> DeleteShipmentResponse => shipments::delete_shipment;
    undelete_shipment(UndeleteShipmentRequest) -> UndeleteShipmentResponse => shipments::undelete_shipment;
    create_shipment_item(CreateShipmentItemRequest) -> CreateShipmentItemResponse => items::create_shipment_item;
    get_shipment_item(GetShipmentItemRequest) -> GetShipmentItemResponse => items::get_shipment_item;
    list_shipment_items(ListShipmentItemsRequest) -> ListShipmentItemsResponse => items::list_shipment_items;
    update_shipment_item(UpdateShipmentItemRequest) -> UpdateShipmentItemResponse => items::update_shipment_item;
    delete_shipment_item(DeleteShipmentItemRequest) -> DeleteShipmentItemResponse => items::delete_shipment_item;
    undelete_shipment_item(UndeleteShipmentItemRequest) -> UndeleteShipmentItemResponse => items::undelete_shipment_item;
    create_stop(CreateStopRequest) -> CreateStopResponse => stops::create_stop;
    get_stop(GetStopRequest) -> GetStopResponse => stops::get_stop;
    list_stops(ListStopsRequest) -> ListStopsResponse => stops::list_stops;
    update_stop(UpdateStopRequest) -> UpdateStopResponse => stops::update_stop;
    delete_stop(DeleteStopRequest) -> DeleteStopResponse => stops::delete_stop;
    undelete_stop(UndeleteStopRequest) -> UndeleteStopResponse => stops::undelete_stop;
    plan_shipment(PlanShipmentRequest) -> PlanShipmentResponse => lifecycle::plan_shipment;
    dispatch_shipment(DispatchShipmentRequest) -> DispatchShipmentResponse => lifecycle::dispatch_shipment;
    cancel_shipment(CancelShipmentRequest) -> CancelShipmentResponse => lifecycle::cancel_shipment;
    record_tracking_event(RecordTrackingEventRequest) -> RecordTrackingEventResponse => road::record_tracking_event;
    list_tracking_events(ListTrackingEventsRequest) -> ListTrackingEventsResponse => road::list_tracking_events;
    report_exception(ReportExceptionRequest) -> ReportExceptionResponse => road::report_exception;
    deliver_shipment(DeliverShipmentRequest) -> DeliverShipmentResponse => road::deliver_shipment;
    get_proof_of_delivery(GetProofOfDeliveryRequest) -> GetProofOfDeliveryResponse => road::get_proof_of_delivery;
}

/// Locks a shipment and checks it is a draft no saga is working on, before its items or stops
/// change (the database checks the same).
pub(crate) async fn editable_shipment(tx: &mut Tx, shipment_id: Uuid) -> Result<(), Error> {
    let shipment = shipment_store::lock(tx, shipment_id).await?;
    shipment_store::check_editable(&shipment)
}

/// Announces that a shipment changed through its items or stops (the change bumped its version).
pub(crate) async fn announce_change(tx: &mut Tx, shipment_id: Uuid) -> Result<(), Error> {
    let shipment = shipment_store::get(tx, shipment_id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("shipment of a written item or stop vanished"))?;
    emit(tx, &shipment, EventType::Updated, None).await
}

/// Writes an outbox event about `row` (as it is now) in the transaction of the change. It gets
/// its number when the publisher publishes it, after the commit (`crate::publisher`), so no
/// lock is held here: the change waits for no other.
pub(crate) async fn emit(
    tx: &mut Tx,
    row: &ShipmentRow,
    event_type: EventType,
    tracking_event: Option<pb::TrackingEvent>,
) -> Result<(), Error> {
    let event = pb::ShipmentEvent {
        sequence: 0,
        resume_token: String::new(),
        r#type: wire_event_type(event_type) as i32,
        shipment: Some(convert::shipment(row)?),
        tracking_event,
        event_time: None,
    };
    events::append(tx, row, event_type, &event.encode_to_vec()).await?;
    Ok(())
}

fn wire_event_type(t: EventType) -> pb::ShipmentEventType {
    match t {
        EventType::Created => pb::ShipmentEventType::Created,
        EventType::Updated => pb::ShipmentEventType::Updated,
        EventType::Planned => pb::ShipmentEventType::Planned,
        EventType::Dispatched => pb::ShipmentEventType::Dispatched,
        EventType::Tracked => pb::ShipmentEventType::Tracked,
        EventType::ExceptionReported => pb::ShipmentEventType::ExceptionReported,
        EventType::Delivered => pb::ShipmentEventType::Delivered,
        EventType::Cancelled => pb::ShipmentEventType::Cancelled,
        EventType::PlanFailed => pb::ShipmentEventType::PlanFailed,
    }
}
