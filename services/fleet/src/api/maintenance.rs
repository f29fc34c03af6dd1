//! Maintenance records of a truck: create (idempotent), get, list, update (mask + etag), soft
//! delete, undelete. Scheduling over an active assignment is FAILED_PRECONDITION.

use logistics_platform::aip::{self, id_and_etag, require_id, resource_id_and_etag};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations, parsed};
use logistics_platform::fields::{Money, Text};
use logistics_platform::wire::parse_timestamp;
use logistics_proto::fleet::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, convert};
use crate::store::maintenance::{self as store, ListQuery, MaintenanceValues};
use crate::store::{IDEMPOTENCY, trucks};

const CREATE_RECORD: &str = "CreateMaintenanceRecord";
const UPDATABLE: &[&str] = &[
    "kind",
    "scheduled_window",
    "perform_time",
    "odometer_km",
    "cost",
    "notes",
];

/// Every field of `m`, validated; violations recorded in `v` under `maintenance_record.`.
fn parse_record(v: &mut Violations, m: &pb::MaintenanceRecord) -> Option<MaintenanceValues> {
    let kind = v.check(convert::maintenance_kind("maintenance_record.kind", m.kind));
    let scheduled = convert::parse_window(
        v,
        "maintenance_record.scheduled_window",
        m.scheduled_window.as_ref(),
    );
    let performed_at = match &m.perform_time {
        None => Some(None),
        Some(at) => v
            .check(parse_timestamp("maintenance_record.perform_time", Some(at)))
            .map(Some),
    };
    let odometer_km = v.check(crate::domain::truck::odometer(
        "maintenance_record.odometer_km",
        m.odometer_km,
    ));
    let cost = match &m.cost {
        None => Some(None),
        Some(money) => v
            .check(Money::parse_non_negative(
                "maintenance_record.cost",
                &money.currency_code,
                money.amount_minor,
            ))
            .map(|c| Some((c.amount_minor, c.currency.as_str().to_owned()))),
    };
    let notes = v.check(Text::parse("maintenance_record.notes", &m.notes, 0, 2000));
    Some(MaintenanceValues {
        kind: kind?,
        scheduled: scheduled?,
        performed_at: performed_at?,
        odometer_km: odometer_km?,
        cost: cost?,
        notes: notes?.into_string(),
    })
}

/// Copies the fields named in `paths` from `from` into `into`.
fn overlay(into: &mut pb::MaintenanceRecord, from: &pb::MaintenanceRecord, paths: &[&str]) {
    for path in paths {
        match *path {
            "kind" => into.kind = from.kind,
            "scheduled_window" => into.scheduled_window = from.scheduled_window,
            "perform_time" => into.perform_time = from.perform_time,
            "odometer_km" => into.odometer_km = from.odometer_km,
            "cost" => into.cost.clone_from(&from.cost),
            "notes" => into.notes.clone_from(&from.notes),
            _ => {}
        }
    }
}

/// Records maintenance of a live truck; the same `request_id` again answers with the first.
#[tracing::instrument(skip_all)]
pub async fn create_maintenance_record(
    state: &State,
    caller: &Caller,
    request: pb::CreateMaintenanceRecordRequest,
) -> Result<pb::CreateMaintenanceRecordResponse, Error> {
    caller.require(Permission::FleetWrite)?;
    let given = request.maintenance_record.clone().unwrap_or_default();
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let truck_id = v.check(aip::parse_id(
        "maintenance_record.truck_id",
        &given.truck_id,
    ));
    let values = parse_record(&mut v, &given);
    v.finish()?;
    let (truck_id, values) = (parsed(truck_id)?, parsed(values)?);
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_RECORD, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    trucks::get_live(&mut tx, truck_id).await?;
    if trucks::is_booked(&mut tx, truck_id, &values.scheduled).await? {
        return Err(store::truck_booked());
    }
    let row = store::insert(&mut tx, Uuid::now_v7(), truck_id, &values).await?;
    let response = pb::CreateMaintenanceRecordResponse {
        maintenance_record: Some(convert::maintenance_record(&row)?),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_RECORD, request_id, &response)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One record, deleted or not.
pub async fn get_maintenance_record(
    state: &State,
    caller: &Caller,
    request: pb::GetMaintenanceRecordRequest,
) -> Result<pb::GetMaintenanceRecordResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetMaintenanceRecordResponse {
        maintenance_record: Some(convert::maintenance_record(&row)?),
    })
}

