//! Reservations: set stock aside for a shipment (many lines, all or nothing, idempotent per
//! shipment), give it back, or ship it. The levels of every line are locked before anything is
//! decided, in one order, so concurrent reservations queue instead of overselling; each line
//! that cannot be served is reported, and then nothing is applied.

use std::collections::HashSet;

use logistics_platform::aip;
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::{DbContext, Tx};
use logistics_platform::error::{Error, FieldViolation, Violations, parsed};
use logistics_proto::inventory::v1 as pb;
use prost::Message;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::stock::short;
use super::{State, convert, idempotency_key, record_operation, replay_operation};
use crate::domain::material::QUANTITY;
use crate::domain::stock::{MovementKind, ReservationStatus};
use crate::store::lock_for_reservation;
use crate::store::reservations::{self as store, ReservationRow};
use crate::store::stock::{self as stock, Booking, Entry};

/// Most lines one ReserveStock may carry.
const MAX_LINES: usize = 100;

/// A line of a ReserveStock request, parsed.
struct Line {
    warehouse_id: Uuid,
    material_id: Uuid,
    quantity: Decimal,
}

fn parse_lines(v: &mut Violations, lines: &[pb::ReservationLine]) -> Vec<Line> {
    if lines.is_empty() || lines.len() > MAX_LINES {
        v.push(FieldViolation::new(
            "lines",
            format!("must hold 1 to {MAX_LINES} lines"),
        ));
    }
    let mut seen = HashSet::new();
    let mut parsed = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let warehouse_id = v.check(aip::parse_id(
            &format!("lines[{i}].warehouse_id"),
            &line.warehouse_id,
        ));
        let material_id = v.check(aip::parse_id(
            &format!("lines[{i}].material_id"),
            &line.material_id,
        ));
        let quantity = convert::parse_decimal(
            v,
            &format!("lines[{i}].quantity"),
            line.quantity.as_ref(),
            QUANTITY,
        );
        if let (Some(warehouse_id), Some(material_id), Some(quantity)) =
            (warehouse_id, material_id, quantity)
        {
            if seen.insert((warehouse_id, material_id)) {
                parsed.push(Line {
                    warehouse_id,
                    material_id,
                    quantity,
                });
            } else {
                v.push(FieldViolation::new(
                    format!("lines[{i}]"),
                    "repeats the warehouse and material of an earlier line",
                ));
            }
        }
    }
    parsed
}

