//! Between store rows and protobuf messages (opening sealed fields on the way), and between
//! proto and domain enums.

use logistics_platform::aip::etag;
use logistics_platform::{Error, FieldViolation};
use logistics_proto::partner::v1 as pb;
use logistics_proto::r#type::v1 as types;

use crate::domain::address::AddressKind;
use crate::domain::partner::{PartnerKind, PartnerRole, PartnerStatus};
use crate::sealing::{Column, Sealer};
use crate::store::addresses::AddressRow;
use crate::store::contacts::ContactRow;
use crate::store::partners::PartnerRow;
use crate::store::profiles::ProfileRow;

pub use logistics_platform::wire::timestamp;

use logistics_platform::wire::known;

/// The domain kind of a wire kind.
pub fn kind_from_proto(field: &str, value: i32) -> Result<PartnerKind, FieldViolation> {
    match known::<pb::PartnerKind>(field, value)? {
        pb::PartnerKind::Unspecified => Err(FieldViolation::new(field, "is required")),
        pb::PartnerKind::Organization => Ok(PartnerKind::Organization),
        pb::PartnerKind::Person => Ok(PartnerKind::Person),
    }
}

/// The domain status of a wire status.
pub fn status_from_proto(field: &str, value: i32) -> Result<PartnerStatus, FieldViolation> {
    match known::<pb::PartnerStatus>(field, value)? {
        pb::PartnerStatus::Unspecified => Err(FieldViolation::new(field, "is required")),
        pb::PartnerStatus::Active => Ok(PartnerStatus::Active),
        pb::PartnerStatus::Inactive => Ok(PartnerStatus::Inactive),
        pb::PartnerStatus::Blocked => Ok(PartnerStatus::Blocked),
    }
}

/// The domain role of a wire role.
pub fn role_from_proto(field: &str, value: i32) -> Result<PartnerRole, FieldViolation> {
    match known::<pb::PartnerRole>(field, value)? {
        pb::PartnerRole::Unspecified => Err(FieldViolation::new(field, "is required")),
        pb::PartnerRole::Supplier => Ok(PartnerRole::Supplier),
        pb::PartnerRole::Customer => Ok(PartnerRole::Customer),
        pb::PartnerRole::Carrier => Ok(PartnerRole::Carrier),
    }
}

/// The domain address kind of a wire kind.
pub fn address_kind_from_proto(field: &str, value: i32) -> Result<AddressKind, FieldViolation> {
    match known::<pb::AddressKind>(field, value)? {
        pb::AddressKind::Unspecified => Err(FieldViolation::new(field, "is required")),
        pb::AddressKind::Billing => Ok(AddressKind::Billing),
        pb::AddressKind::Shipping => Ok(AddressKind::Shipping),
        pb::AddressKind::Pickup => Ok(AddressKind::Pickup),
    }
}

fn kind_to_proto(stored: &str) -> pb::PartnerKind {
    match PartnerKind::parse(stored) {
        Some(PartnerKind::Organization) => pb::PartnerKind::Organization,
        Some(PartnerKind::Person) => pb::PartnerKind::Person,
        None => pb::PartnerKind::Unspecified,
    }
}

fn status_to_proto(stored: &str) -> pb::PartnerStatus {
    match PartnerStatus::parse(stored) {
        Some(PartnerStatus::Active) => pb::PartnerStatus::Active,
        Some(PartnerStatus::Inactive) => pb::PartnerStatus::Inactive,
        Some(PartnerStatus::Blocked) => pb::PartnerStatus::Blocked,
        None => pb::PartnerStatus::Unspecified,
    }
}

/// The wire role of a domain role.
pub fn role_to_proto(role: PartnerRole) -> pb::PartnerRole {
    match role {
        PartnerRole::Supplier => pb::PartnerRole::Supplier,
        PartnerRole::Customer => pb::PartnerRole::Customer,
        PartnerRole::Carrier => pb::PartnerRole::Carrier,
    }
}

