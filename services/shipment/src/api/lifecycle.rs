//! Plan, dispatch and cancel: each runs a saga across inventory and fleet (see `crate::saga`)
//! and answers with the shipment as the saga left it.

use std::sync::Arc;

use logistics_platform::aip::{self, parse_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::error::{Error, Violations, parsed};
use logistics_platform::fields::Text;
use logistics_proto::shipment::v1 as pb;

use super::{State, convert};
use crate::peers::CallContext;
use crate::saga::{self, Intent, Kind};

/// DRAFT to PLANNED: reserve the items, book a truck and a driver.
#[tracing::instrument(skip_all)]
pub async fn plan_shipment(
    state: &Arc<State>,
    caller: &Caller,
    call: &CallContext,
    request: pb::PlanShipmentRequest,
) -> Result<pb::PlanShipmentResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("id", &request.id));
    let version = v.check(parse_etag("etag", &request.etag));
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    v.finish()?;
    let intent = Intent {
        shipment_id: parsed(id)?,
        kind: Kind::Plan,
        expected_version: parsed(version)?,
        request_id,
        reason: String::new(),
    };
    let row = saga::start(state, caller, call, intent).await?;
    Ok(pb::PlanShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
    })
}

/// PLANNED to DISPATCHED: consume the reservation.
#[tracing::instrument(skip_all)]
pub async fn dispatch_shipment(
    state: &Arc<State>,
    caller: &Caller,
    call: &CallContext,
    request: pb::DispatchShipmentRequest,
) -> Result<pb::DispatchShipmentResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("id", &request.id));
    let version = v.check(parse_etag("etag", &request.etag));
    v.finish()?;
    let intent = Intent {
        shipment_id: parsed(id)?,
        kind: Kind::Dispatch,
        expected_version: parsed(version)?,
        request_id: None,
        reason: String::new(),
    };
    let row = saga::start(state, caller, call, intent).await?;
    Ok(pb::DispatchShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
    })
}

/// DRAFT, PLANNED or EXCEPTION to CANCELLED, giving back reservation and booking.
#[tracing::instrument(skip_all)]
pub async fn cancel_shipment(
    state: &Arc<State>,
    caller: &Caller,
    call: &CallContext,
    request: pb::CancelShipmentRequest,
) -> Result<pb::CancelShipmentResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("id", &request.id));
    let version = v.check(parse_etag("etag", &request.etag));
    let reason = v.check(Text::parse("reason", &request.reason, 1, 500));
    v.finish()?;
    let intent = Intent {
        shipment_id: parsed(id)?,
        kind: Kind::Cancel,
        expected_version: parsed(version)?,
        request_id: None,
        reason: parsed(reason)?.into_string(),
    };
    let row = saga::start(state, caller, call, intent).await?;
    Ok(pb::CancelShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
    })
}