/// One keyset page of a truck's records by scheduled start.
pub async fn list_maintenance_records(
    state: &State,
    caller: &Caller,
    request: pb::ListMaintenanceRecordsRequest,
) -> Result<pb::ListMaintenanceRecordsResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let mut v = Violations::new();
    let truck_id = v.check(aip::parse_id("truck_id", &request.truck_id));
    let page_size = v.check(aip::page_size(request.page_size));
    v.finish()?;
    let (truck_id, page_size) = (parsed(truck_id)?, parsed(page_size)?);
    let (mut kind, mut performed) = (None, None);
    for c in aip::parse_filter(&request.filter)? {
        let understood = match c.field.as_str() {
            "kind" if kind.is_none() => {
                kind = pb::MaintenanceKind::from_str_name(&c.value)
                    .and_then(|k| convert::maintenance_kind("filter", k as i32).ok())
                    .map(|k| (k, c.negated));
                kind.is_some()
            }
            "performed" if performed.is_none() => {
                performed = match c.value.as_str() {
                    "true" => Some(!c.negated),
                    "false" => Some(c.negated),
                    _ => None,
                };
                performed.is_some()
            }
            _ => false,
        };
        if !understood {
            return Err(Error::invalid(
                "filter",
                "supported: `kind = MAINTENANCE_KIND_...`, `performed = true|false`, each once",
            ));
        }
    }
    let (_, descending) =
        aip::parse_order_by(&request.order_by, &["scheduled_window"], "scheduled_window")?;
    let listing = format!(
        "maintenance|{truck_id}|{}|{}|{}",
        request.filter, request.order_by, request.show_deleted
    );
    let after = state.page_tokens.decode(&listing, &request.page_token)?;
    let query = ListQuery {
        truck_id,
        kind,
        performed,
        descending,
        show_deleted: request.show_deleted,
        after,
        limit: page_size + 1,
    };
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    trucks::get_live(&mut tx, truck_id).await?;
    let rows = store::list(&mut tx, &query).await?;
    tx.commit().await?;
    let (rows, next_page_token) =
        state
            .page_tokens
            .page(&listing, rows, page_size, store::cursor_after);
    Ok(pb::ListMaintenanceRecordsResponse {
        maintenance_records: rows
            .iter()
            .map(convert::maintenance_record)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes the masked fields of a live record if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_maintenance_record(
    state: &State,
    caller: &Caller,
    request: pb::UpdateMaintenanceRecordRequest,
) -> Result<pb::UpdateMaintenanceRecordResponse, Error> {
    caller.require(Permission::FleetWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let given = request.maintenance_record.unwrap_or_default();
    let mut v = Violations::new();
    let (id, version) = resource_id_and_etag(&mut v, "maintenance_record", &given.id, &given.etag);
    v.finish()?;
    let id = parsed(id)?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get(&mut tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    let mut merged = convert::maintenance_record(&current)?;
    overlay(&mut merged, &given, &paths);
    let mut v = Violations::new();
    let values = parse_record(&mut v, &merged);
    v.finish()?;
    let values = parsed(values)?;
    let row = store::update(&mut tx, id, version, &values).await?;
    tx.commit().await?;
    Ok(pb::UpdateMaintenanceRecordResponse {
        maintenance_record: Some(convert::maintenance_record(&row)?),
    })
}

/// Soft-deletes a record; the truck is free again for its window.
#[tracing::instrument(skip_all)]
pub async fn delete_maintenance_record(
    state: &State,
    caller: &Caller,
    request: pb::DeleteMaintenanceRecordRequest,
) -> Result<pb::DeleteMaintenanceRecordResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteMaintenanceRecordResponse {
        maintenance_record: Some(convert::maintenance_record(&row)?),
    })
}

/// Restores a soft-deleted record.
#[tracing::instrument(skip_all)]
pub async fn undelete_maintenance_record(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteMaintenanceRecordRequest,
) -> Result<pb::UndeleteMaintenanceRecordResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteMaintenanceRecordResponse {
        maintenance_record: Some(convert::maintenance_record(&row)?),
    })
}

async fn set_deleted(
    state: &State,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<store::MaintenanceRow, Error> {
    caller.require(Permission::FleetWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::set_deleted(&mut tx, id, version, deleted).await?;
    tx.commit().await?;
    Ok(row)
}
