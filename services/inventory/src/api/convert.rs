//! Between store rows and protobuf messages, and between proto and domain values.

use logistics_platform::aip::etag;
use logistics_platform::decimal::DecimalRule;
use logistics_platform::error::Violations;
use logistics_platform::wire::timestamp;
use logistics_platform::{Error, FieldViolation, enum_from_proto};
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1 as types;
use rust_decimal::Decimal;
use uuid::Uuid;

use crate::domain::material::{MaterialStatus, Unit};
use crate::domain::stock::{MovementKind, ReservationStatus};
use crate::domain::warehouse::WarehouseStatus;
use crate::store::materials::MaterialRow;
use crate::store::reservations::ReservationRow;
use crate::store::stock::{LevelRow, MovementRow};
use crate::store::suppliers::LinkRow;
use crate::store::warehouses::WarehouseRow;

/// The wire form of an exact decimal.
pub fn decimal(value: Decimal) -> Option<types::Decimal> {
    Some(types::Decimal {
        value: value.normalize().to_string(),
    })
}

/// Parses a required decimal of `field` by `rule`, recording violations in `v`.
pub fn parse_decimal(
    v: &mut Violations,
    field: &str,
    value: Option<&types::Decimal>,
    rule: DecimalRule,
) -> Option<Decimal> {
    v.check(rule.parse(field, value.map_or("", |d| d.value.as_str())))
}

