//! Shipments: create (idempotent; the customer, address, supplier and warehouse are checked
//! with their owners and the destination copied), get, list, update (mask + etag; drafts only),
//! soft delete and undelete (drafts only).

use std::sync::Arc;

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations, parsed};
use logistics_platform::fields::Text;
use logistics_platform::window::Window;
use logistics_proto::shipment::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, convert, emit, references};
use crate::domain::shipment::{EventType, Reference, ShipmentFields, check_windows};
use crate::peers::CallContext;
use crate::store::IDEMPOTENCY;
use crate::store::shipments::{self as store, Condition, Order};

const CREATE_SHIPMENT: &str = "CreateShipment";
const UPDATABLE: &[&str] = &[
    "reference",
    "supplier_id",
    "origin_warehouse_id",
    "destination_address_id",
    "pickup_window",
    "delivery_window",
    "priority",
    "notes",
];

/// Every caller field of `s`, validated; violations recorded in `v` under `shipment.`.
fn parse_fields(v: &mut Violations, s: &pb::Shipment) -> Option<ShipmentFields> {
    let reference = v.check(Reference::parse("shipment.reference", &s.reference));
    let supplier_id = v.check(aip::parse_optional_id(
        "shipment.supplier_id",
        &s.supplier_id,
    ));
    let origin = v.check(aip::parse_id(
        "shipment.origin_warehouse_id",
        &s.origin_warehouse_id,
    ));
    let destination = v.check(aip::parse_id(
        "shipment.destination_address_id",
        &s.destination_address_id,
    ));
    let pickup = Window::parse_proto(v, "shipment.pickup_window", s.pickup_window.as_ref());
    let delivery = Window::parse_proto(v, "shipment.delivery_window", s.delivery_window.as_ref());
    if let (Some(p), Some(d)) = (&pickup, &delivery) {
        v.check(check_windows(p, d).map_err(|e| e.nested("shipment")));
    }
    let priority = v.check(convert::priority("shipment.priority", s.priority));
    let notes = v.check(Text::parse("shipment.notes", &s.notes, 0, 2000));
    Some(ShipmentFields {
        reference: reference?,
        supplier_id: supplier_id?,
        origin_warehouse_id: origin?,
        destination_address_id: destination?,
        pickup: pickup?,
        delivery: delivery?,
        priority: priority?,
        notes: notes?,
    })
}

/// Copies the fields named in `paths` from `from` into `into`.
fn overlay(into: &mut pb::Shipment, from: &pb::Shipment, paths: &[&str]) {
    for path in paths {
        match *path {
            "reference" => into.reference.clone_from(&from.reference),
            "supplier_id" => into.supplier_id.clone_from(&from.supplier_id),
            "origin_warehouse_id" => into
                .origin_warehouse_id
                .clone_from(&from.origin_warehouse_id),
            "destination_address_id" => into
                .destination_address_id
                .clone_from(&from.destination_address_id),
            "pickup_window" => into.pickup_window = from.pickup_window,
            "delivery_window" => into.delivery_window = from.delivery_window,
            "priority" => into.priority = from.priority,
            "notes" => into.notes.clone_from(&from.notes),
            _ => {}
        }
    }
}

/// Creates a draft shipment; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_shipment(
    state: &Arc<State>,
    caller: &Caller,
    call: &CallContext,
    request: pb::CreateShipmentRequest,
) -> Result<pb::CreateShipmentResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let given = request.shipment.clone().unwrap_or_default();
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let customer_id = v.check(aip::parse_id("shipment.customer_id", &given.customer_id));
    let fields = parse_fields(&mut v, &given);
    v.finish()?;
    let (customer_id, fields) = (parsed(customer_id)?, parsed(fields)?);
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    // A replay answers before any call to another service; those run outside a transaction.
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .peek(&mut tx, CREATE_SHIPMENT, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    tx.commit().await?;
    let peers = &state.peers;
    references::customer(peers, call, "shipment.customer_id", customer_id).await?;
    let destination = references::destination(
        peers,
        call,
        "shipment.destination_address_id",
        fields.destination_address_id,
        customer_id,
    )
    .await?;
    if let Some(supplier_id) = fields.supplier_id {
        references::supplier(peers, call, "shipment.supplier_id", supplier_id).await?;
    }
    references::warehouse(
        peers,
        call,
        "shipment.origin_warehouse_id",
        fields.origin_warehouse_id,
    )
    .await?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_SHIPMENT, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    let row = store::insert(&mut tx, Uuid::now_v7(), customer_id, &fields, &destination)
        .await
        .map_err(|e| e.nested("shipment"))?;
    emit(&mut tx, &row, EventType::Created, None).await?;
    let response = pb::CreateShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_SHIPMENT, request_id, &response)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One shipment the caller may see, deleted or not.
pub async fn get_shipment(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::GetShipmentRequest,
) -> Result<pb::GetShipmentResponse, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
    })
}

const FILTER_HELP: &str = "supported: `status = SHIPMENT_STATUS_...`, `priority = PRIORITY_...`, \
    `customer_id = \"<uuid>\"`, `driver_id = \"<uuid>\"`, `reference = \"PREFIX*\"`";