/// Sets stock aside for a shipment: every line or none. A line already held for the shipment
/// is left as it is; a released one is held again.
#[tracing::instrument(skip_all)]
pub async fn reserve_stock(
    state: &State,
    caller: &Caller,
    request: pb::ReserveStockRequest,
) -> Result<pb::ReserveStockResponse, Error> {
    caller.require(Permission::StockReserve)?;
    let mut v = Violations::new();
    let key = idempotency_key(&mut v, &request.idempotency_key);
    let shipment_id = v.check(aip::parse_id("shipment_id", &request.shipment_id));
    let lines = parse_lines(&mut v, &request.lines);
    v.finish()?;
    let (key, shipment_id) = (parsed(key)?, parsed(shipment_id)?);

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) =
        replay_operation(&mut tx, "ReserveStock", key, &request.encode_to_vec()).await?
    {
        return Ok(first);
    }
    // Every warehouse, then every material, live and held FOR SHARE, then the lines' levels
    // locked, then the shipment's reservations: one statement whatever the number of lines.
    // The reservations are read only under the level locks: a concurrent ReserveStock of the
    // same shipment and line (another key) holds them until it commits, and then its
    // reservation is seen here as held, not added twice. Nothing else is locked: every change
    // of a reservation (here, Release, Consume) is made under its level's lock, taken first.
    let warehouse_ids: Vec<Uuid> = lines.iter().map(|l| l.warehouse_id).collect();
    let material_ids: Vec<Uuid> = lines.iter().map(|l| l.material_id).collect();
    let (levels, existing) =
        lock_for_reservation(&mut tx, &warehouse_ids, &material_ids, shipment_id).await?;
    let find = |line: &Line| {
        existing
            .iter()
            .find(|r| r.warehouse_id == line.warehouse_id && r.material_id == line.material_id)
    };

    let mut refused = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        match find(line).map(|r| ReservationStatus::parse(&r.status)) {
            Some(Some(ReservationStatus::Held)) => continue,
            Some(Some(ReservationStatus::Consumed)) => {
                refused.push(logistics_platform::error::PreconditionViolation {
                    kind: "ALREADY_CONSUMED",
                    subject: format!("lines[{i}]"),
                    description: "this shipment's reservation of the line has already shipped"
                        .to_owned(),
                });
                continue;
            }
            _ => {}
        }
        let available = levels
            .iter()
            .find(|l| l.warehouse_id == line.warehouse_id && l.material_id == line.material_id)
            .map_or(Decimal::ZERO, |l| l.available());
        if available < line.quantity {
            refused.push(short(format!("lines[{i}]"), line.quantity, available));
        }
    }
    if !refused.is_empty() {
        return Err(Error::Precondition(refused));
    }

    // Lines already held stay as they are; the others get their Reserve entries in one
    // statement, then the new ones are recorded and the released ones held again (at most one
    // statement each).
    let mut entries = Vec::new();
    let mut new_lines = Vec::new();
    let mut held_again = Vec::new();
    for line in &lines {
        match find(line) {
            Some(held) if held.status == ReservationStatus::Held.as_str() => continue,
            Some(released) => held_again.push((released.id, line.quantity)),
            None => new_lines.push((line.warehouse_id, line.material_id, line.quantity)),
        }
        entries.push(Entry {
            warehouse_id: line.warehouse_id,
            material_id: line.material_id,
            kind: MovementKind::Reserve,
            quantity: line.quantity,
        });
    }
    stock::apply_all(&mut tx, &shipment_booking(shipment_id, key), &entries).await?;
    let mut written = store::insert_all(&mut tx, shipment_id, &new_lines).await?;
    written.extend(store::set_status_all(&mut tx, &held_again, ReservationStatus::Held).await?);
    let reservations = lines
        .iter()
        .map(|line| {
            let same = |r: &&ReservationRow| {
                r.warehouse_id == line.warehouse_id && r.material_id == line.material_id
            };
            let row = written
                .iter()
                .find(same)
                .or_else(|| existing.iter().find(same))
                .ok_or_else(|| anyhow::anyhow!("a reserved line has no reservation"))?;
            convert::reservation(row)
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let response = pb::ReserveStockResponse { reservations };
    record_operation(&mut tx, key, &response).await?;
    tx.commit().await?;
    Ok(response)
}

/// What every ledger entry of a shipment's reservation step shares.
fn shipment_booking(shipment_id: Uuid, key: Uuid) -> Booking<'static> {
    Booking {
        reason: "",
        reference: Some(("shipment", shipment_id)),
        idempotency_key: key,
    }
}

/// The request fields of Release and Consume, parsed.
struct Settle {
    key: Uuid,
    shipment_id: Uuid,
    warehouse_id: Option<Uuid>,
    material_id: Option<Uuid>,
}

fn parse_settle(
    key: &str,
    shipment_id: &str,
    warehouse_id: &str,
    material_id: &str,
) -> Result<Settle, Error> {
    let mut v = Violations::new();
    let key = idempotency_key(&mut v, key);
    let shipment_id = v.check(aip::parse_id("shipment_id", shipment_id));
    let warehouse_id = v.check(aip::parse_optional_id("warehouse_id", warehouse_id));
    let material_id = v.check(aip::parse_optional_id("material_id", material_id));
    v.finish()?;
    Ok(Settle {
        key: parsed(key)?,
        shipment_id: parsed(shipment_id)?,
        warehouse_id: parsed(warehouse_id)?,
        material_id: parsed(material_id)?,
    })
}

