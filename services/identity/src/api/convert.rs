//! Between store rows and protobuf messages, and between proto and domain enums.

use logistics_platform::FieldViolation;
use logistics_platform::aip::etag;
use logistics_platform::authz::Role;
use logistics_proto::identity::v1 as pb;
use time::OffsetDateTime;

use crate::store::signing_keys::KeyRow;
use crate::store::tenants::TenantRow;
use crate::store::users::UserRow;

pub use logistics_platform::wire::timestamp;

/// The wire role of a domain role.
pub fn role_to_proto(role: Role) -> pb::Role {
    match role {
        Role::Admin => pb::Role::Admin,
        Role::Dispatcher => pb::Role::Dispatcher,
        Role::WarehouseClerk => pb::Role::WarehouseClerk,
        Role::FleetManager => pb::Role::FleetManager,
        Role::Auditor => pb::Role::Auditor,
        Role::Customer => pb::Role::Customer,
        Role::Supplier => pb::Role::Supplier,
        Role::Driver => pb::Role::Driver,
        Role::PlatformAdmin => pb::Role::PlatformAdmin,
    }
}

/// The domain role of a wire role value; UNSPECIFIED and unknown numbers are violations.
pub fn role_from_proto(field: &str, value: i32) -> Result<Role, FieldViolation> {
    let role =
        pb::Role::try_from(value).map_err(|_| FieldViolation::new(field, "is not a known role"))?;
    Ok(match role {
        pb::Role::Unspecified => return Err(FieldViolation::new(field, "is required")),
        pb::Role::Admin => Role::Admin,
        pb::Role::Dispatcher => Role::Dispatcher,
        pb::Role::WarehouseClerk => Role::WarehouseClerk,
        pb::Role::FleetManager => Role::FleetManager,
        pb::Role::Auditor => Role::Auditor,
        pb::Role::Customer => Role::Customer,
        pb::Role::Supplier => Role::Supplier,
        pb::Role::Driver => Role::Driver,
        pb::Role::PlatformAdmin => Role::PlatformAdmin,
    })
}

/// The domain role named in a filter (`ROLE_ADMIN`).
pub fn role_from_name(name: &str) -> Option<Role> {
    pb::Role::from_str_name(name).and_then(|r| role_from_proto("filter", r as i32).ok())
}

/// A user message.
pub fn user(row: &UserRow) -> pb::User {
    let now = OffsetDateTime::now_utc();
    pb::User {
        id: row.id.to_string(),
        tenant_id: row.tenant_id.to_string(),
        email: row.email.clone(),
        display_name: row.display_name.clone(),
        roles: row
            .roles()
            .into_iter()
            .map(|r| role_to_proto(r) as i32)
            .collect(),
        partner_id: row.partner_id.map(|id| id.to_string()).unwrap_or_default(),
        driver_id: row.driver_id.map(|id| id.to_string()).unwrap_or_default(),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        delete_time: row.deleted_at.map(timestamp),
        etag: etag(row.version),
        locked: row.locked_until.is_some_and(|until| until > now),
    }
}

/// A tenant message.
pub fn tenant(row: &TenantRow) -> pb::Tenant {
    pb::Tenant {
        id: row.id.to_string(),
        display_name: row.display_name.clone(),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        etag: etag(row.version),
    }
}

/// A public key message (JWK members).
pub fn public_key(row: &KeyRow) -> Result<pb::PublicKey, logistics_platform::Error> {
    let key = crate::signer::verifying_key(row)?;
    Ok(pb::PublicKey {
        kid: key.kid.clone(),
        kty: "OKP".to_owned(),
        crv: "Ed25519".to_owned(),
        x: key.jwk_x(),
        alg: "EdDSA".to_owned(),
        create_time: Some(timestamp(row.created_at)),
        retire_time: row.retired_at.map(timestamp),
        active: row.retired_at.is_none(),
    })
}