fn parse_condition(c: &aip::Comparison) -> Option<Condition> {
    match c.field.as_str() {
        "status" => pb::ShipmentStatus::from_str_name(&c.value)
            .and_then(|s| convert::status("filter", s as i32).ok())
            .map(|s| Condition::Status(s, c.negated)),
        "priority" => pb::Priority::from_str_name(&c.value)
            .and_then(|p| convert::required_priority("filter", p as i32).ok())
            .map(|p| Condition::Priority(p, c.negated)),
        "customer_id" => Uuid::parse_str(&c.value)
            .ok()
            .map(|id| Condition::Customer(id, c.negated)),
        "driver_id" => Uuid::parse_str(&c.value)
            .ok()
            .map(|id| Condition::Driver(id, c.negated)),
        "reference" => c
            .value
            .strip_suffix('*')
            .filter(|p| !p.is_empty())
            .map(|p| Condition::ReferencePrefix(p.to_owned(), c.negated)),
        _ => None,
    }
}

/// One keyset page of the shipments the caller may see.
pub async fn list_shipments(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::ListShipmentsRequest,
) -> Result<pb::ListShipmentsResponse, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let conditions = aip::parse_filter(&request.filter)?
        .iter()
        .map(|c| parse_condition(c).ok_or_else(|| Error::invalid("filter", FILTER_HELP)))
        .collect::<Result<Vec<_>, _>>()?;
    let (key, descending) = aip::parse_order_by(
        &request.order_by,
        &["create_time", "reference"],
        "create_time",
    )?;
    // Newest first unless asked otherwise.
    let (order, descending) = match (key, request.order_by.trim().is_empty()) {
        ("reference", _) => (Order::Reference, descending),
        (_, true) => (Order::CreateTime, true),
        _ => (Order::CreateTime, descending),
    };
    let listing = format!(
        "shipments|{}|{}|{}",
        request.filter, request.order_by, request.show_deleted
    );
    let after: Option<store::Cursor> = state.page_tokens.decode(&listing, &request.page_token)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::list(
        &mut tx,
        &conditions,
        order,
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
            .page(&listing, rows, page_size, store::cursor_after(order));
    Ok(pb::ListShipmentsResponse {
        shipments: rows
            .iter()
            .map(convert::shipment)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes the masked fields of a draft if the etag is current; a new destination address is
/// copied again, a new warehouse or supplier checked with its owner.
#[tracing::instrument(skip_all)]
pub async fn update_shipment(
    state: &Arc<State>,
    caller: &Caller,
    call: &CallContext,
    request: pb::UpdateShipmentRequest,
) -> Result<pb::UpdateShipmentResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let given = request.shipment.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "shipment", &given.id, &given.etag);
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::lock(&mut tx, id).await?;
    store::check_version(&current, version)?;
    store::check_editable(&current)?;
    let mut merged = convert::shipment(&current)?;
    overlay(&mut merged, &given, &paths);
    let mut v = Violations::new();
    let fields = parse_fields(&mut v, &merged);
    v.finish()?;
    let fields = parsed(fields)?;

    let peers = &state.peers;
    // The stored copy stays unless the address itself changes.
    let destination = if paths.contains(&"destination_address_id") {
        references::destination(
            peers,
            call,
            "shipment.destination_address_id",
            fields.destination_address_id,
            current.customer_id,
        )
        .await?
    } else {
        stored_destination(&merged)?
    };
    if paths.contains(&"supplier_id")
        && let Some(supplier_id) = fields.supplier_id
    {
        references::supplier(peers, call, "shipment.supplier_id", supplier_id).await?;
    }
    if paths.contains(&"origin_warehouse_id") {
        references::warehouse(
            peers,
            call,
            "shipment.origin_warehouse_id",
            fields.origin_warehouse_id,
        )
        .await?;
    }
    let row = store::update(&mut tx, id, &fields, &destination)
        .await
        .map_err(|e| e.nested("shipment"))?;
    emit(&mut tx, &row, EventType::Updated, None).await?;
    tx.commit().await?;
    Ok(pb::UpdateShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
    })
}

fn stored_destination(s: &pb::Shipment) -> Result<crate::domain::shipment::AddressSnapshot, Error> {
    let mut v = Violations::new();
    let snapshot = convert::parse_address(&mut v, "shipment.destination", s.destination.as_ref());
    v.finish()
        .map_err(|_| anyhow::anyhow!("stored destination does not parse"))?;
    parsed(snapshot)
}

/// Soft-deletes a draft shipment.
#[tracing::instrument(skip_all)]
pub async fn delete_shipment(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::DeleteShipmentRequest,
) -> Result<pb::DeleteShipmentResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
    })
}

/// Restores a soft-deleted draft shipment.
#[tracing::instrument(skip_all)]
pub async fn undelete_shipment(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::UndeleteShipmentRequest,
) -> Result<pb::UndeleteShipmentResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteShipmentResponse {
        shipment: Some(convert::shipment(&row)?),
    })
}

async fn set_deleted(
    state: &Arc<State>,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<store::ShipmentRow, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if deleted {
        let current = store::lock(&mut tx, id).await?;
        store::check_editable(&current)?;
    }
    let row = store::set_deleted(&mut tx, id, version, deleted)
        .await
        .map_err(|e| e.nested("shipment"))?;
    emit(&mut tx, &row, EventType::Updated, None).await?;
    tx.commit().await?;
    Ok(row)
}
