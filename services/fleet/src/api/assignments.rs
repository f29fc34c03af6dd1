//! Assignments: book a truck and a driver for a shipment's window (idempotent), read, cancel,
//! list. Every reason a booking is impossible is reported at once as a PreconditionFailure;
//! the database's exclusion constraints and triggers decide races the checks cannot see.

use logistics_platform::aip::{self, id_and_etag, require_id};
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Conflict, Error, FieldViolation, Resource, Violations, parsed};
use logistics_platform::fields::Text;
use logistics_proto::fleet::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, convert};
use crate::domain::driver::DriverStatus;
use crate::domain::truck::TruckStatus;
use crate::store::assignments::{
    self as store, DRIVER_BOOKED, DRIVER_NOT_ACTIVE, LICENCE_EXPIRES, ListQuery,
    NO_DRIVER_AVAILABLE, NO_TRUCK_AVAILABLE, TRUCK_BOOKED, TRUCK_IN_MAINTENANCE, TRUCK_NOT_ACTIVE,
};
use crate::store::{IDEMPOTENCY, drivers, trucks};

const CREATE_ASSIGNMENT: &str = "CreateAssignment";

/// Books a truck and a driver for a shipment's window. A retry with the same `request_id`
/// returns the first assignment.
#[tracing::instrument(skip_all)]
pub async fn create_assignment(
    state: &State,
    caller: &Caller,
    request: pb::CreateAssignmentRequest,
) -> Result<pb::CreateAssignmentResponse, Error> {
    caller.require(Permission::AssignmentsWrite)?;
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let truck_id = v.check(aip::parse_id("truck_id", &request.truck_id));
    let driver_id = v.check(aip::parse_id("driver_id", &request.driver_id));
    let shipment_id = v.check(aip::parse_id("shipment_id", &request.shipment_id));
    let window = convert::parse_window(&mut v, "window", request.window.as_ref());
    v.finish()?;
    let (truck_id, driver_id, shipment_id, window) = (
        parsed(truck_id)?,
        parsed(driver_id)?,
        parsed(shipment_id)?,
        parsed(window)?,
    );
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_ASSIGNMENT, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    let truck = trucks::get_live(&mut tx, truck_id).await?;
    let driver = drivers::get_live(&mut tx, driver_id).await?;
    let mut refused = Vec::new();
    if TruckStatus::parse(&truck.status) != Some(TruckStatus::Active) {
        refused.push(TRUCK_NOT_ACTIVE.violation());
    }
    if trucks::in_maintenance(&mut tx, truck_id, &window).await? {
        refused.push(TRUCK_IN_MAINTENANCE.violation());
    }
    if trucks::is_booked(&mut tx, truck_id, &window).await? {
        refused.push(TRUCK_BOOKED.violation());
    }
    if DriverStatus::parse(&driver.status) != Some(DriverStatus::Active) {
        refused.push(DRIVER_NOT_ACTIVE.violation());
    }
    if driver.licence_expires_at < window.end {
        refused.push(LICENCE_EXPIRES.violation());
    }
    if drivers::is_booked(&mut tx, driver_id, &window).await? {
        refused.push(DRIVER_BOOKED.violation());
    }
    if !refused.is_empty() {
        return Err(Error::Precondition(refused));
    }
    let id = Uuid::now_v7();
    let row = store::insert(&mut tx, id, truck_id, driver_id, shipment_id, &window).await?;
    let response = pb::CreateAssignmentResponse {
        assignment: Some(convert::assignment(&row)?),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_ASSIGNMENT, request_id, &response)
        .await?;
    tx.commit().await?;
    tracing::info!(assignment_id = %id, %truck_id, %driver_id, %shipment_id, "assignment created");
    Ok(response)
}

const ASSIGN_AVAILABLE: &str = "AssignAvailable";

/// How many times a booking picks again: after a pair it picked was booked by a transaction that
/// committed after the pick's snapshot, or when every fitting truck or driver that is free is
/// locked by other bookings in flight (they may yet fail and free it).
const MAX_PICKS: usize = 8;

/// The pause before picking again while other bookings hold the free trucks or drivers: a
/// little longer each time, so a crowd of bookings spreads out.
fn pause_before(pick: usize) -> std::time::Duration {
    std::time::Duration::from_millis(5 * pick as u64)
}

