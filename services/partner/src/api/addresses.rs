//! Addresses of a partner; making one the default of its kind demotes the previous default in
//! the same transaction.

use logistics_platform::aip;
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, FieldViolation, Resource, Violations};
use logistics_platform::fields::{CountryCode, LatLng};
use logistics_proto::partner::v1 as pb;
use uuid::Uuid;

use super::partners::{id_and_etag, parse_id};
use super::{State, convert};
use crate::domain::address::{self, AddressFields, AddressKind};
use crate::store::addresses::{self as store, AddressRow};
use crate::store::{IDEMPOTENCY, partners};

const CREATE_ADDRESS: &str = "CreateAddress";
const UPDATABLE: &[&str] = &[
    "kind",
    "line1",
    "line2",
    "city",
    "region",
    "postal_code",
    "country_code",
    "location",
    "default",
];

/// Parses the fields of `a` named in `paths`, into `fields`, recording every violation.
fn apply(v: &mut Violations, paths: &[&str], a: &pb::Address, fields: &mut PartialAddress) {
    for path in paths {
        match *path {
            "kind" => {
                fields.kind = v.check(convert::address_kind_from_proto("address.kind", a.kind))
            }
            "line1" => fields.line1 = v.check(address::line1("address.line1", &a.line1)),
            "line2" => fields.line2 = v.check(address::line2("address.line2", &a.line2)),
            "city" => fields.city = v.check(address::city("address.city", &a.city)),
            "region" => fields.region = v.check(address::region("address.region", &a.region)),
            "postal_code" => {
                fields.postal_code =
                    v.check(address::postal_code("address.postal_code", &a.postal_code))
            }
            "country_code" => {
                fields.country =
                    v.check(CountryCode::parse("address.country_code", &a.country_code))
            }
            "location" => {
                fields.location = Some(match &a.location {
                    None => None,
                    Some(l) => match LatLng::parse("address.location", l.latitude, l.longitude) {
                        Ok(l) => Some(l),
                        Err(violations) => {
                            violations.into_iter().for_each(|x| v.push(x));
                            None
                        }
                    },
                })
            }
            "default" => fields.default = Some(a.default),
            _ => {}
        }
    }
}

/// Address fields as parsed so far; `None` is "not given".
#[derive(Default)]
struct PartialAddress {
    kind: Option<AddressKind>,
    line1: Option<logistics_platform::fields::Text>,
    line2: Option<logistics_platform::fields::Text>,
    city: Option<logistics_platform::fields::Text>,
    region: Option<logistics_platform::fields::Text>,
    postal_code: Option<logistics_platform::fields::Text>,
    country: Option<CountryCode>,
    location: Option<Option<LatLng>>,
    default: Option<bool>,
}

impl PartialAddress {
    /// The complete fields, taking what was not given from `current`.
    fn complete(self, current: Option<&AddressRow>) -> Result<AddressFields, Error> {
        let missing = || Error::Internal(anyhow::anyhow!("address field neither given nor stored"));
        let stored =
            |f: fn(&str, &str) -> Result<logistics_platform::fields::Text, FieldViolation>,
             field: &str,
             value: Option<&str>| {
                value
                    .map(|v| f(field, v).map_err(|x| Error::Invalid(vec![x])))
                    .transpose()
            };
        Ok(AddressFields {
            kind: match self.kind {
                Some(k) => k,
                None => current
                    .and_then(|c| AddressKind::parse(&c.kind))
                    .ok_or_else(missing)?,
            },
            line1: match self.line1 {
                Some(t) => t,
                None => stored(
                    address::line1,
                    "address.line1",
                    current.map(|c| c.line1.as_str()),
                )?
                .ok_or_else(missing)?,
            },
            line2: match self.line2 {
                Some(t) => t,
                None => stored(
                    address::line2,
                    "address.line2",
                    Some(current.map_or("", |c| c.line2.as_str())),
                )?
                .ok_or_else(missing)?,
            },
            city: match self.city {
                Some(t) => t,
                None => stored(
                    address::city,
                    "address.city",
                    current.map(|c| c.city.as_str()),
                )?
                .ok_or_else(missing)?,
            },
            region: match self.region {
                Some(t) => t,
                None => stored(
                    address::region,
                    "address.region",
                    Some(current.map_or("", |c| c.region.as_str())),
                )?
                .ok_or_else(missing)?,
            },
            postal_code: match self.postal_code {
                Some(t) => t,
                None => stored(
                    address::postal_code,
                    "address.postal_code",
                    Some(current.map_or("", |c| c.postal_code.as_str())),
                )?
                .ok_or_else(missing)?,
            },
            country: match self.country {
                Some(c) => c,
                None => current
                    .map(|c| CountryCode::parse("address.country_code", &c.country_code))
                    .transpose()
                    .map_err(|x| Error::Invalid(vec![x]))?
                    .ok_or_else(missing)?,
            },
            location: match self.location {
                Some(l) => l,
                None => current.and_then(|c| match (c.latitude, c.longitude) {
                    (Some(latitude), Some(longitude)) => Some(LatLng {
                        latitude,
                        longitude,
                    }),
                    _ => None,
                }),
            },
            default: self
                .default
                .or(current.map(|c| c.is_default))
                .unwrap_or(false),
        })
    }
}

