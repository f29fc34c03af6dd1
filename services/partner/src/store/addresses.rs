//! Addresses of a partner.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::Resource;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::address::{AddressFields, AddressKind};

/// Resource kind in error details.
pub const KIND: &str = "logistics.partner.v1.Address";

/// A write that lost a race for the one default flag: with the demotion done in the same
/// transaction this only happens when two calls promote at once, so the loser may retry.
fn write_error(err: sqlx::Error) -> Error {
    let raced = err
        .as_database_error()
        .and_then(|d| d.constraint())
        .is_some_and(|c| c == "addresses_one_default");
    if raced {
        Error::Aborted(logistics_platform::error::Conflict::Concurrency)
    } else {
        Error::from_db(err)
    }
}

/// An address as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AddressRow {
    /// Id.
    pub id: Uuid,
    /// The partner.
    pub partner_id: Uuid,
    /// `billing`, `shipping` or `pickup`.
    pub kind: String,
    /// Line 1.
    pub line1: String,
    /// Line 2.
    pub line2: String,
    /// City.
    pub city: String,
    /// Region.
    pub region: String,
    /// Postal code.
    pub postal_code: String,
    /// Country.
    pub country_code: String,
    /// Latitude.
    pub latitude: Option<f64>,
    /// Longitude.
    pub longitude: Option<f64>,
    /// Default of its kind.
    pub is_default: bool,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
}

/// Addresses of a deleted partner are hidden with it.
const OF_LIVE_PARTNER: &str = "EXISTS (SELECT 1 FROM partner.partners p \
    WHERE p.tenant_id = addresses.tenant_id AND p.id = addresses.partner_id AND p.deleted_at IS NULL)";

const SELECT: &str = "SELECT id, partner_id, kind, line1, line2, city, region, postal_code, country_code, \
    latitude, longitude, is_default, created_at, updated_at, version, deleted_at FROM partner.addresses";

/// Inserts an address of `partner_id`.
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    partner_id: Uuid,
    fields: &AddressFields,
) -> Result<AddressRow, Error> {
    sqlx::query(
        "INSERT INTO partner.addresses (tenant_id, id, partner_id, kind, line1, line2, city, region, \
             postal_code, country_code, latitude, longitude, is_default) \
         VALUES (partner.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(partner_id)
    .bind(fields.kind.as_str())
    .bind(fields.line1.as_str())
    .bind(fields.line2.as_str())
    .bind(fields.city.as_str())
    .bind(fields.region.as_str())
    .bind(fields.postal_code.as_str())
    .bind(fields.country.as_str())
    .bind(fields.location.map(|l| l.latitude))
    .bind(fields.location.map(|l| l.longitude))
    .bind(fields.default)
    .execute(&mut **tx)
    .await
    .map_err(write_error)?;
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted address not visible").into())
}

/// Makes no live address of `partner_id` and `kind` but `except` the default (before
/// promoting `except`).
pub async fn demote_default(
    tx: &mut Tx,
    partner_id: Uuid,
    kind: AddressKind,
    except: Uuid,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE partner.addresses SET is_default = false, version = version + 1 \
         WHERE partner_id = $1 AND kind = $2 AND id <> $3 AND is_default AND deleted_at IS NULL",
    )
    .bind(partner_id)
    .bind(kind.as_str())
    .bind(except)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One address; deleted ones only when `include_deleted`.
pub async fn get(
    tx: &mut Tx,
    id: Uuid,
    include_deleted: bool,
) -> Result<Option<AddressRow>, Error> {
    let sql =
        format!("{SELECT} WHERE id = $1 AND ($2 OR deleted_at IS NULL) AND {OF_LIVE_PARTNER}");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// Writes every field of a live address at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    fields: &AddressFields,
) -> Result<AddressRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE partner.addresses SET kind = $3, line1 = $4, line2 = $5, city = $6, region = $7, \
             postal_code = $8, country_code = $9, latitude = $10, longitude = $11, is_default = $12, \
             version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) \
           AND EXISTS (SELECT 1 FROM partner.partners p WHERE p.tenant_id = addresses.tenant_id \
                       AND p.id = addresses.partner_id AND p.deleted_at IS NULL) \
         RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(fields.kind.as_str())
    .bind(fields.line1.as_str())
    .bind(fields.line2.as_str())
    .bind(fields.city.as_str())
    .bind(fields.region.as_str())
    .bind(fields.postal_code.as_str())
    .bind(fields.country.as_str())
    .bind(fields.location.map(|l| l.latitude))
    .bind(fields.location.map(|l| l.longitude))
    .bind(fields.default)
    .fetch_optional(&mut **tx)
    .await
    .map_err(write_error)?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes (`deleted` true) or restores an address at `expected_version`.
pub async fn set_deleted(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    deleted: bool,
) -> Result<AddressRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        // A restored address stays default only if no other live one of its kind took the role.
        "UPDATE partner.addresses a SET deleted_at = CASE WHEN $3 THEN now() END, \
             is_default = a.is_default AND ($3 OR NOT EXISTS (SELECT 1 FROM partner.addresses o \
                 WHERE o.tenant_id = a.tenant_id AND o.partner_id = a.partner_id AND o.kind = a.kind \
                   AND o.id <> a.id AND o.is_default AND o.deleted_at IS NULL)), \
             version = a.version + 1 \
         WHERE a.id = $1 AND (a.deleted_at IS NULL) = $3 AND ($2::int IS NULL OR a.version = $2) \
           AND EXISTS (SELECT 1 FROM partner.partners p WHERE p.tenant_id = a.tenant_id \
                       AND p.id = a.partner_id AND p.deleted_at IS NULL) \
         RETURNING a.id",
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
) -> Result<AddressRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// Where the previous page ended: not-default flag, kind, id.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cursor(pub bool, pub String, pub Uuid);

/// One page of a partner's addresses: defaults first, then kind, id; optionally one kind.
pub async fn list(
    tx: &mut Tx,
    partner_id: Uuid,
    kind: Option<AddressKind>,
    show_deleted: bool,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<AddressRow>, Error> {
    let sql = format!(
        "{SELECT} WHERE partner_id = $1 AND ($2 OR deleted_at IS NULL) AND ($3::text IS NULL OR kind = $3) \
         AND ($4::bool IS NULL OR (NOT is_default, kind, id) > ($4, $5, $6)) \
         ORDER BY NOT is_default, kind, id LIMIT $7"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(partner_id)
        .bind(show_deleted)
        .bind(kind.map(AddressKind::as_str))
        .bind(after.map(|c| c.0))
        .bind(after.map(|c| c.1.clone()))
        .bind(after.map(|c| c.2))
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &AddressRow) -> Cursor {
    Cursor(!row.is_default, row.kind.clone(), row.id)
}
