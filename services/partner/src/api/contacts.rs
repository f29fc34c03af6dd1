//! Contacts of a partner. E-mail and phone are sealed before the store sees them; making a
//! contact primary demotes the previous primary in the same transaction.

use logistics_platform::aip;
use logistics_platform::auth::Caller;
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations};
use logistics_platform::fields::{Email, PhoneE164};
use logistics_proto::partner::v1 as pb;
use prost::Message;
use uuid::Uuid;

use super::partners::{id_and_etag, parse_id};
use super::{State, convert};
use crate::domain::contact::{self, ContactFields};
use crate::sealing::Column;
use crate::store::contacts::{self as store, ContactValues};
use crate::store::{IDEMPOTENCY, partners};

const CREATE_CONTACT: &str = "CreateContact";

fn seal(state: &State, tenant_id: Uuid, id: Uuid, fields: &ContactFields) -> ContactValues {
    ContactValues {
        name: fields.name.as_str().to_owned(),
        job_title: fields.job_title.as_str().to_owned(),
        email_ciphertext: fields.email.as_ref().map(|e| {
            state
                .sealer
                .seal(Column::ContactEmail, tenant_id, id, e.as_str())
        }),
        phone_ciphertext: fields.phone.as_ref().map(|p| {
            state
                .sealer
                .seal(Column::ContactPhone, tenant_id, id, p.as_str())
        }),
        primary: fields.primary,
    }
}

/// Adds a contact to a live partner; the same `request_id` again answers with the first.
#[tracing::instrument(skip_all)]
pub async fn create_contact(
    state: &State,
    caller: &Caller,
    request: pb::CreateContactRequest,
) -> Result<pb::CreateContactResponse, Error> {
    caller.require(Permission::PartnerContactsWrite)?;
    let c = request.contact.clone().unwrap_or_default();
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let partner_id = v.check(aip::parse_id("contact.partner_id", &c.partner_id));
    let name = v.check(contact::name("contact.name", &c.name));
    let job_title = v.check(contact::job_title("contact.job_title", &c.job_title));
    let email = v.check(contact::optional_email("contact.email", &c.email));
    let phone = v.check(contact::optional_phone("contact.phone", &c.phone));
    if let (Some(email), Some(phone)) = (&email, &phone)
        && let Some(violation) =
            contact::check_reachable("contact.", email.as_ref(), phone.as_ref())
    {
        v.push(violation);
    }
    v.finish()?;
    let (Some(partner_id), Some(name), Some(job_title), Some(email), Some(phone)) =
        (partner_id, name, job_title, email, phone)
    else {
        return Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        )));
    };
    let fields = ContactFields {
        name,
        job_title,
        email,
        phone,
        primary: c.primary,
    };
    // Keyed, so the e-mail and phone count without a guessable hash of them being stored.
    let fingerprint = state
        .sealer
        .request_fingerprint(CREATE_CONTACT, &request.encode_to_vec());

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    // Before any replay: a caller confined to one partner gets nothing of another's.
    partners::get_live(&mut tx, partner_id).await?;
    if let Some(first) = IDEMPOTENCY
        .replay_sealed(
            &mut tx,
            &state.sealer,
            caller.tenant_id,
            CREATE_CONTACT,
            request_id,
            &fingerprint,
        )
        .await?
    {
        return Ok(first);
    }
    let id = Uuid::now_v7();
    if fields.primary {
        store::demote_primary(&mut tx, partner_id, id).await?;
    }
    let row = store::insert(
        &mut tx,
        id,
        partner_id,
        &seal(state, caller.tenant_id, id, &fields),
    )
    .await?;
    let response = pb::CreateContactResponse {
        contact: Some(convert::contact(&state.sealer, &row)?),
    };
    IDEMPOTENCY
        .record_sealed(
            &mut tx,
            &state.sealer,
            caller.tenant_id,
            CREATE_CONTACT,
            request_id,
            &response,
        )
        .await?;
    tx.commit().await?;
    Ok(response)
}

/// One contact, deleted or not.
pub async fn get_contact(
    state: &State,
    caller: &Caller,
    request: pb::GetContactRequest,
) -> Result<pb::GetContactResponse, Error> {
    caller.require(Permission::PartnersRead)?;
    let id = parse_id("id", &request.id)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    Ok(pb::GetContactResponse {
        contact: Some(convert::contact(&state.sealer, &row)?),
    })
}

