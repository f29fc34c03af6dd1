//! Between store rows and protobuf messages (opening sealed fields on the way), and between
//! proto and domain values. Parsing collects violations; it never stops at the first.

use logistics_platform::aip::etag;
use logistics_platform::error::Violations;
use logistics_platform::wire::timestamp;
use logistics_platform::{Error, enum_from_proto};
use logistics_proto::fleet::v1 as pb;
use logistics_proto::r#type::v1 as types;

use crate::domain::assignment::AssignmentStatus;
use crate::domain::driver::{DriverStatus, LicenceClass};
use crate::domain::maintenance::MaintenanceKind;
use crate::domain::quantity::Quantity;
use crate::domain::truck::{PAYLOAD_DIGITS, TruckStatus, VOLUME_DIGITS};
use crate::domain::window::Window;
use crate::sealing::{Column, Sealer};
use crate::store::assignments::AssignmentRow;
use crate::store::drivers::DriverRow;
use crate::store::maintenance::MaintenanceRow;
use crate::store::trucks::TruckRow;

/// A stored window that is not `[start, end)` is a bug, not a caller's problem.
fn stored_window(
    range: &sqlx::postgres::types::PgRange<time::OffsetDateTime>,
) -> Result<types::TimeWindow, Error> {
    Window::stored_proto(range)
}

/// Parses a required window of the request field `field`, recording violations in `v`.
pub fn parse_window(
    v: &mut Violations,
    field: &str,
    w: Option<&types::TimeWindow>,
) -> Option<Window> {
    Window::parse_proto(v, field, w)
}

/// Parses an optional decimal of `field` with `digits` integer digits; unset or empty is `None`.
pub fn parse_optional_quantity(
    v: &mut Violations,
    field: &str,
    value: Option<&types::Decimal>,
    digits: u32,
) -> Option<Quantity> {
    match value {
        Some(d) if !d.value.trim().is_empty() => v.check(Quantity::parse(field, &d.value, digits)),
        _ => None,
    }
}

/// The load a truck must carry, from a request's `min_payload_kg` and `min_volume_m3`
/// (either unset for any): kilograms and cubic metres.
pub fn parse_load(
    v: &mut Violations,
    min_payload_kg: Option<&types::Decimal>,
    min_volume_m3: Option<&types::Decimal>,
) -> (Option<rust_decimal::Decimal>, Option<rust_decimal::Decimal>) {
    let payload = parse_optional_quantity(v, "min_payload_kg", min_payload_kg, PAYLOAD_DIGITS);
    let volume = parse_optional_quantity(v, "min_volume_m3", min_volume_m3, VOLUME_DIGITS);
    (payload.map(|q| q.value()), volume.map(|q| q.value()))
}

/// An optional licence class of `field`: 0 (unspecified) is any.
pub fn parse_optional_licence_class(
    v: &mut Violations,
    field: &str,
    raw: i32,
) -> Option<LicenceClass> {
    if raw == 0 {
        None
    } else {
        v.check(licence_class(field, raw))
    }
}

/// The wire form of a quantity.
pub fn decimal(value: rust_decimal::Decimal) -> types::Decimal {
    types::Decimal {
        value: Quantity::from_stored(value).to_string(),
    }
}

enum_from_proto!(truck_status, pb::TruckStatus, TruckStatus {
    Active => Active, InMaintenance => InMaintenance, Retired => Retired
});
enum_from_proto!(driver_status, pb::DriverStatus, DriverStatus {
    Active => Active, Inactive => Inactive, Terminated => Terminated
});
enum_from_proto!(licence_class, pb::LicenceClass, LicenceClass {
    B => B, Be => Be, C1 => C1, C1e => C1e, C => C, Ce => Ce
});
enum_from_proto!(maintenance_kind, pb::MaintenanceKind, MaintenanceKind {
    Inspection => Inspection, Service => Service, Repair => Repair, Tyres => Tyres
});

fn truck_status_to_proto(status: TruckStatus) -> pb::TruckStatus {
    match status {
        TruckStatus::Active => pb::TruckStatus::Active,
        TruckStatus::InMaintenance => pb::TruckStatus::InMaintenance,
        TruckStatus::Retired => pb::TruckStatus::Retired,
    }
}

fn driver_status_to_proto(status: DriverStatus) -> pb::DriverStatus {
    match status {
        DriverStatus::Active => pb::DriverStatus::Active,
        DriverStatus::Inactive => pb::DriverStatus::Inactive,
        DriverStatus::Terminated => pb::DriverStatus::Terminated,
    }
}