fn address_kind_to_proto(stored: &str) -> pb::AddressKind {
    match AddressKind::parse(stored) {
        Some(AddressKind::Billing) => pb::AddressKind::Billing,
        Some(AddressKind::Shipping) => pb::AddressKind::Shipping,
        Some(AddressKind::Pickup) => pb::AddressKind::Pickup,
        None => pb::AddressKind::Unspecified,
    }
}

/// A partner message, with its tax id opened.
pub fn partner(sealer: &Sealer, row: &PartnerRow) -> Result<pb::Partner, Error> {
    Ok(pb::Partner {
        id: row.id.to_string(),
        kind: kind_to_proto(&row.kind) as i32,
        legal_name: row.legal_name.clone(),
        display_name: row.display_name.clone(),
        tax_id: sealer.open_optional(
            Column::PartnerTaxId,
            row.tenant_id,
            row.id,
            row.tax_id_ciphertext.as_deref(),
        )?,
        country_code: row.country_code.clone(),
        default_currency_code: row.default_currency_code.clone(),
        status: status_to_proto(&row.status) as i32,
        roles: row
            .roles()
            .into_iter()
            .map(|r| role_to_proto(r) as i32)
            .collect(),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    })
}

fn money(amount: Option<i64>, currency: Option<&str>) -> Option<types::Money> {
    match (amount, currency) {
        (Some(amount_minor), Some(code)) => Some(types::Money {
            currency_code: code.to_owned(),
            amount_minor,
        }),
        _ => None,
    }
}

/// A supplier profile message.
pub fn supplier_profile(row: &ProfileRow) -> pb::SupplierProfile {
    pb::SupplierProfile {
        partner_id: row.partner_id.to_string(),
        payment_terms_days: row.payment_terms_days,
        lead_time_days: row.lead_time_days,
        credit_limit: money(row.credit_limit_minor, row.credit_currency_code.as_deref()),
        rating: row.rating.map(i32::from).unwrap_or(0),
        notes: row.notes.clone(),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        etag: etag(row.version),
    }
}

/// A customer profile message.
pub fn customer_profile(row: &ProfileRow) -> pb::CustomerProfile {
    pb::CustomerProfile {
        partner_id: row.partner_id.to_string(),
        payment_terms_days: row.payment_terms_days,
        credit_limit: money(row.credit_limit_minor, row.credit_currency_code.as_deref()),
        rating: row.rating.map(i32::from).unwrap_or(0),
        notes: row.notes.clone(),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        etag: etag(row.version),
    }
}

/// A contact message, with e-mail and phone opened.
pub fn contact(sealer: &Sealer, row: &ContactRow) -> Result<pb::Contact, Error> {
    Ok(pb::Contact {
        id: row.id.to_string(),
        partner_id: row.partner_id.to_string(),
        name: row.name.clone(),
        job_title: row.job_title.clone(),
        email: sealer.open_optional(
            Column::ContactEmail,
            row.tenant_id,
            row.id,
            row.email_ciphertext.as_deref(),
        )?,
        phone: sealer.open_optional(
            Column::ContactPhone,
            row.tenant_id,
            row.id,
            row.phone_ciphertext.as_deref(),
        )?,
        primary: row.is_primary,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    })
}

/// An address message.
pub fn address(row: &AddressRow) -> pb::Address {
    pb::Address {
        id: row.id.to_string(),
        partner_id: row.partner_id.to_string(),
        kind: address_kind_to_proto(&row.kind) as i32,
        line1: row.line1.clone(),
        line2: row.line2.clone(),
        city: row.city.clone(),
        region: row.region.clone(),
        postal_code: row.postal_code.clone(),
        country_code: row.country_code.clone(),
        location: match (row.latitude, row.longitude) {
            (Some(latitude), Some(longitude)) => Some(pb::LatLng {
                latitude,
                longitude,
            }),
            _ => None,
        },
        default: row.is_default,
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
    }
}
