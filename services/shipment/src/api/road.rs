//! On the road: tracking events (idempotent by the device's event id), exceptions, delivery
//! with a proof of delivery (name and signature sealed), and reading them back. Drivers may do
//! all of it for the shipments booked for them only; row-level security hides the others.

use std::sync::Arc;

use logistics_platform::aip::{self, require_id};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::{DbContext, Tx};
use logistics_platform::error::{Error, FieldViolation, Resource, Violations, parsed};
use logistics_platform::fields::{LatLng, Text};
use logistics_platform::wire::{parse_timestamp, timestamp};
use logistics_proto::shipment::v1 as pb;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::{State, convert, emit};
use crate::domain::shipment::{EventType, TrackingKind};
use crate::domain::status::{Status, Transition};
use crate::peers::CallContext;
use crate::sealing::Column;
use crate::store::shipments::{self, ShipmentRow, StatusChange};
use crate::store::tracking::{self as store, EventRow, NewEvent, ProofRow};

/// How far ahead of the server's clock a device's clock may be.
const CLOCK_SKEW: Duration = Duration::minutes(5);
/// Largest signature or photo.
const MAX_CONTENT: usize = 1024 * 1024;
const CONTENT_TYPES: &[&str] = &["image/png", "image/jpeg", "image/svg+xml"];

fn not_in_future(v: &mut Violations, field: &str, at: Option<OffsetDateTime>) {
    if at.is_some_and(|at| at > OffsetDateTime::now_utc() + CLOCK_SKEW) {
        v.push(FieldViolation::new(field, "must not be in the future"));
    }
}

fn parse_event(v: &mut Violations, e: &pb::TrackingEvent) -> Option<NewEvent> {
    let shipment_id = v.check(aip::parse_id("tracking_event.shipment_id", &e.shipment_id));
    let client_event_id = v.check(aip::parse_id(
        "tracking_event.client_event_id",
        &e.client_event_id,
    ));
    let kind = v.check(convert::tracking_kind("tracking_event.kind", e.kind));
    let event_time = v.check(parse_timestamp(
        "tracking_event.event_time",
        e.event_time.as_ref(),
    ));
    not_in_future(v, "tracking_event.event_time", event_time);
    let location = convert::parse_location(v, "tracking_event.location", e.location.as_ref());
    let stop_id = v
        .check(aip::parse_optional_id("tracking_event.stop_id", &e.stop_id))
        .flatten();
    if kind == Some(TrackingKind::Arrived) && e.stop_id.is_empty() {
        v.push(FieldViolation::new(
            "tracking_event.stop_id",
            "is required for ARRIVED",
        ));
    }
    let note = v.check(Text::parse("tracking_event.note", &e.note, 0, 1000));
    Some(NewEvent {
        shipment_id: shipment_id?,
        client_event_id: client_event_id?,
        kind: kind?,
        event_time: event_time?,
        location: location?,
        stop_id,
        note: note?.into_string(),
    })
}

/// The status a tracking event of `kind` moves a shipment in `status` to, or why it may not be
/// recorded now.
fn status_after(status: Status, kind: TrackingKind) -> Result<Status, Error> {
    match (status, kind) {
        (_, TrackingKind::Resumed) => Ok(status.apply(Transition::Resume)?),
        (Status::Dispatched, TrackingKind::Departed) => Ok(status.apply(Transition::Depart)?),
        (Status::Dispatched | Status::InTransit | Status::Exception, _) => Ok(status),
        _ => Err(Error::precondition(
            "NOT_ON_THE_ROAD",
            "status",
            format!(
                "tracking events are recorded for DISPATCHED, IN_TRANSIT and EXCEPTION \
                 shipments; this one is {}",
                status.as_str().to_uppercase()
            ),
        )),
    }
}

/// Records a tracking event; the same `client_event_id` again records nothing and answers with
/// the first event.
#[tracing::instrument(skip_all)]
pub async fn record_tracking_event(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::RecordTrackingEventRequest,
) -> Result<pb::RecordTrackingEventResponse, Error> {
    caller.require(Permission::ShipmentsTrack)?;
    let given = request.tracking_event.unwrap_or_default();
    let mut v = Violations::new();
    let event = parse_event(&mut v, &given);
    v.finish()?;
    let event = parsed(event)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = replay(&mut tx, &event).await? {
        return Ok(first);
    }
    let shipment = shipments::lock(&mut tx, event.shipment_id).await?;
    // A concurrent call with the same id may have recorded it while this one waited for the
    // lock (and moved the status on): answer as it did, before judging the status.
    if let Some(first) = replay(&mut tx, &event).await? {
        return Ok(first);
    }
    let (row, shipment) = record(&mut tx, &shipment, &event).await?;
    let Some(row) = row else {
        // A concurrent call with the same client event id won; answer as it did.
        drop(tx);
        let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
        // Claimed, yet invisible to this caller: an event of a shipment it may not see.
        let first = replay(&mut tx, &event).await?;
        return first.ok_or_else(|| {
            Error::invalid(
                "tracking_event.client_event_id",
                "was already used for an event of another shipment",
            )
        });
    };
    tx.commit().await?;
    Ok(pb::RecordTrackingEventResponse {
        tracking_event: Some(convert::tracking_event(&row)?),
        shipment: Some(convert::shipment(&shipment)?),
    })
}

