//! Partners: create (idempotent), get, list, update (mask + etag), soft delete, undelete, roles,
//! tax-id lookup and batch get.

use std::collections::HashMap;

use logistics_platform::aip;
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations};
use logistics_platform::fields::{CountryCode, CurrencyCode, DisplayName};
use logistics_proto::partner::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::{State, convert};
use crate::domain::partner::{self as domain, NewPartner, PartnerStatus, TaxId};
use crate::sealing::Column;
use crate::store::IDEMPOTENCY;
use crate::store::partners::{
    self, Condition, ListQuery, Order, PartnerChanges, PartnerRow, SealedTaxId,
};

const CREATE_PARTNER: &str = "CreatePartner";
/// Most ids one BatchGetPartners may ask for.
const MAX_BATCH: usize = 1000;

/// Creates a partner with its roles; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_partner(
    state: &State,
    caller: &Caller,
    request: pb::CreatePartnerRequest,
) -> Result<pb::CreatePartnerResponse, Error> {
    caller.require(Permission::PartnersWrite)?;
    let (request_id, new) = parse_new_partner(&request)?;
    // Keyed, so the tax id counts without a guessable hash of it being stored.
    let fingerprint = state
        .sealer
        .request_fingerprint(CREATE_PARTNER, &request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay_sealed(
            &mut tx,
            &state.sealer,
            caller.tenant_id,
            CREATE_PARTNER,
            request_id,
            &fingerprint,
        )
        .await?
    {
        return Ok(first);
    }
    let id = Uuid::now_v7();
    let sealed = new
        .tax_id
        .as_ref()
        .map(|tax_id| seal_tax_id(state, caller.tenant_id, id, new.country.as_str(), tax_id));
    let row = partners::insert(&mut tx, id, &new, sealed.as_ref())
        .await
        .map_err(|e| e.nested("partner"))?;
    let response = pb::CreatePartnerResponse {
        partner: Some(convert::partner(&state.sealer, &row)?),
    };
    IDEMPOTENCY
        .record_sealed(
            &mut tx,
            &state.sealer,
            caller.tenant_id,
            CREATE_PARTNER,
            request_id,
            &response,
        )
        .await?;
    tx.commit().await?;
    tracing::info!(partner_id = %id, "partner created");
    Ok(response)
}

fn seal_tax_id(
    state: &State,
    tenant_id: Uuid,
    partner_id: Uuid,
    country: &str,
    tax_id: &TaxId,
) -> SealedTaxId {
    SealedTaxId {
        ciphertext: state
            .sealer
            .seal(Column::PartnerTaxId, tenant_id, partner_id, tax_id.as_str()),
        index: crate::sealing::tax_id_index(&state.sealer, country, tax_id.as_str()),
    }
}

fn parse_new_partner(
    request: &pb::CreatePartnerRequest,
) -> Result<(Option<Uuid>, NewPartner), Error> {
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let empty = pb::Partner::default();
    let p = request.partner.as_ref().unwrap_or(&empty);
    let kind = v.check(convert::kind_from_proto("partner.kind", p.kind));
    let legal_name = v.check(domain::legal_name("partner.legal_name", &p.legal_name));
    let display_name = v.check(DisplayName::parse("partner.display_name", &p.display_name));
    let tax_id = if p.tax_id.trim().is_empty() {
        None
    } else {
        v.check(TaxId::parse("partner.tax_id", &p.tax_id))
    };
    let country = v.check(CountryCode::parse("partner.country_code", &p.country_code));
    let currency = v.check(CurrencyCode::parse(
        "partner.default_currency_code",
        &p.default_currency_code,
    ));
    let status = if p.status == 0 {
        Some(PartnerStatus::Active)
    } else {
        v.check(convert::status_from_proto("partner.status", p.status))
    };
    let mut roles = Vec::new();
    for (i, value) in request.roles.iter().enumerate() {
        if let Some(role) = v.check(convert::role_from_proto(&format!("roles[{i}]"), *value))
            && !roles.contains(&role)
        {
            roles.push(role);
        }
    }
    v.finish()?;
    match (kind, legal_name, display_name, country, currency, status) {
        (
            Some(kind),
            Some(legal_name),
            Some(display_name),
            Some(country),
            Some(currency),
            Some(status),
        ) => Ok((
            request_id,
            NewPartner {
                kind,
                legal_name,
                display_name,
                tax_id,
                country,
                currency,
                status,
                roles,
            },
        )),
        _ => Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        ))),
    }
}

