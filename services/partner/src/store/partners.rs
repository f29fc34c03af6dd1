//! Queries on partners and their roles. Reads go through the `partner.partner_records` view;
//! tax ids arrive sealed and leave sealed, the store never sees plaintext.
//!
//! Every query names the tenant (`tenant_id = partner.current_tenant_id()`): the key rotation's
//! policies are permissive, so row-level security alone is `tenant_id = … OR
//! has_app_role('system')`, which no index serves (each query read every tenant's partners).

use logistics_platform::Error;
use logistics_platform::context::Tx;
use logistics_platform::error::{PreconditionViolation, Resource, UniqueConstraint};
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::partner::{NewPartner, PartnerKind, PartnerRole, PartnerStatus};

/// Resource kind in error details.
pub const KIND: &str = "logistics.partner.v1.Partner";

/// Unique constraints of partner writes and the request field each guards.
pub const UNIQUE: &[UniqueConstraint] = &[UniqueConstraint {
    constraint: "partners_tax_id_key",
    kind: KIND,
    field: "tax_id",
}];

/// A partner as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PartnerRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// `organization` or `person`.
    pub kind: String,
    /// Legal name.
    pub legal_name: String,
    /// Shown name.
    pub display_name: String,
    /// Lower-cased display name: the sort key.
    pub name_key: String,
    /// Sealed tax id.
    pub tax_id_ciphertext: Option<Vec<u8>>,
    /// ISO country.
    pub country_code: String,
    /// ISO currency.
    pub default_currency_code: String,
    /// `active`, `inactive` or `blocked`.
    pub status: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
    /// Soft-deleted at.
    pub deleted_at: Option<OffsetDateTime>,
    /// Role names, sorted.
    pub roles: Vec<String>,
}

impl PartnerRow {
    /// The roles this code knows, in declaration order.
    pub fn roles(&self) -> Vec<PartnerRole> {
        let mut roles: Vec<PartnerRole> = self
            .roles
            .iter()
            .filter_map(|r| PartnerRole::parse(r))
            .collect();
        // Declaration order (supplier, customer, carrier), as the enum numbers them.
        roles.sort();
        roles
    }

    /// Whether the partner holds `role`.
    pub fn has_role(&self, role: PartnerRole) -> bool {
        self.roles.iter().any(|r| r == role.as_str())
    }
}

const SELECT: &str = "SELECT tenant_id, id, kind, legal_name, display_name, name_key, tax_id_ciphertext, \
    country_code, default_currency_code, status, created_at, updated_at, version, deleted_at, roles \
    FROM partner.partner_records";

/// A sealed tax id with its blind index.
#[derive(Debug, Clone)]
pub struct SealedTaxId {
    /// AEAD ciphertext.
    pub ciphertext: Vec<u8>,
    /// Keyed HMAC of country and normalised id.
    pub index: Vec<u8>,
}