/// The first answer for the event's client id, if it was recorded before.
async fn replay(
    tx: &mut Tx,
    event: &NewEvent,
) -> Result<Option<pb::RecordTrackingEventResponse>, Error> {
    let Some(first) = store::by_client_id(tx, event.client_event_id).await? else {
        return Ok(None);
    };
    if first.shipment_id != event.shipment_id {
        return Err(Error::invalid(
            "tracking_event.client_event_id",
            "was already used for an event of another shipment",
        ));
    }
    let shipment = shipments::get(tx, first.shipment_id, true)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(shipments::KIND, first.shipment_id)))?;
    Ok(Some(pb::RecordTrackingEventResponse {
        tracking_event: Some(convert::tracking_event(&first)?),
        shipment: Some(convert::shipment(&shipment)?),
    }))
}

/// Appends the event to a locked shipment, stamps its stop, moves its status and announces it.
/// `None` when a concurrent call claimed the client id first (nothing written).
async fn record(
    tx: &mut Tx,
    shipment: &ShipmentRow,
    event: &NewEvent,
) -> Result<(Option<EventRow>, ShipmentRow), Error> {
    let status = shipment.status()?;
    let to = status_after(status, event.kind)?;
    if let Some(stop_id) = event.stop_id {
        match event.kind {
            TrackingKind::Arrived | TrackingKind::Departed => {
                shipments_stop_stamp(tx, shipment.id, stop_id, event).await?;
            }
            _ => {
                if !crate::store::stops::is_live_stop_of(tx, shipment.id, stop_id).await? {
                    return Err(not_a_stop_of_the_shipment());
                }
            }
        }
    }
    let Some(row) = store::insert(tx, Uuid::now_v7(), event).await? else {
        return Ok((None, shipment.clone()));
    };
    let shipment = if to == status {
        shipment.clone()
    } else {
        shipments::set_status(tx, shipment.id, to, &StatusChange::default()).await?
    };
    emit(
        tx,
        &shipment,
        EventType::Tracked,
        Some(convert::tracking_event(&row)?),
    )
    .await?;
    Ok((Some(row), shipment))
}

async fn shipments_stop_stamp(
    tx: &mut Tx,
    shipment_id: Uuid,
    stop_id: Uuid,
    event: &NewEvent,
) -> Result<(), Error> {
    crate::store::stops::stamp(
        tx,
        shipment_id,
        stop_id,
        event.kind == TrackingKind::Arrived,
        event.event_time,
    )
    .await
    .map_err(|e| match e {
        Error::NotFound(_) => not_a_stop_of_the_shipment(),
        other => other,
    })
}

fn not_a_stop_of_the_shipment() -> Error {
    Error::invalid(
        "tracking_event.stop_id",
        "is not a live stop of the shipment",
    )
}