/// Parses an optional reference of `field`: a type of `[a-z0-9_]{1,50}` and a UUID.
pub fn parse_reference(
    v: &mut Violations,
    field: &str,
    reference: Option<&pb::Reference>,
) -> Option<Option<(String, Uuid)>> {
    let Some(r) = reference else {
        return Some(None);
    };
    let kind_ok = (1..=50).contains(&r.r#type.len())
        && r.r#type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !kind_ok {
        v.push(FieldViolation::new(
            format!("{field}.type"),
            "must be 1 to 50 of a-z, 0-9 and _",
        ));
    }
    let id = v.check(logistics_platform::aip::parse_id(
        &format!("{field}.id"),
        &r.id,
    ));
    match (kind_ok, id) {
        (true, Some(id)) => Some(Some((r.r#type.clone(), id))),
        _ => None,
    }
}

enum_from_proto!(unit, pb::UnitOfMeasure, Unit {
    Piece => Piece, Kilogram => Kilogram, Tonne => Tonne, Litre => Litre,
    CubicMetre => CubicMetre, Metre => Metre, SquareMetre => SquareMetre, Pallet => Pallet
});
enum_from_proto!(material_status, pb::MaterialStatus, MaterialStatus {
    Active => Active, Discontinued => Discontinued
});
enum_from_proto!(warehouse_status, pb::WarehouseStatus, WarehouseStatus {
    Active => Active, Closed => Closed
});

fn stored<T>(what: &str, parsed: Option<T>) -> Result<T, Error> {
    parsed.ok_or_else(|| anyhow::anyhow!("unknown stored {what}").into())
}

/// The wire material of a row.
pub fn material(row: &MaterialRow) -> Result<pb::Material, Error> {
    let unit = match stored("unit", Unit::parse(&row.unit))? {
        Unit::Piece => pb::UnitOfMeasure::Piece,
        Unit::Kilogram => pb::UnitOfMeasure::Kilogram,
        Unit::Tonne => pb::UnitOfMeasure::Tonne,
        Unit::Litre => pb::UnitOfMeasure::Litre,
        Unit::CubicMetre => pb::UnitOfMeasure::CubicMetre,
        Unit::Metre => pb::UnitOfMeasure::Metre,
        Unit::SquareMetre => pb::UnitOfMeasure::SquareMetre,
        Unit::Pallet => pb::UnitOfMeasure::Pallet,
    };
    let status = match stored("material status", MaterialStatus::parse(&row.status))? {
        MaterialStatus::Active => pb::MaterialStatus::Active,
        MaterialStatus::Discontinued => pb::MaterialStatus::Discontinued,
    };
    Ok(pb::Material {
        id: row.id.to_string(),
        sku: row.sku.clone(),
        name: row.name.clone(),
        description: row.description.clone(),
        unit: unit as i32,
        unit_weight_kg: decimal(row.unit_weight_kg),
        unit_volume_m3: decimal(row.unit_volume_m3),
        hazard_class: row.hazard_class.clone().unwrap_or_default(),
        reorder_point: decimal(row.reorder_point),
        status: status as i32,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    })
}

/// The wire warehouse of a row.
pub fn warehouse(row: &WarehouseRow) -> Result<pb::Warehouse, Error> {
    let status = match stored("warehouse status", WarehouseStatus::parse(&row.status))? {
        WarehouseStatus::Active => pb::WarehouseStatus::Active,
        WarehouseStatus::Closed => pb::WarehouseStatus::Closed,
    };
    Ok(pb::Warehouse {
        id: row.id.to_string(),
        code: row.code.clone(),
        name: row.name.clone(),
        address_line: row.address_line.clone(),
        city: row.city.clone(),
        postal_code: row.postal_code.clone(),
        country_code: row.country_code.clone(),
        location: match (row.latitude, row.longitude) {
            (Some(latitude), Some(longitude)) => Some(types::LatLng {
                latitude,
                longitude,
            }),
            _ => None,
        },
        status: status as i32,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    })
}

/// The wire level of a row.
pub fn level(row: &LevelRow) -> pb::StockLevel {
    pb::StockLevel {
        warehouse_id: row.warehouse_id.to_string(),
        material_id: row.material_id.to_string(),
        on_hand: decimal(row.on_hand),
        reserved: decimal(row.reserved),
        available: decimal(row.available()),
        below_reorder_point: row.available() <= row.reorder_point,
        update_time: Some(timestamp(row.updated_at)),
    }
}

/// The wire entry of a row.
pub fn movement(row: &MovementRow) -> Result<pb::StockMovement, Error> {
    let kind = match stored("movement kind", MovementKind::parse(&row.kind))? {
        MovementKind::Receipt => pb::MovementKind::Receipt,
        MovementKind::Issue => pb::MovementKind::Issue,
        MovementKind::Adjustment => pb::MovementKind::Adjustment,
        MovementKind::TransferOut => pb::MovementKind::TransferOut,
        MovementKind::TransferIn => pb::MovementKind::TransferIn,
        MovementKind::Reserve => pb::MovementKind::Reserve,
        MovementKind::Release => pb::MovementKind::Release,
        MovementKind::Consume => pb::MovementKind::Consume,
    };
    Ok(pb::StockMovement {
        id: row.id.to_string(),
        warehouse_id: row.warehouse_id.to_string(),
        material_id: row.material_id.to_string(),
        kind: kind as i32,
        on_hand_change: decimal(row.on_hand_change),
        reserved_change: decimal(row.reserved_change),
        on_hand_after: decimal(row.on_hand_after),
        reserved_after: decimal(row.reserved_after),
        reason: row.reason.clone(),
        reference: match (&row.reference_type, row.reference_id) {
            (Some(kind), Some(id)) => Some(pb::Reference {
                r#type: kind.clone(),
                id: id.to_string(),
            }),
            _ => None,
        },
        idempotency_key: row.idempotency_key.to_string(),
        create_time: Some(timestamp(row.created_at)),
    })
}

/// The wire reservation of a row.
pub fn reservation(row: &ReservationRow) -> Result<pb::Reservation, Error> {
    let status = match stored("reservation status", ReservationStatus::parse(&row.status))? {
        ReservationStatus::Held => pb::ReservationStatus::Held,
        ReservationStatus::Released => pb::ReservationStatus::Released,
        ReservationStatus::Consumed => pb::ReservationStatus::Consumed,
    };
    Ok(pb::Reservation {
        id: row.id.to_string(),
        shipment_id: row.shipment_id.to_string(),
        warehouse_id: row.warehouse_id.to_string(),
        material_id: row.material_id.to_string(),
        quantity: decimal(row.quantity),
        status: status as i32,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
    })
}

/// The wire link of a row.
pub fn link(row: &LinkRow) -> pb::MaterialSupplier {
    pb::MaterialSupplier {
        id: row.id.to_string(),
        material_id: row.material_id.to_string(),
        supplier_id: row.supplier_id.to_string(),
        supplier_sku: row.supplier_sku.clone(),
        lead_time_days: row.lead_time_days,
        unit_price: Some(types::Money {
            currency_code: row.currency_code.clone(),
            amount_minor: row.unit_price_minor,
        }),
        preferred: row.preferred,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    }
}
