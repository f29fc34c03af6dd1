//! Queries on users and their roles. Every function runs inside the caller's transaction, whose
//! row-level-security context confines it to one tenant; reads go through the
//! `identity.user_accounts` view, which never exposes password hashes.

use logistics_platform::Error;
use logistics_platform::authz::Role;
use logistics_platform::context::Tx;
use logistics_platform::error::UniqueConstraint;
use sqlx::{Postgres, QueryBuilder};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::lockout::AfterFailure;
use crate::domain::user::{DisplayName, Email, NewUser};

/// Resource kind in error details.
pub const KIND: &str = "logistics.identity.v1.User";

/// The unique constraints a user write can hit, and the field each guards.
pub const UNIQUE: &[UniqueConstraint] = &[UniqueConstraint {
    constraint: "users_email_key",
    kind: KIND,
    field: "email",
}];

/// A user as read back, with role names.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    /// Tenant.
    pub tenant_id: Uuid,
    /// Id.
    pub id: Uuid,
    /// E-mail as stored.
    pub email: String,
    /// E-mail lower-cased by the database: the sort and uniqueness key.
    pub email_key: String,
    /// Shown name.
    pub display_name: String,
    /// Partner link.
    pub partner_id: Option<Uuid>,
    /// Driver link.
    pub driver_id: Option<Uuid>,
    /// Consecutive failed logins.
    pub failed_login_count: i32,
    /// Locked until this time, if locked.
    pub locked_until: Option<OffsetDateTime>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version (etag).
    pub version: i32,
    /// Soft-delete time.
    pub deleted_at: Option<OffsetDateTime>,
    /// Role names, sorted.
    pub roles: Vec<String>,
}

impl UserRow {
    /// The roles this service knows (all of them, unless the database is newer than the code).
    pub fn roles(&self) -> Vec<Role> {
        self.roles.iter().filter_map(|r| Role::parse(r)).collect()
    }
}

const SELECT_USER: &str = "SELECT tenant_id, id, email, email_key, display_name, partner_id, driver_id, \
    failed_login_count, locked_until, created_at, updated_at, version, deleted_at, roles \
    FROM identity.user_accounts";

/// Inserts a user and grants its roles. The tenant comes from the transaction's context.
#[tracing::instrument(skip_all, fields(user_id = %id))]
pub async fn insert(
    tx: &mut Tx,
    id: Uuid,
    user: &NewUser,
    password_hash: &str,
) -> Result<UserRow, Error> {
    sqlx::query(
        "INSERT INTO identity.users (tenant_id, id, email, display_name, password_hash, partner_id, driver_id) \
         VALUES (identity.current_tenant_id(), $1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(user.email.as_str())
    .bind(user.display_name.as_str())
    .bind(password_hash)
    .bind(user.partner_id)
    .bind(user.driver_id)
    .execute(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    for role in &user.roles {
        grant_role(tx, id, *role).await?;
    }
    get(tx, id, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("inserted user not visible").into())
}

/// One user; deleted users only when `include_deleted`.
pub async fn get(tx: &mut Tx, id: Uuid, include_deleted: bool) -> Result<Option<UserRow>, Error> {
    let sql = format!("{SELECT_USER} WHERE id = $1 AND ($2 OR deleted_at IS NULL)");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(include_deleted)
        .fetch_optional(&mut **tx)
        .await?)
}

/// What Login needs to know about a live user with this e-mail.
#[derive(Debug, sqlx::FromRow)]
pub struct Credentials {
    /// User id.
    pub id: Uuid,
    /// PHC argon2id hash.
    pub password_hash: String,
    /// Consecutive failures so far.
    pub failed_login_count: i32,
    /// Locked until, if locked.
    pub locked_until: Option<OffsetDateTime>,
}

/// The credentials of the live user with `email` (case-insensitive), locking the row so that
/// concurrent logins count failures correctly.
pub async fn credentials_for_update(
    tx: &mut Tx,
    email: &Email,
) -> Result<Option<Credentials>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, password_hash, failed_login_count, locked_until FROM identity.users \
         WHERE tenant_id = identity.current_tenant_id() AND lower(email) = lower($1) \
           AND deleted_at IS NULL \
         FOR UPDATE",
    )
    .bind(email.as_str())
    .fetch_optional(&mut **tx)
    .await?)
}