/// One keyset page of a partner's contacts.
pub async fn list_contacts(
    state: &State,
    caller: &Caller,
    request: pb::ListContactsRequest,
) -> Result<pb::ListContactsResponse, Error> {
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
    let listing = format!("contacts|{partner_id}|{}", request.show_deleted);
    let after: Option<store::Cursor> = state.page_tokens.decode(&listing, &request.page_token)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    // A deleted partner's children are hidden with it.
    partners::get_live(&mut tx, partner_id).await?;
    let mut rows = store::list(
        &mut tx,
        partner_id,
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
    Ok(pb::ListContactsResponse {
        contacts: rows
            .iter()
            .map(|row| convert::contact(&state.sealer, row))
            .collect::<Result<_, _>>()?,
        next_page_token,
    })
}

/// Changes the masked fields of a contact if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_contact(
    state: &State,
    caller: &Caller,
    request: pb::UpdateContactRequest,
) -> Result<pb::UpdateContactResponse, Error> {
    caller.require(Permission::PartnerContactsWrite)?;
    let paths = aip::field_mask(
        request.update_mask.as_ref(),
        &["name", "job_title", "email", "phone", "primary"],
    )?;
    let c = request.contact.unwrap_or_default();
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("contact.id", &c.id));
    let version = v.check(aip::parse_etag("contact.etag", &c.etag)).flatten();
    let mut name = None;
    let mut job_title = None;
    let mut email: Option<Option<Email>> = None;
    let mut phone: Option<Option<PhoneE164>> = None;
    for path in &paths {
        match *path {
            "name" => name = v.check(contact::name("contact.name", &c.name)),
            "job_title" => {
                job_title = v.check(contact::job_title("contact.job_title", &c.job_title))
            }
            "email" => email = v.check(contact::optional_email("contact.email", &c.email)),
            "phone" => phone = v.check(contact::optional_phone("contact.phone", &c.phone)),
            _ => {}
        }
    }
    v.finish()?;
    let id = id.ok_or_else(|| anyhow::anyhow!("id parsed without violation"))?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current = store::get(&mut tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(store::KIND, id)))?;
    let opened_email = state.sealer.open_optional(
        Column::ContactEmail,
        current.tenant_id,
        id,
        current.email_ciphertext.as_deref(),
    )?;
    let opened_phone = state.sealer.open_optional(
        Column::ContactPhone,
        current.tenant_id,
        id,
        current.phone_ciphertext.as_deref(),
    )?;
    let fields = ContactFields {
        name: match name {
            Some(n) => n,
            None => {
                contact::name("contact.name", &current.name).map_err(|v| Error::Invalid(vec![v]))?
            }
        },
        job_title: match job_title {
            Some(t) => t,
            None => contact::job_title("contact.job_title", &current.job_title)
                .map_err(|v| Error::Invalid(vec![v]))?,
        },
        email: match email {
            Some(e) => e,
            None => contact::optional_email("contact.email", &opened_email)
                .map_err(|v| Error::Invalid(vec![v]))?,
        },
        phone: match phone {
            Some(p) => p,
            None => contact::optional_phone("contact.phone", &opened_phone)
                .map_err(|v| Error::Invalid(vec![v]))?,
        },
        primary: if paths.contains(&"primary") {
            c.primary
        } else {
            current.is_primary
        },
    };
    if let Some(violation) =
        contact::check_reachable("contact.", fields.email.as_ref(), fields.phone.as_ref())
    {
        return Err(Error::Invalid(vec![violation]));
    }
    if fields.primary && !current.is_primary {
        store::demote_primary(&mut tx, current.partner_id, id).await?;
    }
    let row = store::update(
        &mut tx,
        id,
        version,
        &seal(state, current.tenant_id, id, &fields),
    )
    .await?;
    tx.commit().await?;
    Ok(pb::UpdateContactResponse {
        contact: Some(convert::contact(&state.sealer, &row)?),
    })
}

/// Soft-deletes a contact.
#[tracing::instrument(skip_all)]
pub async fn delete_contact(
    state: &State,
    caller: &Caller,
    request: pb::DeleteContactRequest,
) -> Result<pb::DeleteContactResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, true).await?;
    Ok(pb::DeleteContactResponse {
        contact: Some(convert::contact(&state.sealer, &row)?),
    })
}

/// Restores a soft-deleted contact.
#[tracing::instrument(skip_all)]
pub async fn undelete_contact(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteContactRequest,
) -> Result<pb::UndeleteContactResponse, Error> {
    let row = set_deleted(state, caller, &request.id, &request.etag, false).await?;
    Ok(pb::UndeleteContactResponse {
        contact: Some(convert::contact(&state.sealer, &row)?),
    })
}

async fn set_deleted(
    state: &State,
    caller: &Caller,
    id: &str,
    etag: &str,
    deleted: bool,
) -> Result<store::ContactRow, Error> {
    caller.require(Permission::PartnerContactsWrite)?;
    let (id, version) = id_and_etag(id, etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = store::set_deleted(&mut tx, id, version, deleted).await?;
    tx.commit().await?;
    Ok(row)
}