/// The wire class of a domain class.
pub fn licence_class_to_proto(class: LicenceClass) -> pb::LicenceClass {
    match class {
        LicenceClass::B => pb::LicenceClass::B,
        LicenceClass::Be => pb::LicenceClass::Be,
        LicenceClass::C1 => pb::LicenceClass::C1,
        LicenceClass::C1e => pb::LicenceClass::C1e,
        LicenceClass::C => pb::LicenceClass::C,
        LicenceClass::Ce => pb::LicenceClass::Ce,
    }
}

fn maintenance_kind_to_proto(kind: MaintenanceKind) -> pb::MaintenanceKind {
    match kind {
        MaintenanceKind::Inspection => pb::MaintenanceKind::Inspection,
        MaintenanceKind::Service => pb::MaintenanceKind::Service,
        MaintenanceKind::Repair => pb::MaintenanceKind::Repair,
        MaintenanceKind::Tyres => pb::MaintenanceKind::Tyres,
    }
}

fn stored<T>(what: &str, parsed: Option<T>) -> Result<T, Error> {
    parsed.ok_or_else(|| anyhow::anyhow!("unknown stored {what}").into())
}

/// The wire truck of a row.
pub fn truck(row: &TruckRow) -> Result<pb::Truck, Error> {
    Ok(pb::Truck {
        id: row.id.to_string(),
        plate: row.plate.clone(),
        vin: row.vin.clone(),
        make: row.make.clone(),
        model: row.model.clone(),
        year: i32::from(row.model_year),
        payload_capacity_kg: Some(decimal(row.payload_capacity_kg)),
        volume_capacity_m3: Some(decimal(row.volume_capacity_m3)),
        status: truck_status_to_proto(stored("truck status", TruckStatus::parse(&row.status))?)
            as i32,
        odometer_km: row.odometer_km,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    })
}

/// The wire driver of a row, licence number and phone opened.
pub fn driver(sealer: &Sealer, row: &DriverRow) -> Result<pb::Driver, Error> {
    let mut classes = Vec::with_capacity(row.licence_classes.len());
    for name in &row.licence_classes {
        classes.push(
            licence_class_to_proto(stored("licence class", LicenceClass::parse(name))?) as i32,
        );
    }
    Ok(pb::Driver {
        id: row.id.to_string(),
        name: row.name.clone(),
        licence_number: sealer.open(
            Column::DriverLicenceNumber,
            row.tenant_id,
            row.id,
            &row.licence_number_ciphertext,
        )?,
        licence_classes: classes,
        licence_expire_time: Some(timestamp(row.licence_expires_at)),
        phone: sealer.open_optional(
            Column::DriverPhone,
            row.tenant_id,
            row.id,
            row.phone_ciphertext.as_deref(),
        )?,
        user_id: row.user_id.map(|u| u.to_string()).unwrap_or_default(),
        status: driver_status_to_proto(stored("driver status", DriverStatus::parse(&row.status))?)
            as i32,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    })
}

/// The wire record of a row.
pub fn maintenance_record(row: &MaintenanceRow) -> Result<pb::MaintenanceRecord, Error> {
    Ok(pb::MaintenanceRecord {
        id: row.id.to_string(),
        truck_id: row.truck_id.to_string(),
        kind: maintenance_kind_to_proto(stored(
            "maintenance kind",
            MaintenanceKind::parse(&row.kind),
        )?) as i32,
        scheduled_window: Some(stored_window(&row.scheduled_window)?),
        perform_time: row.performed_at.map(timestamp),
        odometer_km: row.odometer_km,
        cost: match (row.cost_minor, &row.cost_currency_code) {
            (Some(amount_minor), Some(currency_code)) => Some(types::Money {
                currency_code: currency_code.clone(),
                amount_minor,
            }),
            _ => None,
        },
        notes: row.notes.clone(),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    })
}

/// The wire assignment of a row.
pub fn assignment(row: &AssignmentRow) -> Result<pb::Assignment, Error> {
    let status = match stored("assignment status", AssignmentStatus::parse(&row.status))? {
        AssignmentStatus::Active => pb::AssignmentStatus::Active,
        AssignmentStatus::Cancelled => pb::AssignmentStatus::Cancelled,
    };
    Ok(pb::Assignment {
        id: row.id.to_string(),
        truck_id: row.truck_id.to_string(),
        driver_id: row.driver_id.to_string(),
        shipment_id: row.shipment_id.to_string(),
        window: Some(stored_window(&row.time_window)?),
        status: status as i32,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        cancel_time: row.cancelled_at.map(timestamp),
        cancel_reason: row.cancel_reason.clone(),
        etag: etag(row.version),
    })
}
