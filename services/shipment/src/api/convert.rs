//! Rows to wire messages and wire values to domain values. Stored names the schema's CHECKs
//! allow are the only ones read back; anything else is a bug (INTERNAL).

use logistics_platform::decimal::to_proto as decimal;
use logistics_platform::error::{FieldViolation, Violations};
use logistics_platform::fields::{CountryCode, LatLng, Text};
use logistics_platform::window::Window;
use logistics_platform::wire::timestamp;
use logistics_platform::{Error, enum_from_proto};
use logistics_proto::shipment::v1 as pb;
use logistics_proto::r#type::v1 as types;
use uuid::Uuid;

use crate::domain::shipment::{AddressSnapshot, Priority, StopKind, TrackingKind};
use crate::domain::status::Status;
use crate::store::items::ItemRow;
use crate::store::shipments::ShipmentRow;
use crate::store::stops::StopRow;
use crate::store::tracking::EventRow;

enum_from_proto!(stop_kind, pb::StopKind, StopKind {
    Pickup => Pickup,
    DropOff => DropOff,
});

enum_from_proto!(tracking_kind, pb::TrackingEventKind, TrackingKind {
    Position => Position,
    Arrived => Arrived,
    Departed => Departed,
    Delayed => Delayed,
    Resumed => Resumed,
    Note => Note,
});

enum_from_proto!(status, pb::ShipmentStatus, Status {
    Draft => Draft,
    Planned => Planned,
    Dispatched => Dispatched,
    InTransit => InTransit,
    Delivered => Delivered,
    Cancelled => Cancelled,
    Exception => Exception,
});

enum_from_proto!(required_priority, pb::Priority, Priority {
    Low => Low,
    Normal => Normal,
    High => High,
    Urgent => Urgent,
});

/// A priority of `field`; unset is NORMAL.
pub fn priority(field: &str, value: i32) -> Result<Priority, FieldViolation> {
    if value == pb::Priority::Unspecified as i32 {
        Ok(Priority::Normal)
    } else {
        required_priority(field, value)
    }
}

fn wire_status(s: Status) -> pb::ShipmentStatus {
    match s {
        Status::Draft => pb::ShipmentStatus::Draft,
        Status::Planned => pb::ShipmentStatus::Planned,
        Status::Dispatched => pb::ShipmentStatus::Dispatched,
        Status::InTransit => pb::ShipmentStatus::InTransit,
        Status::Delivered => pb::ShipmentStatus::Delivered,
        Status::Cancelled => pb::ShipmentStatus::Cancelled,
        Status::Exception => pb::ShipmentStatus::Exception,
    }
}

fn stored<T>(what: &str, value: Option<T>, name: &str) -> Result<T, Error> {
    value.ok_or_else(|| anyhow::anyhow!("unknown stored {what} {name:?}").into())
}

fn id(value: Option<Uuid>) -> String {
    value.map(|u| u.to_string()).unwrap_or_default()
}

fn location(latitude: Option<f64>, longitude: Option<f64>) -> Option<types::LatLng> {
    match (latitude, longitude) {
        (Some(latitude), Some(longitude)) => Some(types::LatLng {
            latitude,
            longitude,
        }),
        _ => None,
    }
}

/// The wire shipment of a row.
pub fn shipment(row: &ShipmentRow) -> Result<pb::Shipment, Error> {
    let priority = stored("priority", Priority::parse(&row.priority), &row.priority)?;
    Ok(pb::Shipment {
        id: row.id.to_string(),
        reference: row.reference.clone(),
        customer_id: row.customer_id.to_string(),
        supplier_id: id(row.supplier_id),
        origin_warehouse_id: row.origin_warehouse_id.to_string(),
        destination_address_id: row.destination_address_id.to_string(),
        destination: Some(pb::AddressSnapshot {
            line1: row.dest_line1.clone(),
            line2: row.dest_line2.clone(),
            city: row.dest_city.clone(),
            region: row.dest_region.clone(),
            postal_code: row.dest_postal_code.clone(),
            country_code: row.dest_country_code.clone(),
            location: location(row.dest_latitude, row.dest_longitude),
        }),
        pickup_window: Some(row.pickup()?.to_proto()),
        delivery_window: Some(row.delivery()?.to_proto()),
        priority: match priority {
            Priority::Low => pb::Priority::Low,
            Priority::Normal => pb::Priority::Normal,
            Priority::High => pb::Priority::High,
            Priority::Urgent => pb::Priority::Urgent,
        } as i32,
        status: wire_status(row.status()?) as i32,
        truck_id: id(row.truck_id),
        driver_id: id(row.driver_id),
        assignment_id: id(row.assignment_id),
        total_weight_kg: Some(decimal(row.total_weight_kg)),
        total_volume_m3: Some(decimal(row.total_volume_m3)),
        notes: row.notes.clone(),
        status_reason: row.status_reason.clone(),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        plan_time: row.planned_at.map(timestamp),
        dispatch_time: row.dispatched_at.map(timestamp),
        deliver_time: row.delivered_at.map(timestamp),
        cancel_time: row.cancelled_at.map(timestamp),
        etag: logistics_platform::aip::etag(row.version),
    })
}

