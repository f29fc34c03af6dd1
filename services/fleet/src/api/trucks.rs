//! Trucks: create (idempotent), get, list, update (mask + etag), soft delete, undelete, and the
//! search for trucks that are free and big enough.

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations, parsed};
use logistics_proto::fleet::v1 as pb;
use prost::Message;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{State, convert};
use crate::domain::truck::{
    self as domain, PAYLOAD_DIGITS, Plate, TruckFields, TruckStatus, VOLUME_DIGITS, Vin,
};
use crate::store::IDEMPOTENCY;
use crate::store::trucks::{self as store, Condition, ListQuery, Order};

const CREATE_TRUCK: &str = "CreateTruck";
const UPDATABLE: &[&str] = &[
    "plate",
    "vin",
    "make",
    "model",
    "year",
    "payload_capacity_kg",
    "volume_capacity_m3",
    "status",
    "odometer_km",
];

/// Every field of `t`, validated; violations are recorded in `v` under `truck.`. An unset
/// status is active when `status_defaults` (create), a violation otherwise.
fn parse_truck(v: &mut Violations, t: &pb::Truck, status_defaults: bool) -> Option<TruckFields> {
    let this_year = OffsetDateTime::now_utc().year();
    let plate = v.check(Plate::parse("truck.plate", &t.plate));
    let vin = v.check(Vin::parse("truck.vin", &t.vin));
    let make = v.check(domain::make_or_model("truck.make", &t.make));
    let model = v.check(domain::make_or_model("truck.model", &t.model));
    let year = v.check(domain::model_year("truck.year", t.year, this_year));
    let payload = required_quantity(
        v,
        "truck.payload_capacity_kg",
        t.payload_capacity_kg.as_ref(),
        PAYLOAD_DIGITS,
    );
    let volume = required_quantity(
        v,
        "truck.volume_capacity_m3",
        t.volume_capacity_m3.as_ref(),
        VOLUME_DIGITS,
    );
    let status = if t.status == 0 && status_defaults {
        Some(TruckStatus::Active)
    } else {
        v.check(convert::truck_status("truck.status", t.status))
    };
    let odometer_km = v.check(domain::odometer("truck.odometer_km", t.odometer_km));
    Some(TruckFields {
        plate: plate?,
        vin: vin?,
        make: make?,
        model: model?,
        year: year?,
        payload_kg: payload?,
        volume_m3: volume?,
        status: status?,
        odometer_km: odometer_km?,
    })
}

fn required_quantity(
    v: &mut Violations,
    field: &str,
    value: Option<&logistics_proto::r#type::v1::Decimal>,
    digits: u32,
) -> Option<crate::domain::quantity::Quantity> {
    let parsed = convert::parse_optional_quantity(v, field, value, digits);
    if parsed.is_none() && value.is_none_or(|d| d.value.trim().is_empty()) {
        v.push(logistics_platform::FieldViolation::new(
            field,
            "is required",
        ));
    }
    parsed
}

/// Copies the fields named in `paths` from `from` into `into`.
fn overlay(into: &mut pb::Truck, from: &pb::Truck, paths: &[&str]) {
    for path in paths {
        match *path {
            "plate" => into.plate.clone_from(&from.plate),
            "vin" => into.vin.clone_from(&from.vin),
            "make" => into.make.clone_from(&from.make),
            "model" => into.model.clone_from(&from.model),
            "year" => into.year = from.year,
            "payload_capacity_kg" => into
                .payload_capacity_kg
                .clone_from(&from.payload_capacity_kg),
            "volume_capacity_m3" => into.volume_capacity_m3.clone_from(&from.volume_capacity_m3),
            "status" => into.status = from.status,
            "odometer_km" => into.odometer_km = from.odometer_km,
            _ => {}
        }
    }
}

/// Adds a truck; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_truck(
    state: &State,
    caller: &Caller,
    request: pb::CreateTruckRequest,
) -> Result<pb::CreateTruckResponse, Error> {
    caller.require(Permission::FleetWrite)?;
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let fields = parse_truck(
        &mut v,
        request.truck.as_ref().unwrap_or(&pb::Truck::default()),
        true,
    );
    v.finish()?;
    let fields = parsed(fields)?;
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_TRUCK, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    let id = Uuid::now_v7();
    let row = store::insert(&mut tx, id, &fields)
        .await
        .map_err(|e| e.nested("truck"))?;
    let response = pb::CreateTruckResponse {
        truck: Some(convert::truck(&row)?),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_TRUCK, request_id, &response)
        .await?;
    tx.commit().await?;
    tracing::info!(truck_id = %id, "truck created");
    Ok(response)
}

/// One truck, deleted or not.
pub async fn get_truck(
    state: &State,
    caller: &Caller,
    request: pb::GetTruckRequest,
) -> Result<pb::GetTruckResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetTruckResponse {
        truck: Some(convert::truck(&row)?),
    })
}

