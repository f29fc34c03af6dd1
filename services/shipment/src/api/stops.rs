//! Stops: create (idempotent), get, list, update (mask + etag), soft delete and undelete — all
//! on editable drafts only, which the database enforces as well.

use std::sync::Arc;

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, FieldViolation, Resource, Violations, parsed};
use logistics_platform::window::Window;
use logistics_proto::shipment::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, announce_change as announce, convert, editable_shipment};
use crate::peers::CallContext;
use crate::store::stops::{self as store, StopFields, StopRow};
use crate::store::{IDEMPOTENCY, shipments};

const CREATE_STOP: &str = "CreateStop";
const UPDATABLE: &[&str] = &["sequence", "kind", "address", "window"];

fn parse_fields(v: &mut Violations, s: &pb::Stop) -> Option<StopFields> {
    let sequence = if (1..=1000).contains(&s.sequence) {
        Some(s.sequence)
    } else {
        v.push(FieldViolation::new("stop.sequence", "must be 1 to 1000"));
        None
    };
    let kind = v.check(convert::stop_kind("stop.kind", s.kind));
    let address = convert::parse_address(v, "stop.address", s.address.as_ref());
    let window = Window::parse_proto(v, "stop.window", s.window.as_ref());
    Some(StopFields {
        sequence: sequence?,
        kind: kind?,
        address: address?,
        window: window?,
    })
}

fn overlay(into: &mut pb::Stop, from: &pb::Stop, paths: &[&str]) {
    for path in paths {
        match *path {
            "sequence" => into.sequence = from.sequence,
            "kind" => into.kind = from.kind,
            "address" => into.address.clone_from(&from.address),
            "window" => into.window = from.window,
            _ => {}
        }
    }
}

/// Adds a stop to a draft; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_stop(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::CreateStopRequest,
) -> Result<pb::CreateStopResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let given = request.stop.clone().unwrap_or_default();
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let shipment_id = v.check(aip::parse_id("stop.shipment_id", &given.shipment_id));
    let fields = parse_fields(&mut v, &given);
    v.finish()?;
    let (shipment_id, fields) = (parsed(shipment_id)?, parsed(fields)?);
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_STOP, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    editable_shipment(&mut tx, shipment_id).await?;
    let row = store::insert(&mut tx, Uuid::now_v7(), shipment_id, &fields)
        .await
        .map_err(|e| e.nested("stop"))?;
    announce(&mut tx, shipment_id).await?;
    let response = pb::CreateStopResponse {
        stop: Some(convert::stop(&row)?),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_STOP, request_id, &response)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One stop of a shipment the caller may see, deleted or not.
pub async fn get_stop(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::GetStopRequest,
) -> Result<pb::GetStopResponse, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetStopResponse {
        stop: Some(convert::stop(&row)?),
    })
}

/// One keyset page of a shipment's stops by sequence.
pub async fn list_stops(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::ListStopsRequest,
) -> Result<pb::ListStopsResponse, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let shipment_id = require_id("shipment_id", &request.shipment_id)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let mut kind = None;
    for c in aip::parse_filter(&request.filter)? {
        let parsed = pb::StopKind::from_str_name(&c.value)
            .and_then(|k| convert::stop_kind("filter", k as i32).ok());
        match (c.field.as_str(), parsed) {
            ("kind", Some(k)) if kind.is_none() => kind = Some((k, c.negated)),
            _ => {
                return Err(Error::invalid(
                    "filter",
                    "supported: `kind = STOP_KIND_...`",
                ));
            }
        }
    }
    let (_, descending) = aip::parse_order_by(&request.order_by, &["sequence"], "sequence")?;
    let listing = format!(
        "stops|{}|{}|{}|{}",
        request.shipment_id, request.filter, request.order_by, request.show_deleted
    );
    let after = state.page_tokens.decode(&listing, &request.page_token)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if shipments::get(&mut tx, shipment_id, true).await?.is_none() {
        return Err(Error::NotFound(Resource::new(shipments::KIND, shipment_id)));
    }
    let rows = store::list(
        &mut tx,
        shipment_id,
        kind,
        descending,
        request.show_deleted,
        after.as_ref(),
        page_size + 1,
    )
    .await?;
    tx.commit().await?;
    let (rows, next_page_token) =
        state
            .page_tokens
            .page(&listing, rows, page_size, store::cursor_after);
    Ok(pb::ListStopsResponse {
        stops: rows.iter().map(convert::stop).collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes the masked fields of a stop of a draft if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_stop(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::UpdateStopRequest,
) -> Result<pb::UpdateStopResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let given = request.stop.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "stop", &given.id, &given.etag);
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get(&mut tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    editable_shipment(&mut tx, current.shipment_id).await?;
    let mut merged = convert::stop(&current)?;
    overlay(&mut merged, &given, &paths);
    let mut v = Violations::new();
    let fields = parse_fields(&mut v, &merged);
    v.finish()?;
    let row = store::update(&mut tx, id, version, &parsed(fields)?)
        .await
        .map_err(|e| e.nested("stop"))?;
    announce(&mut tx, row.shipment_id).await?;
    tx.commit().await?;
    Ok(pb::UpdateStopResponse {
        stop: Some(convert::stop(&row)?),
    })
}

/// Soft-deletes a stop of a draft.
#[tracing::instrument(skip_all)]
pub async fn delete_stop(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::DeleteStopRequest,
) -> Result<pb::DeleteStopResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteStopResponse {
        stop: Some(convert::stop(&row)?),
    })
}

/// Restores a soft-deleted stop of a draft.
#[tracing::instrument(skip_all)]
pub async fn undelete_stop(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::UndeleteStopRequest,
) -> Result<pb::UndeleteStopResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteStopResponse {
        stop: Some(convert::stop(&row)?),
    })
}

async fn set_deleted(
    state: &Arc<State>,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<StopRow, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get(&mut tx, id, true)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    editable_shipment(&mut tx, current.shipment_id).await?;
    let row = store::set_deleted(&mut tx, id, version, deleted)
        .await
        .map_err(|e| e.nested("stop"))?;
    announce(&mut tx, row.shipment_id).await?;
    tx.commit().await?;
    Ok(row)
}