/// One partner, deleted or not.
pub async fn get_partner(
    state: &State,
    caller: &Caller,
    request: pb::GetPartnerRequest,
) -> Result<pb::GetPartnerResponse, Error> {
    caller.require(Permission::PartnersRead)?;
    let id = parse_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = partners::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(partners::KIND, id)))?;
    Ok(pb::GetPartnerResponse {
        partner: Some(convert::partner(&state.sealer, &row)?),
    })
}

/// One keyset page of partners.
pub async fn list_partners(
    state: &State,
    caller: &Caller,
    request: pb::ListPartnersRequest,
) -> Result<pb::ListPartnersResponse, Error> {
    caller.require(Permission::PartnersRead)?;
    let page_size = aip::page_size(request.page_size).map_err(|v| Error::Invalid(vec![v]))?;
    let conditions = parse_partner_filter(&request.filter)?;
    let (order_field, descending) = aip::parse_order_by(
        &request.order_by,
        &["display_name", "create_time"],
        "display_name",
    )?;
    let order = if order_field == "create_time" {
        Order::CreateTime
    } else {
        Order::DisplayName
    };
    let listing = format!(
        "partners|{}|{order_field}|{descending}|{}",
        request.filter, request.show_deleted
    );
    let after = state.page_tokens.decode(&listing, &request.page_token)?;
    let query = ListQuery {
        conditions,
        order,
        descending,
        show_deleted: request.show_deleted,
        after,
        limit: page_size + 1,
    };
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let mut rows = partners::list(&mut tx, &query).await?;
    tx.commit().await?;
    let has_more = rows.len() as i64 > page_size;
    rows.truncate(page_size as usize);
    let next_page_token = match rows.last() {
        Some(last) if has_more => state
            .page_tokens
            .encode(&listing, &partners::cursor_after(last, order)),
        _ => String::new(),
    };
    Ok(pb::ListPartnersResponse {
        partners: rows
            .iter()
            .map(|row| convert::partner(&state.sealer, row))
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

fn parse_partner_filter(filter: &str) -> Result<Vec<Condition>, Error> {
    aip::parse_filter(filter)?
        .into_iter()
        .map(|c| {
            let bad = |what: &str| Error::invalid("filter", format!("{} is not {what}", c.value));
            match c.field.as_str() {
                "role" => pb::PartnerRole::from_str_name(&c.value)
                    .and_then(|r| convert::role_from_proto("filter", r as i32).ok())
                    .map(|role| Condition::Role(role, c.negated))
                    .ok_or_else(|| bad("a role such as PARTNER_ROLE_SUPPLIER")),
                "status" => pb::PartnerStatus::from_str_name(&c.value)
                    .and_then(|s| convert::status_from_proto("filter", s as i32).ok())
                    .map(|status| Condition::Status(status, c.negated))
                    .ok_or_else(|| bad("a status such as PARTNER_STATUS_ACTIVE")),
                "country_code" => CountryCode::parse("filter", &c.value)
                    .map(|code| Condition::Country(code.as_str().to_owned(), c.negated))
                    .map_err(|_| bad("an ISO 3166-1 alpha-2 country code")),
                "display_name" => Ok(match c.value.strip_suffix('*') {
                    Some(prefix) => Condition::NamePrefix(prefix.to_owned(), c.negated),
                    None => Condition::NameIs(c.value.clone(), c.negated),
                }),
                other => Err(Error::invalid(
                    "filter",
                    format!("cannot filter on {other}; filterable fields: role, status, country_code, display_name"),
                )),
            }
        })
        .collect()
}

/// Fields UpdatePartner may change, and the one customer and supplier users may change.
const UPDATABLE: &[&str] = &[
    "kind",
    "legal_name",
    "display_name",
    "tax_id",
    "country_code",
    "default_currency_code",
    "status",
];
const SELF_SERVICE: &[&str] = &["display_name"];

/// Changes the masked fields of a partner if the etag is current. Changing the country of a
/// partner with a tax id re-keys its blind index; the tax id itself stays sealed as it was.
#[tracing::instrument(skip_all)]
pub async fn update_partner(
    state: &State,
    caller: &Caller,
    request: pb::UpdatePartnerRequest,
) -> Result<pb::UpdatePartnerResponse, Error> {
    let paths = aip::field_mask(request.update_mask.as_ref(), UPDATABLE)?;
    if !caller.can(Permission::PartnersWrite) {
        // External users may rename their own partner; row-level security keeps them to it.
        let self_service = caller.partner_id.is_some()
            && caller.can(Permission::PartnerContactsWrite)
            && paths.iter().all(|p| SELF_SERVICE.contains(p));
        if !self_service {
            return Err(Error::PermissionDenied(Permission::PartnersWrite.as_str()));
        }
    }
    let p = request.partner.unwrap_or_default();
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("partner.id", &p.id));
    let version = v.check(aip::parse_etag("partner.etag", &p.etag)).flatten();
    let mut changes = PartnerChanges::default();
    let mut new_tax_id: Option<Option<TaxId>> = None;
    for path in &paths {
        match *path {
            "kind" => changes.kind = v.check(convert::kind_from_proto("partner.kind", p.kind)),
            "legal_name" => {
                changes.legal_name = v
                    .check(domain::legal_name("partner.legal_name", &p.legal_name))
                    .map(|t| t.into_string())
            }
            "display_name" => {
                changes.display_name = v
                    .check(DisplayName::parse("partner.display_name", &p.display_name))
                    .map(|n| n.as_str().to_owned())
            }
            "tax_id" => {
                new_tax_id = if p.tax_id.trim().is_empty() {
                    Some(None)
                } else {
                    v.check(TaxId::parse("partner.tax_id", &p.tax_id)).map(Some)
                }
            }
            "country_code" => {
                changes.country_code = v
                    .check(CountryCode::parse("partner.country_code", &p.country_code))
                    .map(|c| c.as_str().to_owned())
            }
            "default_currency_code" => {
                changes.currency_code = v
                    .check(CurrencyCode::parse(
                        "partner.default_currency_code",
                        &p.default_currency_code,
                    ))
                    .map(|c| c.as_str().to_owned())
            }
            "status" => {
                changes.status = v.check(convert::status_from_proto("partner.status", p.status))
            }
            _ => {}
        }
    }
    v.finish()?;
    let id = id.ok_or_else(|| anyhow::anyhow!("id parsed without violation"))?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = partners::get_live(&mut tx, id).await?;
    let country = changes
        .country_code
        .clone()
        .unwrap_or_else(|| current.country_code.clone());
    changes.tax_id = match new_tax_id {
        Some(Some(tax_id)) => Some(Some(seal_tax_id(
            state,
            caller.tenant_id,
            id,
            &country,
            &tax_id,
        ))),
        Some(None) => Some(None),
        // A new country re-keys the blind index of the tax id the partner already has.
        None if changes.country_code.is_some() => match &current.tax_id_ciphertext {
            Some(ciphertext) => {
                let plain =
                    state
                        .sealer
                        .open(Column::PartnerTaxId, current.tenant_id, id, ciphertext)?;
                // Sealed afresh, with the active key: writing back the ciphertext read above
                // could undo a re-seal that a key rotation committed in between.
                Some(Some(seal_tax_id(
                    state,
                    caller.tenant_id,
                    id,
                    &country,
                    &TaxId::from_stored(plain),
                )))
            }
            None => None,
        },
        None => None,
    };
    let row = partners::update(&mut tx, id, version, &changes)
        .await
        .map_err(|e| e.nested("partner"))?;
    tx.commit().await?;
    Ok(pb::UpdatePartnerResponse {
        partner: Some(convert::partner(&state.sealer, &row)?),
    })
}

/// Soft-deletes a partner.
#[tracing::instrument(skip_all)]
pub async fn delete_partner(
    state: &State,
    caller: &Caller,
    request: pb::DeletePartnerRequest,
) -> Result<pb::DeletePartnerResponse, Error> {
    caller.require(Permission::PartnersWrite)?;
    let (id, version) = id_and_etag(&request.id, &request.etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = partners::soft_delete(&mut tx, id, version).await?;
    tx.commit().await?;
    Ok(pb::DeletePartnerResponse {
        partner: Some(convert::partner(&state.sealer, &row)?),
    })
}

/// Restores a soft-deleted partner.
#[tracing::instrument(skip_all)]
pub async fn undelete_partner(
    state: &State,
    caller: &Caller,
    request: pb::UndeletePartnerRequest,
) -> Result<pb::UndeletePartnerResponse, Error> {
    caller.require(Permission::PartnersWrite)?;
    let (id, version) = id_and_etag(&request.id, &request.etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = partners::undelete(&mut tx, id, version)
        .await
        .map_err(|e| e.nested("partner"))?;
    tx.commit().await?;
    Ok(pb::UndeletePartnerResponse {
        partner: Some(convert::partner(&state.sealer, &row)?),
    })
}

/// Adds a role (idempotent).
#[tracing::instrument(skip_all)]
pub async fn add_partner_role(
    state: &State,
    caller: &Caller,
    request: pb::AddPartnerRoleRequest,
) -> Result<pb::AddPartnerRoleResponse, Error> {
    let row = change_role(state, caller, &request.partner_id, request.role, true).await?;
    Ok(pb::AddPartnerRoleResponse {
        partner: Some(convert::partner(&state.sealer, &row)?),
    })
}

/// Removes a role (idempotent); FAILED_PRECONDITION while a profile of that role exists.
#[tracing::instrument(skip_all)]
pub async fn remove_partner_role(
    state: &State,
    caller: &Caller,
    request: pb::RemovePartnerRoleRequest,
) -> Result<pb::RemovePartnerRoleResponse, Error> {
    let row = change_role(state, caller, &request.partner_id, request.role, false).await?;
    Ok(pb::RemovePartnerRoleResponse {
        partner: Some(convert::partner(&state.sealer, &row)?),
    })
}

async fn change_role(
    state: &State,
    caller: &Caller,
    partner_id: &str,
    role: i32,
    add: bool,
) -> Result<PartnerRow, Error> {
    caller.require(Permission::PartnersWrite)?;
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("partner_id", partner_id));
    let role = v.check(convert::role_from_proto("role", role));
    v.finish()?;
    let (Some(id), Some(role)) = (id, role) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        )));
    };
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    partners::get_live(&mut tx, id).await?;
    if add {
        partners::add_role(&mut tx, id, role).await?;
    } else {
        partners::remove_role(&mut tx, id, role).await?;
    }
    let row = partners::get_live(&mut tx, id).await?;
    tx.commit().await?;
    Ok(row)
}