/// The wire item of a row.
pub fn item(row: &ItemRow) -> Result<pb::ShipmentItem, Error> {
    Ok(pb::ShipmentItem {
        id: row.id.to_string(),
        shipment_id: row.shipment_id.to_string(),
        material_id: row.material_id.to_string(),
        quantity: Some(decimal(row.quantity)),
        unit_weight_kg: Some(decimal(row.unit_weight_kg)),
        unit_volume_m3: Some(decimal(row.unit_volume_m3)),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: logistics_platform::aip::etag(row.version),
    })
}

/// The wire stop of a row.
pub fn stop(row: &StopRow) -> Result<pb::Stop, Error> {
    let kind = stored("stop kind", StopKind::parse(&row.kind), &row.kind)?;
    Ok(pb::Stop {
        id: row.id.to_string(),
        shipment_id: row.shipment_id.to_string(),
        sequence: row.sequence,
        kind: match kind {
            StopKind::Pickup => pb::StopKind::Pickup,
            StopKind::DropOff => pb::StopKind::DropOff,
        } as i32,
        address: Some(pb::AddressSnapshot {
            line1: row.line1.clone(),
            line2: row.line2.clone(),
            city: row.city.clone(),
            region: row.region.clone(),
            postal_code: row.postal_code.clone(),
            country_code: row.country_code.clone(),
            location: location(row.latitude, row.longitude),
        }),
        window: Some(Window::stored_proto(&row.time_window)?),
        arrive_time: row.arrived_at.map(timestamp),
        depart_time: row.departed_at.map(timestamp),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: logistics_platform::aip::etag(row.version),
    })
}

/// The wire tracking event of a row.
pub fn tracking_event(row: &EventRow) -> Result<pb::TrackingEvent, Error> {
    let kind = stored("tracking kind", TrackingKind::parse(&row.kind), &row.kind)?;
    Ok(pb::TrackingEvent {
        id: row.id.to_string(),
        shipment_id: row.shipment_id.to_string(),
        client_event_id: row.client_event_id.to_string(),
        kind: match kind {
            TrackingKind::Position => pb::TrackingEventKind::Position,
            TrackingKind::Arrived => pb::TrackingEventKind::Arrived,
            TrackingKind::Departed => pb::TrackingEventKind::Departed,
            TrackingKind::Delayed => pb::TrackingEventKind::Delayed,
            TrackingKind::Resumed => pb::TrackingEventKind::Resumed,
            TrackingKind::Note => pb::TrackingEventKind::Note,
        } as i32,
        event_time: Some(timestamp(row.event_time)),
        location: location(row.latitude, row.longitude),
        stop_id: id(row.stop_id),
        note: row.note.clone(),
        record_time: Some(timestamp(row.recorded_at)),
    })
}

/// Parses an optional position of `field`, recording violations in `v`.
pub fn parse_location(
    v: &mut Violations,
    field: &str,
    value: Option<&types::LatLng>,
) -> Option<Option<LatLng>> {
    match value {
        None => Some(None),
        Some(l) => match LatLng::parse(field, l.latitude, l.longitude) {
            Ok(l) => Some(Some(l)),
            Err(violations) => {
                violations.into_iter().for_each(|x| v.push(x));
                None
            }
        },
    }
}

/// Parses a required address snapshot of `field`, recording violations in `v`.
pub fn parse_address(
    v: &mut Violations,
    field: &str,
    a: Option<&pb::AddressSnapshot>,
) -> Option<AddressSnapshot> {
    let Some(a) = a else {
        v.push(FieldViolation::new(field, "is required"));
        return None;
    };
    let f = |name: &str| format!("{field}.{name}");
    let line1 = v.check(Text::parse(&f("line1"), &a.line1, 1, 200));
    let line2 = v.check(Text::parse(&f("line2"), &a.line2, 0, 200));
    let city = v.check(Text::parse(&f("city"), &a.city, 1, 100));
    let region = v.check(Text::parse(&f("region"), &a.region, 0, 100));
    let postal_code = v.check(Text::parse(&f("postal_code"), &a.postal_code, 0, 20));
    let country = v.check(CountryCode::parse(&f("country_code"), &a.country_code));
    let location = parse_location(v, &f("location"), a.location.as_ref());
    Some(AddressSnapshot {
        line1: line1?,
        line2: line2?,
        city: city?,
        region: region?,
        postal_code: postal_code?,
        country: country?,
        location: location?,
    })
}

/// The snapshot of a partner's address (partner validated it; a value it let through that this
/// service would refuse is reported against `field`).
pub fn snapshot_of_partner_address(
    field: &str,
    a: &logistics_proto::partner::v1::Address,
) -> Result<AddressSnapshot, Error> {
    let wire = pb::AddressSnapshot {
        line1: a.line1.clone(),
        line2: a.line2.clone(),
        city: a.city.clone(),
        region: a.region.clone(),
        postal_code: a.postal_code.clone(),
        country_code: a.country_code.clone(),
        location: a.location.as_ref().map(|l| types::LatLng {
            latitude: l.latitude,
            longitude: l.longitude,
        }),
    };
    let mut v = Violations::new();
    let snapshot = parse_address(&mut v, field, Some(&wire));
    v.finish()?;
    logistics_platform::error::parsed(snapshot)
}
