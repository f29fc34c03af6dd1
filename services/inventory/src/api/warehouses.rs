//! Warehouses: create (idempotent), get, list, update (mask + etag), soft delete, undelete.

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations, parsed};
use logistics_platform::fields::{CountryCode, LatLng, Text};
use logistics_proto::inventory::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, convert};
use crate::domain::warehouse::{WarehouseCode, WarehouseFields, WarehouseStatus};
use crate::store::warehouses::{self as store, Condition};
use crate::store::{IDEMPOTENCY, stock};

const CREATE_WAREHOUSE: &str = "CreateWarehouse";
const UPDATABLE: &[&str] = &[
    "code",
    "name",
    "address_line",
    "city",
    "postal_code",
    "country_code",
    "location",
    "status",
];

/// Every field of `w`, validated; violations recorded in `v` under `warehouse.`.
fn parse_warehouse(
    v: &mut Violations,
    w: &pb::Warehouse,
    status_defaults: bool,
) -> Option<WarehouseFields> {
    let code = v.check(WarehouseCode::parse("warehouse.code", &w.code));
    let name = v.check(Text::parse("warehouse.name", &w.name, 1, 200));
    let address_line = v.check(Text::parse(
        "warehouse.address_line",
        &w.address_line,
        1,
        200,
    ));
    let city = v.check(Text::parse("warehouse.city", &w.city, 1, 100));
    let postal_code = v.check(Text::parse("warehouse.postal_code", &w.postal_code, 0, 20));
    let country = v.check(CountryCode::parse(
        "warehouse.country_code",
        &w.country_code,
    ));
    let location = match &w.location {
        None => Some(None),
        Some(l) => match LatLng::parse("warehouse.location", l.latitude, l.longitude) {
            Ok(l) => Some(Some(l)),
            Err(violations) => {
                violations.into_iter().for_each(|x| v.push(x));
                None
            }
        },
    };
    let status = if w.status == 0 && status_defaults {
        Some(WarehouseStatus::Active)
    } else {
        v.check(convert::warehouse_status("warehouse.status", w.status))
    };
    Some(WarehouseFields {
        code: code?,
        name: name?,
        address_line: address_line?,
        city: city?,
        postal_code: postal_code?,
        country: country?,
        location: location?,
        status: status?,
    })
}

/// Copies the fields named in `paths` from `from` into `into`.
fn overlay(into: &mut pb::Warehouse, from: &pb::Warehouse, paths: &[&str]) {
    for path in paths {
        match *path {
            "code" => into.code.clone_from(&from.code),
            "name" => into.name.clone_from(&from.name),
            "address_line" => into.address_line.clone_from(&from.address_line),
            "city" => into.city.clone_from(&from.city),
            "postal_code" => into.postal_code.clone_from(&from.postal_code),
            "country_code" => into.country_code.clone_from(&from.country_code),
            "location" => into.location = from.location,
            "status" => into.status = from.status,
            _ => {}
        }
    }
}