/// Picks a free truck that carries the load and a free, licensed driver, and books them in the
/// same transaction. A retry with the same `request_id` returns the first assignment.
#[tracing::instrument(skip_all)]
pub async fn assign_available(
    state: &State,
    caller: &Caller,
    request: pb::AssignAvailableRequest,
) -> Result<pb::AssignAvailableResponse, Error> {
    caller.require(Permission::AssignmentsWrite)?;
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let shipment_id = v.check(aip::parse_id("shipment_id", &request.shipment_id));
    let window = convert::parse_window(&mut v, "window", request.window.as_ref());
    let (payload, volume) = convert::parse_load(
        &mut v,
        request.min_payload_kg.as_ref(),
        request.min_volume_m3.as_ref(),
    );
    let class =
        convert::parse_optional_licence_class(&mut v, "licence_class", request.licence_class);
    v.finish()?;
    let (shipment_id, window) = (parsed(shipment_id)?, parsed(window)?);
    let fingerprint = aip::request_fingerprint(&request.encode_to_vec());

    for pick in 1..=MAX_PICKS {
        let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
        if let Some(first) = IDEMPOTENCY
            .replay(&mut tx, ASSIGN_AVAILABLE, request_id, &fingerprint)
            .await?
        {
            return Ok(first);
        }
        let (Some(truck_id), Some(driver_id)) =
            store::pick(&mut tx, &window, payload, volume, class).await?
        else {
            // Nothing free and unlocked: a refusal only if nothing is free at all, seen afresh
            // (the truck picked may have been booked just before its lock was taken). A free
            // truck or driver that another booking in flight holds is waited for: that booking
            // may still fail. Trucks are looked at last: a booking committing between the two
            // looks must not make a fleet that ran out of trucks look short of drivers.
            let free_driver = drivers::available(&mut tx, &window, class, 1);
            let no_driver = free_driver.await?.is_empty();
            let free_truck = trucks::available(&mut tx, &window, payload, volume, 1);
            if free_truck.await?.is_empty() {
                return Err(Error::Precondition(vec![NO_TRUCK_AVAILABLE.violation()]));
            }
            if no_driver {
                return Err(Error::Precondition(vec![NO_DRIVER_AVAILABLE.violation()]));
            }
            drop(tx);
            tokio::time::sleep(pause_before(pick)).await;
            continue;
        };
        let id = Uuid::now_v7();
        let row = match store::insert(&mut tx, id, truck_id, driver_id, shipment_id, &window).await
        {
            Ok(row) => row,
            // Booked by a transaction that committed after this one's snapshot: pick again.
            Err(Error::Precondition(refused))
                if pick < MAX_PICKS
                    && refused
                        .iter()
                        .all(|r| r.kind == TRUCK_BOOKED.kind || r.kind == DRIVER_BOOKED.kind) =>
            {
                continue;
            }
            Err(e) => return Err(e),
        };
        let response = pb::AssignAvailableResponse {
            assignment: Some(convert::assignment(&row)?),
        };
        IDEMPOTENCY
            .record(&mut tx, ASSIGN_AVAILABLE, request_id, &response)
            .await?;
        tx.commit().await?;
        tracing::info!(assignment_id = %id, %truck_id, %driver_id,
            %shipment_id, "assignment created for the first free pair");
        return Ok(response);
    }
    Err(Error::Aborted(Conflict::Concurrency))
}

/// One assignment. A driver user sees only its own.
pub async fn get_assignment(
    state: &State,
    caller: &Caller,
    request: pb::GetAssignmentRequest,
) -> Result<pb::GetAssignmentResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let id = require_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetAssignmentResponse {
        assignment: Some(convert::assignment(&row)?),
    })
}

/// Cancels an active assignment, freeing its truck and driver.
#[tracing::instrument(skip_all)]
pub async fn cancel_assignment(
    state: &State,
    caller: &Caller,
    request: pb::CancelAssignmentRequest,
) -> Result<pb::CancelAssignmentResponse, Error> {
    caller.require(Permission::AssignmentsWrite)?;
    let (id, version) = id_and_etag(&request.id, &request.etag)?;
    let reason =
        Text::parse("reason", &request.reason, 0, 500).map_err(|v| Error::Invalid(vec![v]))?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::cancel(&mut tx, id, version, reason.as_str()).await?;
    tx.commit().await?;
    Ok(pb::CancelAssignmentResponse {
        assignment: Some(convert::assignment(&row)?),
    })
}

/// One page of assignments of a truck, a driver or a shipment, by window start.
pub async fn list_assignments(
    state: &State,
    caller: &Caller,
    request: pb::ListAssignmentsRequest,
) -> Result<pb::ListAssignmentsResponse, Error> {
    caller.require(Permission::FleetRead)?;
    let mut v = Violations::new();
    let truck_id = v.check(aip::parse_optional_id("truck_id", &request.truck_id));
    let driver_id = v.check(aip::parse_optional_id("driver_id", &request.driver_id));
    let shipment_id = v.check(aip::parse_optional_id("shipment_id", &request.shipment_id));
    let window = match &request.window {
        Some(w) => convert::parse_window(&mut v, "window", Some(w)).map(Some),
        None => Some(None),
    };
    let page_size = v.check(aip::page_size(request.page_size));
    let unscoped = request.truck_id.is_empty()
        && request.driver_id.is_empty()
        && request.shipment_id.is_empty();
    // A driver user's list is scoped by row-level security to its own assignments.
    if unscoped && caller.driver_id.is_none() {
        v.push(FieldViolation::new(
            "truck_id",
            "one of truck_id, driver_id and shipment_id is required",
        ));
    }
    v.finish()?;
    let listing = format!(
        "assignments|{}|{}|{}|{:?}|{}",
        request.truck_id,
        request.driver_id,
        request.shipment_id,
        request.window,
        request.show_cancelled
    );
    let after = state.page_tokens.decode(&listing, &request.page_token)?;
    let page_size = parsed(page_size)?;
    let query = ListQuery {
        truck_id: parsed(truck_id)?,
        driver_id: parsed(driver_id)?,
        shipment_id: parsed(shipment_id)?,
        window: parsed(window)?,
        show_cancelled: request.show_cancelled,
        after,
        limit: page_size + 1,
    };
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::list(&mut tx, &query).await?;
    tx.commit().await?;
    let (rows, next_page_token) =
        state
            .page_tokens
            .page(&listing, rows, page_size, store::cursor_after);
    Ok(pb::ListAssignmentsResponse {
        assignments: rows
            .iter()
            .map(convert::assignment)
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}
