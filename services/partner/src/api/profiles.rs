//! Supplier and customer profiles: read, upsert with a field mask, delete.

use logistics_platform::aip;
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations};
use logistics_proto::partner::v1 as pb;
use logistics_proto::r#type::v1 as types;
use uuid::Uuid;

use super::partners::parse_id;
use super::{State, convert};
use crate::domain::profile::{self, TermsChanges};
use crate::store::partners;
use crate::store::profiles::{self as store, ProfileKind, ProfileRow};

/// The wire fields of either profile, for one parse.
struct Terms<'a> {
    payment_terms_days: i32,
    lead_time_days: i32,
    credit_limit: Option<&'a types::Money>,
    rating: i32,
    notes: &'a str,
}

async fn get(
    state: &State,
    caller: &Caller,
    kind: ProfileKind,
    partner_id: &str,
) -> Result<ProfileRow, Error> {
    caller.require(Permission::PartnersRead)?;
    let partner_id = parse_id("partner_id", partner_id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    partners::get_live(&mut tx, partner_id).await?;
    let row = store::get(&mut tx, kind, partner_id).await?;
    tx.commit().await?;
    row.ok_or_else(|| Error::NotFound(Resource::new(kind.resource_kind(), partner_id)))
}

/// Parses the masked terms; `lead_time_days` only exists for suppliers.
fn parse_terms(
    kind: ProfileKind,
    paths: &[&str],
    terms: &Terms<'_>,
) -> Result<TermsChanges, Error> {
    let mut v = Violations::new();
    let mut changes = TermsChanges::default();
    for path in paths {
        match *path {
            "payment_terms_days" => {
                changes.payment_terms_days = v.check(profile::days(
                    "profile.payment_terms_days",
                    terms.payment_terms_days,
                ))
            }
            "lead_time_days" if kind == ProfileKind::Supplier => {
                changes.lead_time_days = v.check(profile::days(
                    "profile.lead_time_days",
                    terms.lead_time_days,
                ))
            }
            "credit_limit" => {
                changes.credit_limit = v.check(profile::credit_limit(
                    "profile.credit_limit",
                    terms
                        .credit_limit
                        .map(|m| (m.currency_code.as_str(), m.amount_minor)),
                ))
            }
            "rating" => changes.rating = v.check(profile::rating("profile.rating", terms.rating)),
            "notes" => changes.notes = v.check(profile::notes("profile.notes", terms.notes)),
            _ => {}
        }
    }
    v.finish()?;
    Ok(changes)
}

/// Upsert: with `allow_missing` a partner holding the role gets a profile on first write.
async fn update(
    state: &State,
    caller: &Caller,
    kind: ProfileKind,
    partner_id: &str,
    etag: &str,
    allow_missing: bool,
    changes: TermsChanges,
) -> Result<ProfileRow, Error> {
    caller.require(Permission::PartnersWrite)?;
    let mut v = Violations::new();
    let partner_id = v.check(aip::parse_id("profile.partner_id", partner_id));
    let version = v.check(aip::parse_etag("profile.etag", etag)).flatten();
    v.finish()?;
    let partner_id: Uuid =
        partner_id.ok_or_else(|| anyhow::anyhow!("id parsed without violation"))?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    partners::get_live(&mut tx, partner_id).await?;
    let version = match store::get(&mut tx, kind, partner_id).await? {
        Some(_) => version,
        None if allow_missing => {
            store::create(&mut tx, kind, partner_id).await?;
            None
        }
        None => {
            return Err(Error::NotFound(Resource::new(
                kind.resource_kind(),
                partner_id,
            )));
        }
    };
    let row = store::update(&mut tx, kind, partner_id, version, &changes).await?;
    tx.commit().await?;
    Ok(row)
}

async fn delete(
    state: &State,
    caller: &Caller,
    kind: ProfileKind,
    partner_id: &str,
    etag: &str,
) -> Result<(), Error> {
    caller.require(Permission::PartnersWrite)?;
    let mut v = Violations::new();
    let partner_id = v.check(aip::parse_id("partner_id", partner_id));
    let version = v.check(aip::parse_etag("etag", etag)).flatten();
    v.finish()?;
    let partner_id = partner_id.ok_or_else(|| anyhow::anyhow!("id parsed without violation"))?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    // A deleted partner's profiles are hidden with it.
    partners::get_live(&mut tx, partner_id).await?;
    store::delete(&mut tx, kind, partner_id, version).await?;
    tx.commit().await?;
    Ok(())
}

/// The supplier profile.
pub async fn get_supplier_profile(
    state: &State,
    caller: &Caller,
    request: pb::GetSupplierProfileRequest,
) -> Result<pb::GetSupplierProfileResponse, Error> {
    let row = get(state, caller, ProfileKind::Supplier, &request.partner_id).await?;
    Ok(pb::GetSupplierProfileResponse {
        profile: Some(convert::supplier_profile(&row)),
    })
}

/// Creates or changes the supplier profile.
#[tracing::instrument(skip_all)]
pub async fn update_supplier_profile(
    state: &State,
    caller: &Caller,
    request: pb::UpdateSupplierProfileRequest,
) -> Result<pb::UpdateSupplierProfileResponse, Error> {
    let paths = aip::field_mask(
        request.update_mask.as_ref(),
        &[
            "payment_terms_days",
            "lead_time_days",
            "credit_limit",
            "rating",
            "notes",
        ],
    )?;
    let p = request.profile.unwrap_or_default();
    let terms = Terms {
        payment_terms_days: p.payment_terms_days,
        lead_time_days: p.lead_time_days,
        credit_limit: p.credit_limit.as_ref(),
        rating: p.rating,
        notes: &p.notes,
    };
    let changes = parse_terms(ProfileKind::Supplier, &paths, &terms)?;
    let row = update(
        state,
        caller,
        ProfileKind::Supplier,
        &p.partner_id,
        &p.etag,
        request.allow_missing,
        changes,
    )
    .await?;
    Ok(pb::UpdateSupplierProfileResponse {
        profile: Some(convert::supplier_profile(&row)),
    })
}

/// Removes the supplier profile.
#[tracing::instrument(skip_all)]
pub async fn delete_supplier_profile(
    state: &State,
    caller: &Caller,
    request: pb::DeleteSupplierProfileRequest,
) -> Result<pb::DeleteSupplierProfileResponse, Error> {
    delete(
        state,
        caller,
        ProfileKind::Supplier,
        &request.partner_id,
        &request.etag,
    )
    .await?;
    Ok(pb::DeleteSupplierProfileResponse {})
}

/// The customer profile.
pub async fn get_customer_profile(
    state: &State,
    caller: &Caller,
    request: pb::GetCustomerProfileRequest,
) -> Result<pb::GetCustomerProfileResponse, Error> {
    let row = get(state, caller, ProfileKind::Customer, &request.partner_id).await?;
    Ok(pb::GetCustomerProfileResponse {
        profile: Some(convert::customer_profile(&row)),
    })
}

/// Creates or changes the customer profile.
#[tracing::instrument(skip_all)]
pub async fn update_customer_profile(
    state: &State,
    caller: &Caller,
    request: pb::UpdateCustomerProfileRequest,
) -> Result<pb::UpdateCustomerProfileResponse, Error> {
    let paths = aip::field_mask(
        request.update_mask.as_ref(),
        &["payment_terms_days", "credit_limit", "rating", "notes"],
    )?;
    let p = request.profile.unwrap_or_default();
    let terms = Terms {
        payment_terms_days: p.payment_terms_days,
        lead_time_days: 0,
        credit_limit: p.credit_limit.as_ref(),
        rating: p.rating,
        notes: &p.notes,
    };
    let changes = parse_terms(ProfileKind::Customer, &paths, &terms)?;
    let row = update(
        state,
        caller,
        ProfileKind::Customer,
        &p.partner_id,
        &p.etag,
        request.allow_missing,
        changes,
    )
    .await?;
    Ok(pb::UpdateCustomerProfileResponse {
        profile: Some(convert::customer_profile(&row)),
    })
}

/// Removes the customer profile.
#[tracing::instrument(skip_all)]
pub async fn delete_customer_profile(
    state: &State,
    caller: &Caller,
    request: pb::DeleteCustomerProfileRequest,
) -> Result<pb::DeleteCustomerProfileResponse, Error> {
    delete(
        state,
        caller,
        ProfileKind::Customer,
        &request.partner_id,
        &request.etag,
    )
    .await?;
    Ok(pb::DeleteCustomerProfileResponse {})
}