fn list_conditions(filter: &str) -> Result<Vec<Condition>, Error> {
    let mut conditions = Vec::new();
    for c in aip::parse_filter(filter)? {
        let condition = match c.field.as_str() {
            "status" => pb::TruckStatus::from_str_name(&c.value)
                .and_then(|s| convert::truck_status("filter", s as i32).ok())
                .map(|s| Condition::Status(s, c.negated)),
            "plate" => {
                let (raw, prefix) = match c.value.strip_suffix('*') {
                    Some(p) => (p, true),
                    None => (c.value.as_str(), false),
                };
                let key: String = raw
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .map(|ch| ch.to_ascii_uppercase())
                    .collect();
                Some(if prefix {
                    Condition::PlatePrefix(key, c.negated)
                } else {
                    Condition::PlateIs(key, c.negated)
                })
            }
            _ => None,
        };
        conditions.push(condition.ok_or_else(|| {
            Error::invalid(
                "filter",
                "supported: `status = TRUCK_STATUS_...`, `plate = \"B-XY*\"`",
            )
        })?);
    }
    Ok(conditions)
}

/// One keyset page of trucks.
pub async fn list_trucks(
    state: &State,
    caller: &Caller,
    request: pb::ListTrucksRequest,
) -> Result<pb::ListTrucksResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let conditions = list_conditions(&request.filter)?;
    let (field, descending) =
        aip::parse_order_by(&request.order_by, &["plate", "create_time"], "plate")?;
    let order = if field == "plate" {
        Order::Plate
    } else {
        Order::CreateTime
    };
    let listing = format!(
        "trucks|{}|{}|{}",
        request.filter, request.order_by, request.show_deleted
    );
    let after = state.page_tokens.decode(&listing, &request.page_token)?;
    let query = ListQuery {
        conditions,
        order,
        descending,
        show_deleted: request.show_deleted,
        after,
        limit: page_size + 1,
    };
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::list(&mut tx, &query).await?;
    tx.commit().await?;
    let (rows, next_page_token) = state
        .page_tokens
        .page(&listing, rows, page_size, |r| store::cursor_after(r, order));
    Ok(pb::ListTrucksResponse {
        trucks: rows.iter().map(convert::truck).collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes the masked fields of a live truck if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_truck(
    state: &State,
    caller: &Caller,
    request: pb::UpdateTruckRequest,
) -> Result<pb::UpdateTruckResponse, Error> {
    caller.require(Permission::FleetWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let given = request.truck.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "truck", &given.id, &given.etag);
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get_live(&mut tx, id).await?;
    let mut merged = convert::truck(&current)?;
    overlay(&mut merged, &given, &paths);
    let mut v = Violations::new();
    let fields = parse_truck(&mut v, &merged, false);
    v.finish()?;
    let row = store::update(&mut tx, id, version, &parsed(fields)?)
        .await
        .map_err(|e| e.nested("truck"))?;
    tx.commit().await?;
    Ok(pb::UpdateTruckResponse {
        truck: Some(convert::truck(&row)?),
    })
}

/// Soft-deletes a truck.
#[tracing::instrument(skip_all)]
pub async fn delete_truck(
    state: &State,
    caller: &Caller,
    request: pb::DeleteTruckRequest,
) -> Result<pb::DeleteTruckResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteTruckResponse {
        truck: Some(convert::truck(&row)?),
    })
}

/// Restores a soft-deleted truck.
#[tracing::instrument(skip_all)]
pub async fn undelete_truck(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteTruckRequest,
) -> Result<pb::UndeleteTruckResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteTruckResponse {
        truck: Some(convert::truck(&row)?),
    })
}

async fn set_deleted(
    state: &State,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<store::TruckRow, Error> {
    caller.require(Permission::FleetWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::set_deleted(&mut tx, id, version, deleted).await?;
    tx.commit().await?;
    Ok(row)
}

/// Active trucks big enough for a load and free for a whole window, smallest first.
pub async fn find_available_trucks(
    state: &State,
    caller: &Caller,
    request: pb::FindAvailableTrucksRequest,
) -> Result<pb::FindAvailableTrucksResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let mut v = Violations::new();
    let window = convert::parse_window(&mut v, "window", request.window.as_ref());
    let (payload, volume) = convert::parse_load(
        &mut v,
        request.min_payload_kg.as_ref(),
        request.min_volume_m3.as_ref(),
    );
    let page_size = v.check(aip::page_size(request.page_size));
    v.finish()?;
    let (window, page_size) = (parsed(window)?, parsed(page_size)?);
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::available(&mut tx, &window, payload, volume, page_size).await?;
    tx.commit().await?;
    Ok(pb::FindAvailableTrucksResponse {
        trucks: rows.iter().map(convert::truck).collect::<Result<_, _>>()?,
    })
}