/// Inserts a partner with its roles, in the transaction's tenant.
#[tracing::instrument(skip_all, fields(partner_id = %id))]
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    partner: &NewPartner,
    tax_id: Option<&SealedTaxId>,
) -> Result<PartnerRow, Error> {
    sqlx::query(
        "INSERT INTO partner.partners (tenant_id, id, kind, legal_name, display_name, tax_id_ciphertext, \
             tax_id_index, country_code, default_currency_code, status) \
         VALUES (partner.current_tenant_id(), $1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(partner.kind.as_str())
    .bind(partner.legal_name.as_str())
    .bind(partner.display_name.as_str())
    .bind(tax_id.map(|t| t.ciphertext.as_slice()))
    .bind(tax_id.map(|t| t.index.as_slice()))
    .bind(partner.country.as_str())
    .bind(partner.currency.as_str())
    .bind(partner.status.as_str())
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    for role in &partner.roles {
        add_role(tx, id, *role).await?;
    }
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted partner not visible").into())
}

/// One partner; deleted ones only when `include_deleted`.
pub async fn get(
    tx: &mut Tx,
    id: Uuid,
    include_deleted: bool,
) -> Result<Option<PartnerRow>, Error> {
    let sql = format!(
        "{SELECT} WHERE tenant_id = partner.current_tenant_id() AND id = $1 AND ($2 OR deleted_at IS NULL)"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// One live partner or NOT_FOUND.
pub async fn get_live(tx: &mut Tx, id: Uuid) -> Result<PartnerRow, Error> {
    get(tx, id, false)
        .await?
        .ok_or_else(|| Error::NotFound(Resource::new(KIND, id)))
}

/// The live partners among `ids`, in no particular order.
pub async fn get_many(tx: &mut Tx, ids: &[Uuid]) -> Result<Vec<PartnerRow>, Error> {
    let sql = format!(
        "{SELECT} WHERE tenant_id = partner.current_tenant_id() AND id = ANY($1) AND deleted_at IS NULL"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(ids)
        .fetch_all(&mut **tx)
        .await?)
}

/// The live partner whose tax id in `country` has this blind index.
pub async fn find_by_tax_index(
    tx: &mut Tx,
    country: &str,
    index: &[u8],
) -> Result<Option<PartnerRow>, Error> {
    let id: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM partner.partners WHERE tenant_id = partner.current_tenant_id() \
         AND country_code = $1 AND tax_id_index = $2 AND deleted_at IS NULL",
    )
    .bind(country)
    .bind(index)
    .fetch_optional(&mut **tx)
    .await?;
    match id {
        Some(id) => get(tx, id, false).await,
        None => Ok(None),
    }
}

/// Changes to a partner; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct PartnerChanges {
    /// New kind.
    pub kind: Option<PartnerKind>,
    /// New legal name.
    pub legal_name: Option<String>,
    /// New display name.
    pub display_name: Option<String>,
    /// New sealed tax id (`Some(None)` removes it).
    pub tax_id: Option<Option<SealedTaxId>>,
    /// New country.
    pub country_code: Option<String>,
    /// New currency.
    pub currency_code: Option<String>,
    /// New status.
    pub status: Option<PartnerStatus>,
}

/// Applies `changes` to a live partner at `expected_version` (any when `None`).
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    changes: &PartnerChanges,
) -> Result<PartnerRow, Error> {
    let tax = changes.tax_id.as_ref();
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE partner.partners SET \
             kind = coalesce($3, kind), \
             legal_name = coalesce($4, legal_name), \
             display_name = coalesce($5, display_name), \
             tax_id_ciphertext = CASE WHEN $6 THEN $7 ELSE tax_id_ciphertext END, \
             tax_id_index = CASE WHEN $6 THEN $8 ELSE tax_id_index END, \
             country_code = coalesce($9, country_code), \
             default_currency_code = coalesce($10, default_currency_code), \
             status = coalesce($11, status), \
             version = version + 1 \
         WHERE tenant_id = partner.current_tenant_id() AND id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(changes.kind.map(PartnerKind::as_str))
    .bind(changes.legal_name.as_deref())
    .bind(changes.display_name.as_deref())
    .bind(tax.is_some())
    .bind(
        tax.and_then(|t| t.as_ref())
            .map(|t| t.ciphertext.as_slice()),
    )
    .bind(tax.and_then(|t| t.as_ref()).map(|t| t.index.as_slice()))
    .bind(changes.country_code.as_deref())
    .bind(changes.currency_code.as_deref())
    .bind(changes.status.map(PartnerStatus::as_str))
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    after_write(tx, id, updated, true).await
}

/// Soft-deletes a live partner.
pub async fn soft_delete(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
) -> Result<PartnerRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE partner.partners SET deleted_at = now(), version = version + 1 \
         WHERE tenant_id = partner.current_tenant_id() AND id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .fetch_optional(&mut **tx)
    .await?;
    after_write(tx, id, updated, true).await
}