/// One page of a shipment's tracking events, oldest first.
pub async fn list_tracking_events(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::ListTrackingEventsRequest,
) -> Result<pb::ListTrackingEventsResponse, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let shipment_id = require_id("shipment_id", &request.shipment_id)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let listing = format!("tracking|{}", request.shipment_id);
    let after = state.page_tokens.decode(&listing, &request.page_token)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if shipments::get(&mut tx, shipment_id, true).await?.is_none() {
        return Err(Error::NotFound(Resource::new(shipments::KIND, shipment_id)));
    }
    let rows = store::list(&mut tx, shipment_id, after.as_ref(), page_size + 1).await?;
    tx.commit().await?;
    let (rows, next_page_token) =
        state
            .page_tokens
            .page(&listing, rows, page_size, store::cursor_after);
    Ok(pb::ListTrackingEventsResponse {
        tracking_events: rows
            .iter()
            .map(convert::tracking_event)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// DISPATCHED or IN_TRANSIT to EXCEPTION, with the reason (and where, as a tracking note).
#[tracing::instrument(skip_all)]
pub async fn report_exception(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::ReportExceptionRequest,
) -> Result<pb::ReportExceptionResponse, Error> {
    caller.require(Permission::ShipmentsTrack)?;
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("id", &request.id));
    let reason = v.check(Text::parse("reason", &request.reason, 1, 500));
    let location = convert::parse_location(&mut v, "location", request.location.as_ref());
    v.finish()?;
    let (id, reason, location) = (parsed(id)?, parsed(reason)?, parsed(location)?);

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let shipment = shipments::lock(&mut tx, id).await?;
    let to = shipment.status()?.apply(Transition::ReportException)?;
    let note = NewEvent {
        shipment_id: id,
        client_event_id: Uuid::now_v7(),
        kind: TrackingKind::Note,
        event_time: OffsetDateTime::now_utc(),
        location,
        stop_id: None,
        note: format!("exception: {}", reason.as_str()),
    };
    store::insert(&mut tx, Uuid::now_v7(), &note).await?;
    let row = shipments::set_status(
        &mut tx,
        id,
        to,
        &StatusChange {
            reason: Some(reason.into_string()),
            ..StatusChange::default()
        },
    )
    .await?;
    emit(&mut tx, &row, EventType::ExceptionReported, None).await?;
    tx.commit().await?;
    Ok(pb::ReportExceptionResponse {
        shipment: Some(convert::shipment(&row)?),
    })
}

/// A proof of delivery, parsed.
struct Proof {
    recipient_name: Text,
    deliver_time: OffsetDateTime,
    location: Option<LatLng>,
    content: Vec<u8>,
    content_type: String,
}

fn parse_proof(v: &mut Violations, p: Option<&pb::ProofOfDelivery>) -> Option<Proof> {
    let Some(p) = p else {
        v.push(FieldViolation::new("proof_of_delivery", "is required"));
        return None;
    };
    let recipient_name = v.check(Text::parse(
        "proof_of_delivery.recipient_name",
        &p.recipient_name,
        1,
        200,
    ));
    let deliver_time = v.check(parse_timestamp(
        "proof_of_delivery.deliver_time",
        p.deliver_time.as_ref(),
    ));
    not_in_future(v, "proof_of_delivery.deliver_time", deliver_time);
    let location = convert::parse_location(v, "proof_of_delivery.location", p.location.as_ref());
    if p.content.is_empty() || p.content.len() > MAX_CONTENT {
        v.push(FieldViolation::new(
            "proof_of_delivery.content",
            "must be 1 byte to 1 MiB",
        ));
    }
    if !CONTENT_TYPES.contains(&p.content_type.as_str()) {
        v.push(FieldViolation::new(
            "proof_of_delivery.content_type",
            "must be image/png, image/jpeg or image/svg+xml",
        ));
    }
    Some(Proof {
        recipient_name: recipient_name?,
        deliver_time: deliver_time?,
        location: location?,
        content: p.content.clone(),
        content_type: p.content_type.clone(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn proof_message(state: &State, row: &ProofRow) -> Result<pb::ProofOfDelivery, Error> {
    let sealer = &state.sealer;
    Ok(pb::ProofOfDelivery {
        shipment_id: row.shipment_id.to_string(),
        recipient_name: sealer.open(
            Column::RecipientName,
            row.tenant_id,
            row.shipment_id,
            &row.recipient_name,
        )?,
        deliver_time: Some(timestamp(row.delivered_at)),
        location: match (row.latitude, row.longitude) {
            (Some(latitude), Some(longitude)) => Some(logistics_proto::r#type::v1::LatLng {
                latitude,
                longitude,
            }),
            _ => None,
        },
        content: sealer.open_bytes(
            Column::ProofContent,
            row.tenant_id,
            row.shipment_id,
            &row.content,
        )?,
        content_type: row.content_type.clone(),
        content_sha256: hex(&row.content_sha256),
        record_time: Some(timestamp(row.created_at)),
    })
}

/// IN_TRANSIT to DELIVERED with the proof of delivery.
#[tracing::instrument(skip_all)]
pub async fn deliver_shipment(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::DeliverShipmentRequest,
) -> Result<pb::DeliverShipmentResponse, Error> {
    caller.require(Permission::ShipmentsTrack)?;
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("id", &request.id));
    let proof = parse_proof(&mut v, request.proof_of_delivery.as_ref());
    v.finish()?;
    let (id, proof) = (parsed(id)?, parsed(proof)?);

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let shipment = shipments::lock(&mut tx, id).await?;
    let to = shipment.status()?.apply(Transition::Deliver)?;
    let tenant = shipment.tenant_id;
    let stored = store::insert_proof(
        &mut tx,
        &ProofRow {
            tenant_id: tenant,
            shipment_id: id,
            recipient_name: state.sealer.seal(
                Column::RecipientName,
                tenant,
                id,
                proof.recipient_name.as_str(),
            ),
            delivered_at: proof.deliver_time,
            latitude: proof.location.map(|l| l.latitude),
            longitude: proof.location.map(|l| l.longitude),
            content: state
                .sealer
                .seal_bytes(Column::ProofContent, tenant, id, &proof.content),
            content_type: proof.content_type,
            content_sha256: Sha256::digest(&proof.content).to_vec(),
            created_at: OffsetDateTime::now_utc(),
        },
    )
    .await?;
    let row = shipments::set_status(&mut tx, id, to, &StatusChange::default()).await?;
    emit(&mut tx, &row, EventType::Delivered, None).await?;
    tx.commit().await?;
    Ok(pb::DeliverShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
        proof_of_delivery: Some(proof_message(state, &stored)?),
    })
}

/// The proof of delivery of a delivered shipment the caller may see.
pub async fn get_proof_of_delivery(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::GetProofOfDeliveryRequest,
) -> Result<pb::GetProofOfDeliveryResponse, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let shipment_id = require_id("shipment_id", &request.shipment_id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::proof(&mut tx, shipment_id).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| {
        Error::NotFound(Resource::new(
            "logistics.shipment.v1.ProofOfDelivery",
            shipment_id,
        ))
    })?;
    Ok(pb::GetProofOfDeliveryResponse {
        proof_of_delivery: Some(proof_message(state, &row)?),
    })
}
