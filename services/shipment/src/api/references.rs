//! Checks of the ids a shipment refers to, asked of the services that own them: the customer
//! (a live, active partner holding the customer role), its address, the supplier, the origin
//! warehouse and the materials. A reference that does not resolve is FAILED_PRECONDITION naming
//! the request field; an unreachable owner is UNAVAILABLE.

use logistics_platform::Error;
use logistics_platform::decimal::{DecimalRule, Sign};
use logistics_platform::error::PreconditionViolation;
use logistics_proto::inventory::v1 as inventory;
use logistics_proto::partner::v1 as partner;
use rust_decimal::Decimal;
use uuid::Uuid;

use super::convert;
use crate::domain::shipment::AddressSnapshot;
use crate::peers::{CallContext, Peers};

fn refused(kind: &'static str, field: &str, description: impl Into<String>) -> Error {
    Error::Precondition(vec![PreconditionViolation {
        kind,
        subject: field.to_owned(),
        description: description.into(),
    }])
}

/// `field` names nothing its owner has (or lets the caller see).
pub fn unknown_reference(field: &str) -> Error {
    refused(
        "UNKNOWN_REFERENCE",
        field,
        format!("{field} names nothing the caller can see"),
    )
}

/// A peer's NOT_FOUND is the request's bad reference.
fn resolve<T>(field: &str, found: Result<T, Error>) -> Result<T, Error> {
    found.map_err(|e| match e {
        Error::NotFound(_) => unknown_reference(field),
        other => other,
    })
}

/// A live, active partner with `role`.
async fn partner_with_role(
    peers: &Peers,
    call: &CallContext,
    field: &str,
    id: Uuid,
    role: partner::PartnerRole,
    role_kind: &'static str,
) -> Result<partner::Partner, Error> {
    let p = resolve(field, peers.partner(call, &id.to_string()).await)?;
    if p.delete_time.is_some() {
        return Err(refused(
            "UNKNOWN_REFERENCE",
            field,
            format!("{field} names a deleted partner"),
        ));
    }
    if p.status != partner::PartnerStatus::Active as i32 {
        return Err(refused(
            "PARTNER_NOT_ACTIVE",
            field,
            "the partner is inactive or blocked",
        ));
    }
    if !p.roles.contains(&(role as i32)) {
        return Err(refused(
            role_kind,
            field,
            format!("the partner does not hold the {} role", role.as_str_name()),
        ));
    }
    Ok(p)
}

/// The customer must be a live, active partner holding the customer role.
pub async fn customer(
    peers: &Peers,
    call: &CallContext,
    field: &str,
    id: Uuid,
) -> Result<(), Error> {
    partner_with_role(
        peers,
        call,
        field,
        id,
        partner::PartnerRole::Customer,
        "NOT_A_CUSTOMER",
    )
    .await
    .map(|_| ())
}

/// The supplier must be a live, active partner holding the supplier role.
pub async fn supplier(
    peers: &Peers,
    call: &CallContext,
    field: &str,
    id: Uuid,
) -> Result<(), Error> {
    partner_with_role(
        peers,
        call,
        field,
        id,
        partner::PartnerRole::Supplier,
        "NOT_A_SUPPLIER",
    )
    .await
    .map(|_| ())
}

/// A live address of the customer, copied.
pub async fn destination(
    peers: &Peers,
    call: &CallContext,
    field: &str,
    address_id: Uuid,
    customer_id: Uuid,
) -> Result<AddressSnapshot, Error> {
    let a = resolve(field, peers.address(call, &address_id.to_string()).await)?;
    if a.delete_time.is_some() || a.partner_id != customer_id.to_string() {
        return Err(refused(
            "NOT_THE_CUSTOMERS_ADDRESS",
            field,
            "the address is not a live address of the shipment's customer",
        ));
    }
    convert::snapshot_of_partner_address(field, &a)
}

/// A live, active warehouse.
pub async fn warehouse(
    peers: &Peers,
    call: &CallContext,
    field: &str,
    id: Uuid,
) -> Result<(), Error> {
    let w = resolve(field, peers.warehouse(call, &id.to_string()).await)?;
    if w.delete_time.is_some() || w.status != inventory::WarehouseStatus::Active as i32 {
        return Err(refused(
            "WAREHOUSE_NOT_ACTIVE",
            field,
            "the warehouse is deleted or closed",
        ));
    }
    Ok(())
}

/// A material's unit weight and volume, as the item snapshots them.
#[derive(Debug, Clone, Copy)]
pub struct MaterialUnits {
    /// Kilograms per unit.
    pub weight_kg: Decimal,
    /// Cubic metres per unit.
    pub volume_m3: Decimal,
}

const UNIT: DecimalRule = DecimalRule {
    scale: 6,
    integer_digits: 10,
    sign: Sign::NonNegative,
};

/// A live, active material and its units.
pub async fn material(
    peers: &Peers,
    call: &CallContext,
    field: &str,
    id: Uuid,
) -> Result<MaterialUnits, Error> {
    let m = resolve(field, peers.material(call, &id.to_string()).await)?;
    if m.delete_time.is_some() || m.status != inventory::MaterialStatus::Active as i32 {
        return Err(refused(
            "MATERIAL_NOT_ACTIVE",
            field,
            "the material is deleted or discontinued",
        ));
    }
    let parse = |d: Option<&logistics_proto::r#type::v1::Decimal>| {
        UNIT.parse(field, d.map_or("0", |d| d.value.as_str()))
            .map_err(|_| anyhow::anyhow!("inventory sent a unit that is not a decimal"))
    };
    Ok(MaterialUnits {
        weight_kg: parse(m.unit_weight_kg.as_ref())?,
        volume_m3: parse(m.unit_volume_m3.as_ref())?,
    })
}