/// Restores a soft-deleted partner; ALREADY_EXISTS if its tax id was taken meanwhile.
pub async fn undelete(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
) -> Result<PartnerRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE partner.partners SET deleted_at = NULL, version = version + 1 \
         WHERE tenant_id = partner.current_tenant_id() AND id = $1 AND deleted_at IS NOT NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    if updated.is_none()
        && let Some(row) = get(tx, id, true).await?
        && row.deleted_at.is_none()
    {
        return Err(Error::precondition(
            "NOT_DELETED",
            "partner",
            "the partner is not deleted",
        ));
    }
    after_write(tx, id, updated, false).await
}

/// The row after a conditional write of a live (`expect_live`) or deleted row, or why the
/// write matched nothing (see [`Error::missed_write`]).
async fn after_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    expect_live: bool,
) -> Result<PartnerRow, Error> {
    let now = get(tx, id, true).await?;
    Error::after_write(
        updated.is_some(),
        now,
        |row| row.deleted_at.is_none(),
        expect_live,
        Resource::new(KIND, id),
    )
}

/// Adds a role (no-op if held); bumps the partner's version when something changed.
pub async fn add_role(tx: &mut Tx, partner_id: Uuid, role: PartnerRole) -> Result<bool, Error> {
    let added = sqlx::query(
        "INSERT INTO partner.partner_roles (tenant_id, partner_id, role) \
         VALUES (partner.current_tenant_id(), $1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(partner_id)
    .bind(role.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected()
        == 1;
    if added {
        bump_version(tx, partner_id).await?;
    }
    Ok(added)
}

/// Removes a role (no-op if not held). FAILED_PRECONDITION while a profile of the role exists:
/// the database's foreign key refuses, whatever this code checked before.
pub async fn remove_role(tx: &mut Tx, partner_id: Uuid, role: PartnerRole) -> Result<bool, Error> {
    let removed =
        sqlx::query("DELETE FROM partner.partner_roles WHERE partner_id = $1 AND role = $2")
            .bind(partner_id)
            .bind(role.as_str())
            .execute(&mut **tx)
            .await
            .map_err(
                |e| match e.as_database_error().and_then(|d| d.code()).as_deref() {
                    Some("23503") => Error::Precondition(vec![PreconditionViolation {
                        kind: "PROFILE_EXISTS",
                        subject: format!("{}_profile", role.as_str()),
                        description: format!(
                            "the partner has a {} profile; delete it before removing the role",
                            role.as_str()
                        ),
                    }]),
                    _ => Error::from_db(e),
                },
            )?
            .rows_affected()
            == 1;
    if removed {
        bump_version(tx, partner_id).await?;
    }
    Ok(removed)
}

async fn bump_version(tx: &mut Tx, partner_id: Uuid) -> Result<(), Error> {
    sqlx::query("UPDATE partner.partners SET version = version + 1 WHERE tenant_id = partner.current_tenant_id() AND id = $1")
        .bind(partner_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Partners whose tax id was sealed with another key than `active_key_id`, across tenants
/// (rotation context), locked for re-sealing.
pub async fn stale_tax_ids(
    tx: &mut Tx,
    active_key_id: &str,
    limit: i64,
) -> Result<Vec<(Uuid, Uuid, Vec<u8>)>, Error> {
    Ok(sqlx::query_as(
        "SELECT tenant_id, id, tax_id_ciphertext FROM partner.partners \
         WHERE partner.sealed_key_id(tax_id_ciphertext) <> $1 \
         ORDER BY tenant_id, id LIMIT $2 FOR NO KEY UPDATE",
    )
    .bind(active_key_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?)
}

/// Stores a re-sealed tax id without touching the version (the value did not change).
pub async fn store_resealed_tax_id(
    tx: &mut Tx,
    tenant_id: Uuid,
    id: Uuid,
    ciphertext: &[u8],
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE partner.partners SET tax_id_ciphertext = $3 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(ciphertext)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Orders ListPartners offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Lower-cased display name, then id.
    DisplayName,
    /// Creation time, then id.
    CreateTime,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cursor {
    /// Last name key and id.
    Name(String, Uuid),
    /// Last creation time and id.
    Created(OffsetDateTime, Uuid),
}

/// A ListPartners condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Holds (or not) the role.
    Role(PartnerRole, bool),
    /// In (or not) the country.
    Country(String, bool),
    /// Has (or not) the status.
    Status(PartnerStatus, bool),
    /// Display name starts (or not) with, case-insensitively.
    NamePrefix(String, bool),
    /// Display name is (or is not), case-insensitively.
    NameIs(String, bool),
}

/// One ListPartners page request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// All must hold.
    pub conditions: Vec<Condition>,
    /// Order.
    pub order: Order,
    /// Descending.
    pub descending: bool,
    /// Include soft-deleted.
    pub show_deleted: bool,
    /// Continue after.
    pub after: Option<Cursor>,
    /// Rows to fetch.
    pub limit: i64,
}

/// One page of partners in keyset order.
pub async fn list(tx: &mut Tx, query: &ListQuery) -> Result<Vec<PartnerRow>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT);
    sql.push(" WHERE tenant_id = partner.current_tenant_id()");
    if !query.show_deleted {
        sql.push(" AND deleted_at IS NULL");
    }
    for condition in &query.conditions {
        match condition {
            Condition::Role(role, negated) => {
                sql.push(if *negated { " AND NOT (" } else { " AND (" });
                sql.push_bind(role.as_str()).push(" = ANY (roles))");
            }
            Condition::Country(code, negated) => {
                sql.push(if *negated {
                    " AND country_code <> "
                } else {
                    " AND country_code = "
                });
                sql.push_bind(code.clone());
            }
            Condition::Status(status, negated) => {
                sql.push(if *negated {
                    " AND status <> "
                } else {
                    " AND status = "
                });
                sql.push_bind(status.as_str());
            }
            Condition::NameIs(name, negated) => {
                sql.push(if *negated {
                    " AND name_key <> lower("
                } else {
                    " AND name_key = lower("
                });
                sql.push_bind(name.clone()).push(")");
            }
            // starts_with, not LIKE: the prefix is matched literally, no escaping. Under
            // row-level security this still only filters: name_key is lower(display_name) and
            // lower() is not leakproof, so it cannot become an index condition on
            // partners_name_order.
            Condition::NamePrefix(prefix, negated) => {
                sql.push(if *negated {
                    " AND NOT starts_with(name_key, "
                } else {
                    " AND starts_with(name_key, "
                });
                sql.push_bind(prefix.to_lowercase());
                sql.push(")");
            }
        }
    }
    let (cmp, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    match (&query.after, query.order) {
        (Some(Cursor::Name(name, id)), Order::DisplayName) => {
            sql.push(format!(" AND (name_key, id) {cmp} ("));
            sql.push_bind(name.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (Some(Cursor::Created(at, id)), Order::CreateTime) => {
            sql.push(format!(" AND (created_at, id) {cmp} ("));
            sql.push_bind(*at).push(", ").push_bind(*id).push(")");
        }
        (None, _) => {}
        (Some(_), _) => return Err(Error::invalid("page_token", "does not match order_by")),
    }
    match query.order {
        Order::DisplayName => sql.push(format!(" ORDER BY name_key {dir}, id {dir}")),
        Order::CreateTime => sql.push(format!(" ORDER BY created_at {dir}, id {dir}")),
    };
    sql.push(" LIMIT ").push_bind(query.limit);
    Ok(sql.build_query_as().fetch_all(&mut **tx).await?)
}

/// The cursor after `row`.
pub fn cursor_after(row: &PartnerRow, order: Order) -> Cursor {
    match order {
        Order::DisplayName => Cursor::Name(row.name_key.clone(), row.id),
        Order::CreateTime => Cursor::Created(row.created_at, row.id),
    }
}
