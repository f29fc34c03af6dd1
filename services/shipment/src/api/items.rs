//! Shipment items: create (idempotent; the material is checked with inventory and its unit
//! weight and volume copied), get, list, update (quantity), soft delete and undelete — all
//! changes on editable drafts only, which the database enforces as well.

use std::sync::Arc;

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::{DbContext, Tx};
use logistics_platform::decimal::{DecimalRule, Sign};
use logistics_platform::error::{Error, Resource, Violations, parsed};
use logistics_proto::shipment::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, announce_change as announce, convert, editable_shipment, references};
use crate::peers::CallContext;
use crate::store::items::{self as store, ItemRow, NewItem};
use crate::store::{IDEMPOTENCY, shipments};

const CREATE_ITEM: &str = "CreateShipmentItem";

/// Item quantities: more than zero, 3 decimals (`numeric(18,3)`).
pub const QUANTITY: DecimalRule = DecimalRule {
    scale: 3,
    integer_digits: 15,
    sign: Sign::Positive,
};

/// Adds an item to a draft; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_shipment_item(
    state: &Arc<State>,
    caller: &Caller,
    call: &CallContext,
    request: pb::CreateShipmentItemRequest,
) -> Result<pb::CreateShipmentItemResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let given = request.shipment_item.clone().unwrap_or_default();
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let shipment_id = v.check(aip::parse_id(
        "shipment_item.shipment_id",
        &given.shipment_id,
    ));
    let material_id = v.check(aip::parse_id(
        "shipment_item.material_id",
        &given.material_id,
    ));
    let quantity = QUANTITY.parse_proto(&mut v, "shipment_item.quantity", given.quantity.as_ref());
    v.finish()?;
    let (shipment_id, material_id, quantity) = (
        parsed(shipment_id)?,
        parsed(material_id)?,
        parsed(quantity)?,
    );
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    // A replay answers before inventory is asked; that call runs outside a transaction.
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .peek(&mut tx, CREATE_ITEM, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    // Refuse early (without asking inventory) what cannot be added anyway.
    let shipment = shipments::get(&mut tx, shipment_id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(shipments::KIND, shipment_id)))?;
    shipments::check_editable(&shipment)?;
    tx.commit().await?;
    let units =
        references::material(&state.peers, call, "shipment_item.material_id", material_id).await?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_ITEM, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    editable_shipment(&mut tx, shipment_id).await?;
    let row = store::insert(
        &mut tx,
        Uuid::now_v7(),
        &NewItem {
            shipment_id,
            material_id,
            quantity,
            unit_weight_kg: units.weight_kg,
            unit_volume_m3: units.volume_m3,
        },
    )
    .await
    .map_err(|e| e.nested("shipment_item"))?;
    announce(&mut tx, shipment_id).await?;
    let response = pb::CreateShipmentItemResponse {
        shipment_item: Some(convert::item(&row)?),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_ITEM, request_id, &response)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One item of a shipment the caller may see, deleted or not.
pub async fn get_shipment_item(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::GetShipmentItemRequest,
) -> Result<pb::GetShipmentItemResponse, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetShipmentItemResponse {
        shipment_item: Some(convert::item(&row)?),
    })
}

/// One keyset page of a shipment's items, oldest first by default.
pub async fn list_shipment_items(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::ListShipmentItemsRequest,
) -> Result<pb::ListShipmentItemsResponse, Error> {
    caller.require(Permission::ShipmentsRead)?;
    let shipment_id = require_id("shipment_id", &request.shipment_id)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let mut material = None;
    for c in aip::parse_filter(&request.filter)? {
        match (c.field.as_str(), Uuid::parse_str(&c.value)) {
            ("material_id", Ok(id)) if material.is_none() => material = Some((id, c.negated)),
            _ => {
                return Err(Error::invalid(
                    "filter",
                    "supported: `material_id = \"<uuid>\"`",
                ));
            }
        }
    }
    let (_, descending) = aip::parse_order_by(&request.order_by, &["create_time"], "create_time")?;
    let listing = format!(
        "items|{}|{}|{}|{}",
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
        material,
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
    Ok(pb::ListShipmentItemsResponse {
        shipment_items: rows.iter().map(convert::item).collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes an item's quantity (the only updatable field) if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_shipment_item(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::UpdateShipmentItemRequest,
) -> Result<pb::UpdateShipmentItemResponse, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), &["quantity"])?;
    let given = request.shipment_item.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "shipment_item", &given.id, &given.etag);
    let quantity = if paths.contains(&"quantity") {
        QUANTITY.parse_proto(&mut v, "shipment_item.quantity", given.quantity.as_ref())
    } else {
        None
    };
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = live_item(&mut tx, id).await?;
    editable_shipment(&mut tx, current.shipment_id).await?;
    let row = match quantity {
        Some(quantity) => store::set_quantity(&mut tx, id, version, quantity).await?,
        None => current,
    };
    announce(&mut tx, row.shipment_id).await?;
    tx.commit().await?;
    Ok(pb::UpdateShipmentItemResponse {
        shipment_item: Some(convert::item(&row)?),
    })
}

async fn live_item(tx: &mut Tx, id: Uuid) -> Result<ItemRow, Error> {
    store::get(tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))
}

/// Soft-deletes an item of a draft.
#[tracing::instrument(skip_all)]
pub async fn delete_shipment_item(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::DeleteShipmentItemRequest,
) -> Result<pb::DeleteShipmentItemResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteShipmentItemResponse {
        shipment_item: Some(convert::item(&row)?),
    })
}

/// Restores a soft-deleted item of a draft.
#[tracing::instrument(skip_all)]
pub async fn undelete_shipment_item(
    state: &Arc<State>,
    caller: &Caller,
    _call: &CallContext,
    request: pb::UndeleteShipmentItemRequest,
) -> Result<pb::UndeleteShipmentItemResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteShipmentItemResponse {
        shipment_item: Some(convert::item(&row)?),
    })
}

async fn set_deleted(
    state: &Arc<State>,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<ItemRow, Error> {
    caller.require(Permission::ShipmentsWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get(&mut tx, id, true)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    editable_shipment(&mut tx, current.shipment_id).await?;
    let row = store::set_deleted(&mut tx, id, version, deleted)
        .await
        .map_err(|e| e.nested("shipment_item"))?;
    announce(&mut tx, row.shipment_id).await?;
    tx.commit().await?;
    Ok(row)
}