/// Adds a warehouse; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_warehouse(
    state: &State,
    caller: &Caller,
    request: pb::CreateWarehouseRequest,
) -> Result<pb::CreateWarehouseResponse, Error> {
    caller.require(Permission::InventoryWrite)?;
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let fields = parse_warehouse(
        &mut v,
        request
            .warehouse
            .as_ref()
            .unwrap_or(&pb::Warehouse::default()),
        true,
    );
    v.finish()?;
    let fields = parsed(fields)?;
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_WAREHOUSE, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    let row = store::insert(&mut tx, Uuid::now_v7(), &fields)
        .await
        .map_err(|e| e.nested("warehouse"))?;
    let response = pb::CreateWarehouseResponse {
        warehouse: Some(convert::warehouse(&row)?),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_WAREHOUSE, request_id, &response)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One warehouse, deleted or not.
pub async fn get_warehouse(
    state: &State,
    caller: &Caller,
    request: pb::GetWarehouseRequest,
) -> Result<pb::GetWarehouseResponse, Error> {
    caller.require(Permission::InventoryRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetWarehouseResponse {
        warehouse: Some(convert::warehouse(&row)?),
    })
}

/// One keyset page of warehouses by code.
pub async fn list_warehouses(
    state: &State,
    caller: &Caller,
    request: pb::ListWarehousesRequest,
) -> Result<pb::ListWarehousesResponse, Error> {
    caller.require(Permission::InventoryRead)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let mut conditions = Vec::new();
    for c in aip::parse_filter(&request.filter)? {
        let condition = match c.field.as_str() {
            "status" => pb::WarehouseStatus::from_str_name(&c.value)
                .and_then(|s| convert::warehouse_status("filter", s as i32).ok())
                .map(|s| Condition::Status(s, c.negated)),
            "country_code" => CountryCode::parse("filter", &c.value)
                .ok()
                .map(|code| Condition::Country(code.as_str().to_owned(), c.negated)),
            _ => None,
        };
        conditions.push(condition.ok_or_else(|| {
            Error::invalid(
                "filter",
                "supported: `status = WAREHOUSE_STATUS_...`, `country_code = \"DE\"`",
            )
        })?);
    }
    let (_, descending) = aip::parse_order_by(&request.order_by, &["code"], "code")?;
    let listing = format!(
        "warehouses|{}|{}|{}",
        request.filter, request.order_by, request.show_deleted
    );
    let after: Option<store::Cursor> = state.page_tokens.decode(&listing, &request.page_token)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::list(
        &mut tx,
        &conditions,
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
    Ok(pb::ListWarehousesResponse {
        warehouses: rows
            .iter()
            .map(convert::warehouse)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes the masked fields of a live warehouse if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_warehouse(
    state: &State,
    caller: &Caller,
    request: pb::UpdateWarehouseRequest,
) -> Result<pb::UpdateWarehouseResponse, Error> {
    caller.require(Permission::InventoryWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let given = request.warehouse.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "warehouse", &given.id, &given.etag);
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get_live(&mut tx, id).await?;
    let mut merged = convert::warehouse(&current)?;
    overlay(&mut merged, &given, &paths);
    let mut v = Violations::new();
    let fields = parse_warehouse(&mut v, &merged, false);
    v.finish()?;
    let row = store::update(&mut tx, id, version, &parsed(fields)?)
        .await
        .map_err(|e| e.nested("warehouse"))?;
    tx.commit().await?;
    Ok(pb::UpdateWarehouseResponse {
        warehouse: Some(convert::warehouse(&row)?),
    })
}

/// Soft-deletes a warehouse that holds no stock.
#[tracing::instrument(skip_all)]
pub async fn delete_warehouse(
    state: &State,
    caller: &Caller,
    request: pb::DeleteWarehouseRequest,
) -> Result<pb::DeleteWarehouseResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteWarehouseResponse {
        warehouse: Some(convert::warehouse(&row)?),
    })
}

/// Restores a soft-deleted warehouse.
#[tracing::instrument(skip_all)]
pub async fn undelete_warehouse(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteWarehouseRequest,
) -> Result<pb::UndeleteWarehouseResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteWarehouseResponse {
        warehouse: Some(convert::warehouse(&row)?),
    })
}

async fn set_deleted(
    state: &State,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<store::WarehouseRow, Error> {
    caller.require(Permission::InventoryWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if deleted {
        store::lock(&mut tx, id).await?;
    }
    if deleted && stock::holds(&mut tx, Some(id), None).await? {
        return Err(Error::precondition(
            "STOCK_REMAINS",
            "warehouse",
            "the warehouse still holds stock; issue or transfer it first",
        ));
    }
    let row = store::set_deleted(&mut tx, id, version, deleted)
        .await
        .map_err(|e| e.nested("warehouse"))?;
    tx.commit().await?;
    Ok(row)
}