/// The password hash of a live user (for ChangePassword).
pub async fn password_hash_for_update(tx: &mut Tx, id: Uuid) -> Result<Option<String>, Error> {
    Ok(sqlx::query_scalar(
        "SELECT password_hash FROM identity.users WHERE id = $1 AND deleted_at IS NULL FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}

/// Records a failed login.
pub async fn record_failure(tx: &mut Tx, id: Uuid, after: AfterFailure) -> Result<(), Error> {
    sqlx::query(
        "UPDATE identity.users SET failed_login_count = $2, \
             locked_until = coalesce($3, locked_until) WHERE id = $1",
    )
    .bind(id)
    .bind(after.failed_login_count)
    .bind(after.locked_until)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Clears the failure count after a successful login (without touching the version: logging in
/// is not an edit that should invalidate an admin's etag).
pub async fn record_success(tx: &mut Tx, id: Uuid) -> Result<(), Error> {
    sqlx::query(
        "UPDATE identity.users SET failed_login_count = 0, locked_until = NULL \
         WHERE id = $1 AND (failed_login_count <> 0 OR locked_until IS NOT NULL)",
    )
    .bind(id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Replaces the password hash.
pub async fn set_password(tx: &mut Tx, id: Uuid, password_hash: &str) -> Result<(), Error> {
    sqlx::query(
        "UPDATE identity.users SET password_hash = $2, password_changed_at = now(), version = version + 1 \
         WHERE id = $1",
    )
    .bind(id)
    .bind(password_hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Changes to apply in an update; `None` leaves a field alone.
#[derive(Debug, Default)]
pub struct UserChanges {
    /// New e-mail.
    pub email: Option<Email>,
    /// New shown name.
    pub display_name: Option<DisplayName>,
    /// New partner link (`Some(None)` clears it).
    pub partner_id: Option<Option<Uuid>>,
    /// New driver link (`Some(None)` clears it).
    pub driver_id: Option<Option<Uuid>>,
}

/// Applies `changes` to a live user if its version is `expected_version` (any version when
/// `None`). NOT_FOUND if there is no such live user, ABORTED if the version moved on.
pub async fn update(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
    changes: &UserChanges,
) -> Result<UserRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE identity.users SET \
             email = coalesce($3, email), \
             display_name = coalesce($4, display_name), \
             partner_id = CASE WHEN $5 THEN $6 ELSE partner_id END, \
             driver_id = CASE WHEN $7 THEN $8 ELSE driver_id END, \
             version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) \
         RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .bind(changes.email.as_ref().map(Email::as_str))
    .bind(changes.display_name.as_ref().map(DisplayName::as_str))
    .bind(changes.partner_id.is_some())
    .bind(changes.partner_id.flatten())
    .bind(changes.driver_id.is_some())
    .bind(changes.driver_id.flatten())
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    finish_versioned_write(tx, id, updated, false).await
}

/// Soft-deletes a live user.
pub async fn soft_delete(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
) -> Result<UserRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE identity.users SET deleted_at = now(), version = version + 1 \
         WHERE id = $1 AND deleted_at IS NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .fetch_optional(&mut **tx)
    .await?;
    finish_versioned_write(tx, id, updated, true).await
}

/// Restores a soft-deleted user; ALREADY_EXISTS if a live user took its e-mail meanwhile.
pub async fn undelete(
    tx: &mut Tx,
    id: Uuid,
    expected_version: Option<i32>,
) -> Result<UserRow, Error> {
    let updated: Option<Uuid> = sqlx::query_scalar(
        "UPDATE identity.users SET deleted_at = NULL, version = version + 1 \
         WHERE id = $1 AND deleted_at IS NOT NULL AND ($2::int IS NULL OR version = $2) RETURNING id",
    )
    .bind(id)
    .bind(expected_version)
    .fetch_optional(&mut **tx)
    .await
    .map_err(|e| Error::from_db_with(e, UNIQUE))?;
    match updated {
        Some(id) => get(tx, id, true)
            .await?
            .ok_or_else(|| anyhow::anyhow!("undeleted user vanished").into()),
        None => match get(tx, id, true).await? {
            None => Err(Error::NotFound(logistics_platform::error::Resource::new(
                KIND, id,
            ))),
            Some(row) if row.deleted_at.is_none() => Err(Error::precondition(
                "USER_NOT_DELETED",
                "user",
                "the user is not deleted",
            )),
            Some(_) => Err(Error::Aborted(
                logistics_platform::error::Conflict::StaleEtag,
            )),
        },
    }
}

/// After a conditional write: the new row, NOT_FOUND, or ABORTED for a stale version.
async fn finish_versioned_write(
    tx: &mut Tx,
    id: Uuid,
    updated: Option<Uuid>,
    include_deleted_after: bool,
) -> Result<UserRow, Error> {
    use logistics_platform::error::Resource;
    match updated {
        Some(id) => get(tx, id, include_deleted_after)
            .await?
            .ok_or_else(|| anyhow::anyhow!("updated user vanished").into()),
        None => Err(Error::missing_or_stale(
            get(tx, id, false).await?.is_some(),
            Resource::new(KIND, id),
        )),
    }
}

/// Grants `role`; granting a held role changes nothing. Bumps the user's version either way
/// only when something changed.
pub async fn grant_role(tx: &mut Tx, user_id: Uuid, role: Role) -> Result<bool, Error> {
    let inserted = sqlx::query(
        "INSERT INTO identity.user_roles (tenant_id, user_id, role_id) \
         SELECT identity.current_tenant_id(), $1, r.id FROM identity.roles r WHERE r.name = $2 \
         ON CONFLICT DO NOTHING",
    )
    .bind(user_id)
    .bind(role.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if inserted == 1 {
        bump_version(tx, user_id).await?;
    }
    Ok(inserted == 1)
}

/// Revokes `role`; revoking a role not held changes nothing.
pub async fn revoke_role(tx: &mut Tx, user_id: Uuid, role: Role) -> Result<bool, Error> {
    let deleted = sqlx::query(
        "DELETE FROM identity.user_roles ur USING identity.roles r \
         WHERE ur.user_id = $1 AND r.tenant_id = ur.tenant_id AND r.id = ur.role_id AND r.name = $2",
    )
    .bind(user_id)
    .bind(role.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if deleted == 1 {
        bump_version(tx, user_id).await?;
    }
    Ok(deleted == 1)
}

async fn bump_version(tx: &mut Tx, user_id: Uuid) -> Result<(), Error> {
    sqlx::query("UPDATE identity.users SET version = version + 1 WHERE id = $1")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Sort orders ListUsers offers; each has a keyset cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// By id, which is a UUIDv7 and therefore creation order.
    CreateTime,
    /// By lower-cased e-mail, then id.
    Email,
}

/// Where the previous page ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Cursor {
    /// Last id returned.
    Id(Uuid),
    /// Last lower-cased e-mail and id returned.
    Email(String, Uuid),
}

/// A user filter condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// E-mail equals, case-insensitively (or not, when negated).
    EmailIs(String, bool),
    /// E-mail starts with, case-insensitively (or not).
    EmailStartsWith(String, bool),
    /// Holds the role (or not).
    HasRole(Role, bool),
}

/// One ListUsers page request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Conditions, all of which must hold.
    pub conditions: Vec<Condition>,
    /// Sort order.
    pub order: Order,
    /// Descending.
    pub descending: bool,
    /// Include soft-deleted users.
    pub show_deleted: bool,
    /// Continue after this row.
    pub after: Option<Cursor>,
    /// Rows to return (the caller asks for one more to learn whether a next page exists).
    pub limit: i64,
}

/// One page of users in keyset order.
pub async fn list(tx: &mut Tx, query: &ListQuery) -> Result<Vec<UserRow>, Error> {
    let mut sql: QueryBuilder<Postgres> = QueryBuilder::new(SELECT_USER);
    sql.push(" WHERE TRUE");
    if !query.show_deleted {
        sql.push(" AND deleted_at IS NULL");
    }
    for condition in &query.conditions {
        match condition {
            Condition::EmailIs(email, negated) => {
                sql.push(if *negated {
                    " AND lower(email) <> lower("
                } else {
                    " AND lower(email) = lower("
                });
                sql.push_bind(email.clone()).push(")");
            }
            // starts_with, not LIKE: the prefix is matched literally, no escaping. Under
            // row-level security this still only filters: lower() is not leakproof, so
            // starts_with(lower(email), ..) cannot become an index condition.
            Condition::EmailStartsWith(prefix, negated) => {
                sql.push(if *negated {
                    " AND NOT starts_with(lower(email), "
                } else {
                    " AND starts_with(lower(email), "
                });
                sql.push_bind(prefix.to_lowercase());
                sql.push(")");
            }
            Condition::HasRole(role, negated) => {
                sql.push(if *negated { " AND NOT (" } else { " AND (" });
                sql.push_bind(role.as_str()).push(" = ANY (roles))");
            }
        }
    }
    let (cmp, dir) = if query.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    match (&query.after, query.order) {
        (Some(Cursor::Id(id)), Order::CreateTime) => {
            sql.push(format!(" AND id {cmp} ")).push_bind(*id);
        }
        (Some(Cursor::Email(email, id)), Order::Email) => {
            sql.push(format!(" AND (email_key, id) {cmp} ("));
            sql.push_bind(email.clone())
                .push(", ")
                .push_bind(*id)
                .push(")");
        }
        (None, _) => {}
        (Some(_), _) => return Err(Error::invalid("page_token", "does not match order_by")),
    }
    match query.order {
        Order::CreateTime => sql.push(format!(" ORDER BY id {dir}")),
        Order::Email => sql.push(format!(" ORDER BY email_key {dir}, id {dir}")),
    };
    sql.push(" LIMIT ").push_bind(query.limit);
    Ok(sql.build_query_as().fetch_all(&mut **tx).await?)
}

/// The cursor after `row` in `order`.
pub fn cursor_after(row: &UserRow, order: Order) -> Cursor {
    match order {
        Order::CreateTime => Cursor::Id(row.id),
        Order::Email => Cursor::Email(row.email_key.clone(), row.id),
    }
}