/// Adds an address to a live partner; the same `request_id` again answers with the first.
#[tracing::instrument(skip_all)]
pub async fn create_address(
    state: &State,
    caller: &Caller,
    request: pb::CreateAddressRequest,
) -> Result<pb::CreateAddressResponse, Error> {
    caller.require(Permission::PartnerContactsWrite)?;
    let a = request.address.clone().unwrap_or_default();
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let partner_id = v.check(aip::parse_id("address.partner_id", &a.partner_id));
    let mut partial = PartialAddress::default();
    apply(&mut v, UPDATABLE, &a, &mut partial);
    v.finish()?;
    let partner_id = partner_id.ok_or_else(|| anyhow::anyhow!("id parsed without violation"))?;
    let fields = partial.complete(None)?;
    let fingerprint = aip::request_fingerprint(&prost::Message::encode_to_vec(&request));

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    // Before any replay: a caller confined to one partner gets nothing of another's.
    partners::get_live(&mut tx, partner_id).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_ADDRESS, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    let id = Uuid::now_v7();
    if fields.default {
        store::demote_default(&mut tx, partner_id, fields.kind, id).await?;
    }
    let row = store::insert(&mut tx, id, partner_id, &fields).await?;
    let response = pb::CreateAddressResponse {
        address: Some(convert::address(&row)),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_ADDRESS, request_id, &response)
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One address, deleted or not.
pub async fn get_address(
    state: &State,
    caller: &Caller,
    request: pb::GetAddressRequest,
) -> Result<pb::GetAddressResponse, Error> {
    caller.require(Permission::PartnersRead)?;
    let id = parse_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetAddressResponse {
        address: Some(convert::address(&row)),
    })
}

/// One keyset page of a partner's addresses, optionally of one kind.
pub async fn list_addresses(
    state: &State,
    caller: &Caller,
    request: pb::ListAddressesRequest,
) -> Result<pb::ListAddressesResponse, Error> {
    caller.require(Permission::PartnersRead)?;
    let mut v = Violations::new();
    let partner_id = v.check(aip::parse_id("partner_id", &request.partner_id));
    let page_size = v.check(aip::page_size(request.page_size));
    v.finish()?;
    let (Some(partner_id), Some(page_size)) = (partner_id, page_size) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        )));
    };
    let mut kind = None;
    for c in aip::parse_filter(&request.filter)? {
        let parsed = (c.field == "kind" && !c.negated)
            .then(|| pb::AddressKind::from_str_name(&c.value))
            .flatten()
            .and_then(|k| convert::address_kind_from_proto("filter", k as i32).ok());
        match parsed {
            Some(k) if kind.is_none() => kind = Some(k),
            _ => {
                return Err(Error::invalid(
                    "filter",
                    "only `kind = ADDRESS_KIND_...` is supported",
                ));
            }
        }
    }
    let listing = format!(
        "addresses|{partner_id}|{}|{}",
        request.filter, request.show_deleted
    );
    let after: Option<store::Cursor> = state.page_tokens.decode(&listing, &request.page_token)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    // A deleted partner's children are hidden with it.
    partners::get_live(&mut tx, partner_id).await?;
    let mut rows = store::list(
        &mut tx,
        partner_id,
        kind,
        request.show_deleted,
        after.as_ref(),
        page_size + 1,
    )
    .await?;
    tx.commit().await?;
    let has_more = rows.len() as i64 > page_size;
    rows.truncate(page_size as usize);
    let next_page_token = match rows.last() {
        Some(last) if has_more => state
            .page_tokens
            .encode(&listing, &store::cursor_after(last)),
        _ => String::new(),
    };
    Ok(pb::ListAddressesResponse {
        addresses: rows.iter().map(convert::address).collect(),
        next_page_token,
    })
}

/// Changes the masked fields of an address if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_address(
    state: &State,
    caller: &Caller,
    request: pb::UpdateAddressRequest,
) -> Result<pb::UpdateAddressResponse, Error> {
    caller.require(Permission::PartnerContactsWrite)?;
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    let a = request.address.unwrap_or_default();
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("address.id", &a.id));
    let version = v.check(aip::parse_etag("address.etag", &a.etag)).flatten();
    let mut partial = PartialAddress::default();
    apply(&mut v, &paths, &a, &mut partial);
    v.finish()?;
    let id = id.ok_or_else(|| anyhow::anyhow!("id parsed without violation"))?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get(&mut tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    let fields = partial.complete(Some(&current))?;
    let became_default =
        fields.default && (!current.is_default || current.kind != fields.kind.as_str());
    if became_default {
        store::demote_default(&mut tx, current.partner_id, fields.kind, id).await?;
    }
    let row = store::update(&mut tx, id, version, &fields).await?;
    tx.commit().await?;
    Ok(pb::UpdateAddressResponse {
        address: Some(convert::address(&row)),
    })
}

/// Soft-deletes an address.
#[tracing::instrument(skip_all)]
pub async fn delete_address(
    state: &State,
    caller: &Caller,
    request: pb::DeleteAddressRequest,
) -> Result<pb::DeleteAddressResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteAddressResponse {
        address: Some(convert::address(&row)),
    })
}

/// Restores a soft-deleted address.
#[tracing::instrument(skip_all)]
pub async fn undelete_address(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteAddressRequest,
) -> Result<pb::UndeleteAddressResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteAddressResponse {
        address: Some(convert::address(&row)),
    })
}

async fn set_deleted(
    state: &State,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<AddressRow, Error> {
    caller.require(Permission::PartnerContactsWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::set_deleted(&mut tx, id, version, deleted).await?;
    tx.commit().await?;
    Ok(row)
}