/// The live partner with this tax id in this country, found through the blind index.
pub async fn lookup_partner_by_tax_id(
    state: &State,
    caller: &Caller,
    request: pb::LookupPartnerByTaxIdRequest,
) -> Result<pb::LookupPartnerByTaxIdResponse, Error> {
    caller.require(Permission::PartnersRead)?;
    let mut v = Violations::new();
    let country = v.check(CountryCode::parse("country_code", &request.country_code));
    let tax_id = v.check(TaxId::parse("tax_id", &request.tax_id));
    v.finish()?;
    let (Some(country), Some(tax_id)) = (country, tax_id) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        )));
    };
    let index = crate::sealing::tax_id_index(&state.sealer, country.as_str(), tax_id.as_str());
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = partners::find_by_tax_index(&mut tx, country.as_str(), &index).await?;
    tx.commit().await?;
    // The resource name is the country only: the tax id never goes into an error.
    let row = row.ok_or_else(|| {
        Error::NotFound(Resource::new(
            partners::KIND,
            format!("tax id in {}", country.as_str()),
        ))
    })?;
    Ok(pb::LookupPartnerByTaxIdResponse {
        partner: Some(convert::partner(&state.sealer, &row)?),
    })
}

/// Many live partners in the order asked (AIP-231: all or nothing).
pub async fn batch_get_partners(
    state: &State,
    caller: &Caller,
    request: pb::BatchGetPartnersRequest,
) -> Result<pb::BatchGetPartnersResponse, Error> {
    caller.require(Permission::PartnersRead)?;
    if request.ids.is_empty() || request.ids.len() > MAX_BATCH {
        return Err(Error::invalid(
            "ids",
            format!("must hold 1 to {MAX_BATCH} ids"),
        ));
    }
    let mut v = Violations::new();
    let ids: Vec<Uuid> = request
        .ids
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| v.check(aip::parse_id(&format!("ids[{i}]"), raw)))
        .collect();
    v.finish()?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let rows = partners::get_many(&mut tx, &ids).await?;
    tx.commit().await?;
    let by_id: HashMap<Uuid, &PartnerRow> = rows.iter().map(|r| (r.id, r)).collect();
    let partners = ids
        .iter()
        .map(|id| {
            let row = by_id
                .get(id)
                .ok_or_else(|| Error::NotFound(Resource::new(partners::KIND, id)))?;
            convert::partner(&state.sealer, row)
        })
        .collect::<Result<_, _>>()?;
    Ok(pb::BatchGetPartnersResponse { partners })
}

pub use logistics_platform::aip::{id_and_etag, require_id as parse_id};
