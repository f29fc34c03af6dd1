//! Contacts of a partner. E-mail and phone arrive sealed and leave sealed.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::Resource;
use time::OffsetDateTime;
use uuid::Uuid;

/// Resource kind in error details.
pub const KIND: &str = "logistics.partner.v1.Contact";

/// A write that lost a race for the one primary flag: with the demotion done in the same
/// transaction this only happens when two calls promote at once, so the loser may retry.
fn write_error(err: sqlx::Error) -> Error {
    let raced = err
        .as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "contacts_one_primary");
    if raced {
        Error::Aborted(logistics_platform::error::Conflict::Concurrency)
    } else {
        Error::from_db(err)
    }
}

/// A contact as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ContactRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// The partner.
    pub partner_id: Uuid,
    /// Name.
    pub name: String,
    /// Job title.
    pub job_title: String,
    /// Sealed e-mail.
    pub email_ciphertext: Option<Vec<u8>>,
    /// Sealed phone.
    pub phone_ciphertext: Option<Vec<u8>>,
    /// Primary contact.
    pub is_primary: bool,
    /// Lower-cased name: sort key.
    pub name_key: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

/// Contacts of a deleted partner are hidden with it.
const OF_LIVE_PARTNER: &str = "EXISTS (SELECT 1 FROM partner.partners p \
    WHERE p.tenant_id = contacts.tenant_id AND p.id = contacts.partner_id AND p.deleted_at IS NULL)";

const SELECT: &str = "SELECT tenant_id, id, partner_id, name, job_title, email_ciphertext, phone_ciphertext, \
    is_primary, lower(name) AS name_key, created_at, updated_at, version, deleted_at FROM partner.contacts";

/// A contact to write, with its personal fields already sealed.
#[derive(Debug, Clone)]
pub struct ContactValues {
    /// Name.
    pub name: String,
    /// Job title.
    pub job_title: String,
    /// Sealed e-mail.
    pub email_ciphertext: Option<Vec<u8>>,
    /// Sealed phone.
    pub phone_ciphertext: Option<Vec<u8>>,
    /// Primary contact.
    pub primary: bool,
}

/// Inserts a contact of `partner_id`.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    partner_id: Uuid,
    values: &ContactValues,
) -> Result<ContactRow, Error> {
    sqlx::query(
        "INSERT INTO partner.contacts (tenant_id, id, partner_id, name, job_title, email_ciphertext, \
             phone_ciphertext, is_primary) \
         VALUES (partner.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(partner_id)
    .bind(&values.name)
    .bind(&values.job_title)
    .bind(values.email_ciphertext.as_deref())
    .bind(values.phone_ciphertext.as_deref())
    .bind(values.primary)
    .execute(&mut **tx)
    .await
    .map_err(write_error)?;
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted contact not visible").into())
}

/// Makes no live contact of `partner_id` but `except` primary (before promoting `except`).
pub async fn demote_primary(tx: &mut Tx, partner_id: Uuid, except: Uuid) -> Result<(), Error> {
    sqlx::query(
        "UPDATE partner.contacts SET is_primary = false, version = version + 1 \
         WHERE partner_id = $1 AND id <> $2 AND is_primary AND deleted_at IS NULL",
    )
    .bind(partner_id)
    .bind(except)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One contact; deleted ones only when `include_deleted`.
pub async fn get(
    tx: &mut Tx,
    id: Uuid,
    include_deleted: bool,
) -> Result<Option<ContactRow>, Error> {
    let sql =
        format!("{SELECT} WHERE id = $1 AND ($2 OR deleted_at IS NULL) AND {OF_LIVE_PARTNER}");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Writes every field of a live contact at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    values: &ContactValues,
) -> Result<ContactRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE partner.contacts SET name = $3, job_title = $4, email_ciphertext = $5, \
             phone_ciphertext = $6, is_primary = $7, version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) \
           AND EXISTS (SELECT 1 FROM partner.partners p WHERE p.tenant_id = contacts.tenant_id \
                       AND p.id = contacts.partner_id AND p.deleted_at IS NULL) \
         RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(&values.name)
    .bind(&values.job_title)
    .bind(values.email_ciphertext.as_deref())
    .bind(values.phone_ciphertext.as_deref())
    .bind(values.primary)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores a contact at `expected_version`.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<ContactRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        // A restored contact stays primary only if no other live contact took the role meanwhile.
        "UPDATE partner.contacts c SET deleted_at = CASE WHEN $3 THEN now() END, \
             is_primary = c.is_primary AND ($3 OR NOT EXISTS (SELECT 1 FROM partner.contacts o \
                 WHERE o.tenant_id = c.tenant_id AND o.partner_id = c.partner_id AND o.id <> c.id \
                   AND o.is_primary AND o.deleted_at IS NULL)), \
             version = c.version + 1 \
         WHERE c.id = $1 AND (c.deleted_at IS NULL) = $3 AND ($2::int IS NULL OR c.version = $2) \
           AND EXISTS (SELECT 1 FROM partner.partners p WHERE p.tenant_id = c.tenant_id \
                       AND p.id = c.partner_id AND p.deleted_at IS NULL) \
         RETURNING c.id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(deleted)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    // Deleting expects a live row, restoring a deleted one.
    after_write(tx, id, updated, deleted).await
}

/// The row after a conditional write of a live (`expect_live`) or deleted row, or why the
/// write matched nothing (see [`Error::missed_write`]).
async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<ContactRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// Where the previous page ended: not-primary flag, name key, id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor(pub bool, pub String, pub Uuid);

/// One page of a partner's contacts: primary first, then name, id.
pub async fn list(
    tx: &mut Tx,
    partner_id: Uuid,
    show_deleted: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<ContactRow>, Error> {
    // (NOT is_primary) ascending puts the primary first and keeps one direction for the keyset.
    let sql = format!(
        "{SELECT} WHERE partner_id = $1 AND ($2 OR deleted_at IS NULL) \
         AND ($3::bool IS NULL OR (NOT is_primary, lower(name), id) > ($3, $4, $5)) \
         ORDER BY NOT is_primary, lower(name), id LIMIT $6"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(partner_id)
        .bind(show_deleted)
        .bind(after.map(|c| c.0))
        .bind(after.map(|c| c.1.clone()))
        .bind(after.map(|c| c.2))
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &ContactRow) -> Cursor {
    Cursor(!row.is_primary, row.name_key.clone(), row.id)
}

/// Contacts with an e-mail or phone sealed with another key than `active_key_id`, across
/// tenants (rotation context), locked for re-sealing.
pub async fn stale_ciphertexts(
    tx: &mut Tx,
    active_key_id: &str,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid, Option<Vec<u8>>, Option<Vec<u8>>)>, Error> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, id, email_ciphertext, phone_ciphertext FROM partner.contacts \
         WHERE partner.sealed_key_id(email_ciphertext) <> $1 OR partner.sealed_key_id(phone_ciphertext) <> $1 \
         ORDER BY tenant_id, id LIMIT $2 FOR NO KEY UPDATE",
    )
    .bind(active_key_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// Stores re-sealed ciphertexts without touching the version (the values did not change).
pub async fn store_resealed(
    tx: &mut Tx,
    tenant_id: Uuid,
    id: Uuid,
    email: Option<&[u8]>,
    phone: Option<&[u8]>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE partner.contacts SET email_ciphertext = $3, phone_ciphertext = $4 \
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(email)
    .bind(phone)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