/// Moves the shipment's held reservations that match `settle` to `to`, each with its ledger
/// entry of `kind`.
async fn settle(
    tx: &mut Tx,
    settle: &Settle,
    kind: MovementKind,
    to: ReservationStatus,
) -> Result<Vec<pb::Reservation>, Error> {
    let (shipment, warehouse, material) =
        (settle.shipment_id, settle.warehouse_id, settle.material_id);
    // The levels first, as ReserveStock does, then what they hold: a line reserved after the
    // levels were chosen is not this call's to settle (its level is not locked here).
    let locked = store::lock_held_levels(tx, shipment, warehouse, material).await?;
    if locked.is_empty() {
        return Ok(Vec::new());
    }
    let held: Vec<ReservationRow> = store::held_of_shipment(tx, shipment, warehouse, material)
        .await?
        .into_iter()
        .filter(|r| locked.contains(&(r.warehouse_id, r.material_id)))
        .collect();
    // One statement for the ledger entries and one for the status changes, in the order of
    // `held_of_shipment` (warehouse, material), whatever the number of lines.
    let entries: Vec<Entry> = held
        .iter()
        .map(|r| Entry {
            warehouse_id: r.warehouse_id,
            material_id: r.material_id,
            kind,
            quantity: r.quantity,
        })
        .collect();
    stock::apply_all(
        tx,
        &shipment_booking(settle.shipment_id, settle.key),
        &entries,
    )
    .await?;
    let settled: Vec<(Uuid, Decimal)> = held.iter().map(|r| (r.id, r.quantity)).collect();
    store::set_status_all(tx, &settled, to)
        .await?
        .iter()
        .map(convert::reservation)
        .collect()
}

/// Gives back a shipment's held reservations.
#[tracing::instrument(skip_all)]
pub async fn release_reservation(
    state: &State,
    caller: &Caller,
    request: pb::ReleaseReservationRequest,
) -> Result<pb::ReleaseReservationResponse, Error> {
    caller.require(Permission::StockReserve)?;
    let s = parse_settle(
        &request.idempotency_key,
        &request.shipment_id,
        &request.warehouse_id,
        &request.material_id,
    )?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = replay_operation(
        &mut tx,
        "ReleaseReservation",
        s.key,
        &request.encode_to_vec(),
    )
    .await?
    {
        return Ok(first);
    }
    let response = pb::ReleaseReservationResponse {
        reservations: settle(
            &mut tx,
            &s,
            MovementKind::Release,
            ReservationStatus::Released,
        )
        .await?,
    };
    record_operation(&mut tx, s.key, &response).await?;
    tx.commit().await?;
    Ok(response)
}

/// Ships a shipment's held reservations: on hand and reserved go down together.
#[tracing::instrument(skip_all)]
pub async fn consume_reservation(
    state: &State,
    caller: &Caller,
    request: pb::ConsumeReservationRequest,
) -> Result<pb::ConsumeReservationResponse, Error> {
    caller.require(Permission::StockReserve)?;
    let s = parse_settle(
        &request.idempotency_key,
        &request.shipment_id,
        &request.warehouse_id,
        "",
    )?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = replay_operation(
        &mut tx,
        "ConsumeReservation",
        s.key,
        &request.encode_to_vec(),
    )
    .await?
    {
        return Ok(first);
    }
    let response = pb::ConsumeReservationResponse {
        reservations: settle(
            &mut tx,
            &s,
            MovementKind::Consume,
            ReservationStatus::Consumed,
        )
        .await?,
    };
    record_operation(&mut tx, s.key, &response).await?;
    tx.commit().await?;
    Ok(response)
}

/// A shipment's reservations.
pub async fn list_reservations(
    state: &State,
    caller: &Caller,
    request: pb::ListReservationsRequest,
) -> Result<pb::ListReservationsResponse, Error> {
    caller.require(Permission::InventoryRead)?;
    let shipment_id = aip::require_id("shipment_id", &request.shipment_id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = store::of_shipment(&mut tx, shipment_id).await?;
    tx.commit().await?;
    Ok(pb::ListReservationsResponse {
        reservations: rows
            .iter()
            .map(convert::reservation)
            .collect::<Result<_, _>>()?,
    })
}
