//! User management: create (idempotent), get, list (keyset pages), update (field mask + etag),
//! soft delete and undelete, roles, and the caller's own password.

use logistics_platform::aip;
use logistics_platform::auth::Caller;
use logistics_platform::authz::{Permission, Role};
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, FieldViolation, Resource, Violations};
use logistics_proto::identity::v1 as pb;
use prost::Message;
use secrecy::SecretString;
use uuid::Uuid;

use super::State;
use super::convert;
use crate::domain::user::{DisplayName, Email, NewUser, Password, check_role_links};
use crate::store::IDEMPOTENCY;
use crate::store::sessions::{self, RevokeReason};
use crate::store::users::{self, Condition, ListQuery, Order, UserChanges, UserRow};

const CREATE_USER: &str = "CreateUser";

/// Creates a user; the same `request_id` again answers with the first result.
#[tracing::instrument(skip_all)]
pub async fn create_user(
    state: &State,
    caller: &Caller,
    request: pb::CreateUserRequest,
) -> Result<pb::CreateUserResponse, Error> {
    caller.require(Permission::UsersWrite)?;
    let (request_id, new_user) = parse_new_user(&request)?;
    require_may_grant(caller, &new_user.roles)?;
    let fingerprint = fingerprint_without_secrets(&request);
    // Hash before the transaction opens: argon2 takes tens of milliseconds.
    let password_hash = state
        .hasher
        .hash(SecretString::from(new_user.password.expose().to_owned()))
        .await?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_USER, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    let row = users::insert(&mut tx, Uuid::now_v7(), &new_user, &password_hash).await?;
    let response = pb::CreateUserResponse {
        user: Some(convert::user(&row)),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_USER, request_id, &response)
        .await?;
    tx.commit().await?;
    tracing::info!(user_id = %row.id, "user created");
    Ok(response)
}

/// Every violation of a CreateUserRequest at once, or the parsed user.
fn parse_new_user(request: &pb::CreateUserRequest) -> Result<(Option<Uuid>, NewUser), Error> {
    let mut v = Violations::new();
    let request_id = v.check(aip::parse_optional_id("request_id", &request.request_id));
    let email = v.check(Email::parse("email", &request.email));
    let display_name = v.check(DisplayName::parse("display_name", &request.display_name));
    let password = v.check(Password::parse("password", &request.password));
    let partner_id = v.check(aip::parse_optional_id("partner_id", &request.partner_id));
    let driver_id = v.check(aip::parse_optional_id("driver_id", &request.driver_id));
    let mut roles = Vec::new();
    for (i, value) in request.roles.iter().enumerate() {
        if let Some(role) = v.check(convert::role_from_proto(&format!("roles[{i}]"), *value))
            && !roles.contains(&role)
        {
            roles.push(role);
        }
    }
    if let (Some(partner_id), Some(driver_id)) = (partner_id, driver_id) {
        for (field, why) in check_role_links(&roles, partner_id, driver_id) {
            v.push(FieldViolation::new(field, why));
        }
    }
    v.finish()?;
    match (
        request_id,
        email,
        display_name,
        password,
        partner_id,
        driver_id,
    ) {
        (
            Some(request_id),
            Some(email),
            Some(display_name),
            Some(password),
            Some(partner_id),
            Some(driver_id),
        ) => Ok((
            request_id,
            NewUser {
                email,
                display_name,
                password,
                roles,
                partner_id,
                driver_id,
            },
        )),
        _ => Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        ))),
    }
}

/// The request's fingerprint for idempotency, with the password cleared: a stored SHA-256 of a
/// password would be an offline-crackable copy of it.
fn fingerprint_without_secrets(request: &pb::CreateUserRequest) -> Vec<u8> {
    let mut copy = request.clone();
    copy.password.clear();
    aip::request_fingerprint(&copy.encode_to_vec())
}

/// Only platform admins hand out the platform admin role.
fn require_may_grant(caller: &Caller, roles: &[Role]) -> Result<(), Error> {
    if roles.contains(&Role::PlatformAdmin) && !caller.roles.contains(&Role::PlatformAdmin) {
        return Err(Error::PermissionDenied(Permission::TenantsCreate.as_str()));
    }
    Ok(())
}

/// One user; anyone may read themselves, others need the read permission. A soft-deleted user
/// is returned with its `delete_time` (AIP-164).
pub async fn get_user(
    state: &State,
    caller: &Caller,
    request: pb::GetUserRequest,
) -> Result<pb::GetUserResponse, Error> {
    let id = aip::parse_id("id", &request.id).map_err(|v| Error::Invalid(vec![v]))?;
    if id != caller.user_id {
        caller.require(Permission::UsersRead)?;
    }
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = users::get(&mut tx, id, true).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(users::KIND, id)))?;
    Ok(pb::GetUserResponse {
        user: Some(convert::user(&row)),
    })
}

/// One keyset page of users.
pub async fn list_users(
    state: &State,
    caller: &Caller,
    request: pb::ListUsersRequest,
) -> Result<pb::ListUsersResponse, Error> {
    caller.require(Permission::UsersRead)?;
    let mut v = Violations::new();
    let page_size = v.check(aip::page_size(request.page_size));
    v.finish()?;
    let page_size = page_size.unwrap_or(aip::DEFAULT_PAGE_SIZE);
    let conditions = parse_user_filter(&request.filter)?;
    let (order_field, descending) =
        aip::parse_order_by(&request.order_by, &["create_time", "email"], "create_time")?;
    let order = if order_field == "email" {
        Order::Email
    } else {
        Order::CreateTime
    };
    let listing = format!(
        "users|{}|{order_field}|{descending}|{}",
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
    let rows = users::list(&mut tx, &query).await?;
    tx.commit().await?;
    let (rows, next_page_token) = state.page_tokens.page(&listing, rows, page_size, |last| {
        users::cursor_after(last, order)
    });
    Ok(pb::ListUsersResponse {
        users: rows.iter().map(convert::user).collect(),
        next_page_token,
    })
}

/// `email = "a@b.c"`, `email = "prefix*"`, `role = ROLE_X`, and their `!=` forms.
fn parse_user_filter(filter: &str) -> Result<Vec<Condition>, Error> {
    aip::parse_filter(filter)?
        .into_iter()
        .map(|c| match c.field.as_str() {
            "email" => Ok(match c.value.strip_suffix('*') {
                Some(prefix) => Condition::EmailStartsWith(prefix.to_owned(), c.negated),
                None => Condition::EmailIs(c.value, c.negated),
            }),
            "role" => convert::role_from_name(&c.value)
                .map(|role| Condition::HasRole(role, c.negated))
                .ok_or_else(|| {
                    Error::invalid(
                        "filter",
                        format!("{} is not a role such as ROLE_ADMIN", c.value),
                    )
                }),
            other => Err(Error::invalid(
                "filter",
                format!("cannot filter on {other}; filterable fields: email, role"),
            )),
        })
        .collect()
}

/// Changes the masked fields of a user if the etag is current.
#[tracing::instrument(skip_all)]
pub async fn update_user(
    state: &State,
    caller: &Caller,
    request: pb::UpdateUserRequest,
) -> Result<pb::UpdateUserResponse, Error> {
    caller.require(Permission::UsersWrite)?;
    let user = request.user.unwrap_or_default();
    let paths = aip::field_mask(
        request.update_mask.as_ref(),
        &["email", "display_name", "partner_id", "driver_id"],
    )?;
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("user.id", &user.id));
    let version = v.check(aip::parse_etag("user.etag", &user.etag)).flatten();
    let mut changes = UserChanges::default();
    for path in paths {
        match path {
            "email" => changes.email = v.check(Email::parse("user.email", &user.email)),
            "display_name" => {
                changes.display_name =
                    v.check(DisplayName::parse("user.display_name", &user.display_name))
            }
            "partner_id" => {
                changes.partner_id =
                    v.check(aip::parse_optional_id("user.partner_id", &user.partner_id))
            }
            "driver_id" => {
                changes.driver_id =
                    v.check(aip::parse_optional_id("user.driver_id", &user.driver_id))
            }
            _ => {}
        }
    }
    v.finish()?;
    let id = id.ok_or_else(|| anyhow::anyhow!("id parsed without violation"))?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = users::update(&mut tx, id, version, &changes)
        .await
        .map_err(|e| e.nested("user"))?;
    require_role_links(&row)?;
    tx.commit().await?;
    Ok(pb::UpdateUserResponse {
        user: Some(convert::user(&row)),
    })
}

/// FAILED_PRECONDITION when a user's roles need links it does not have.
fn require_role_links(row: &UserRow) -> Result<(), Error> {
    let missing = check_role_links(&row.roles(), row.partner_id, row.driver_id);
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::Precondition(
        missing
            .into_iter()
            .map(
                |(field, why)| logistics_platform::error::PreconditionViolation {
                    kind: "ROLE_NEEDS_LINK",
                    subject: format!("user.{field}"),
                    description: format!("{field} {why}"),
                },
            )
            .collect(),
    ))
}

/// Soft-deletes a user and revokes its sessions.
#[tracing::instrument(skip_all)]
pub async fn delete_user(
    state: &State,
    caller: &Caller,
    request: pb::DeleteUserRequest,
) -> Result<pb::DeleteUserResponse, Error> {
    caller.require(Permission::UsersWrite)?;
    let (id, version) = id_and_etag(&request.id, &request.etag)?;
    if id == caller.user_id {
        return Err(Error::precondition(
            "CANNOT_DELETE_SELF",
            "user",
            "a user cannot delete itself; ask another admin",
        ));
    }
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = users::soft_delete(&mut tx, id, version).await?;
    sessions::revoke_all_of_user(&mut tx, id, None, RevokeReason::UserDeleted).await?;
    tx.commit().await?;
    Ok(pb::DeleteUserResponse {
        user: Some(convert::user(&row)),
    })
}

/// Restores a soft-deleted user.
#[tracing::instrument(skip_all)]
pub async fn undelete_user(
    state: &State,
    caller: &Caller,
    request: pb::UndeleteUserRequest,
) -> Result<pb::UndeleteUserResponse, Error> {
    caller.require(Permission::UsersWrite)?;
    let (id, version) = id_and_etag(&request.id, &request.etag)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = users::undelete(&mut tx, id, version).await?;
    tx.commit().await?;
    Ok(pb::UndeleteUserResponse {
        user: Some(convert::user(&row)),
    })
}

fn id_and_etag(id: &str, etag: &str) -> Result<(Uuid, Option<i32>), Error> {
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("id", id));
    let version = v.check(aip::parse_etag("etag", etag));
    v.finish()?;
    match (id, version) {
        (Some(id), Some(version)) => Ok((id, version)),
        _ => Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        ))),
    }
}

fn user_and_role(user_id: &str, role: i32) -> Result<(Uuid, Role), Error> {
    let mut v = Violations::new();
    let id = v.check(aip::parse_id("user_id", user_id));
    let role = v.check(convert::role_from_proto("role", role));
    v.finish()?;
    match (id, role) {
        (Some(id), Some(role)) => Ok((id, role)),
        _ => Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        ))),
    }
}

/// Grants a role (idempotent). Customer, supplier and driver roles need the user's link first.
#[tracing::instrument(skip_all)]
pub async fn grant_role(
    state: &State,
    caller: &Caller,
    request: pb::GrantRoleRequest,
) -> Result<pb::GrantRoleResponse, Error> {
    let row = change_role(
        state,
        caller,
        &request.user_id,
        request.role,
        RoleChange::Grant,
    )
    .await?;
    Ok(pb::GrantRoleResponse {
        user: Some(convert::user(&row)),
    })
}

/// Revokes a role (idempotent).
#[tracing::instrument(skip_all)]
pub async fn revoke_role(
    state: &State,
    caller: &Caller,
    request: pb::RevokeRoleRequest,
) -> Result<pb::RevokeRoleResponse, Error> {
    let row = change_role(
        state,
        caller,
        &request.user_id,
        request.role,
        RoleChange::Revoke,
    )
    .await?;
    Ok(pb::RevokeRoleResponse {
        user: Some(convert::user(&row)),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RoleChange {
    Grant,
    Revoke,
}

/// Grants or revokes one role of a live user and returns the user afterwards.
async fn change_role(
    state: &State,
    caller: &Caller,
    user_id: &str,
    role: i32,
    change: RoleChange,
) -> Result<UserRow, Error> {
    caller.require(Permission::RolesGrant)?;
    let (user_id, role) = user_and_role(user_id, role)?;
    require_may_grant(caller, &[role])?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    if users::get(&mut tx, user_id, false).await?.is_none() {
        return Err(Error::NotFound(Resource::new(users::KIND, user_id)));
    }
    match change {
        RoleChange::Grant => users::grant_role(&mut tx, user_id, role).await?,
        RoleChange::Revoke => users::revoke_role(&mut tx, user_id, role).await?,
    };
    let row = users::get(&mut tx, user_id, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user vanished while its roles changed"))?;
    // Only a grant can add a role that needs a link; a revoke never breaks one.
    if change == RoleChange::Grant {
        require_role_links(&row)?;
    }
    tx.commit().await?;
    tracing::info!(%user_id, %role, ?change, "role changed");
    Ok(row)
}

/// Changes the caller's password after checking the current one, and ends its other sessions.
#[tracing::instrument(skip_all)]
pub async fn change_password(
    state: &State,
    caller: &Caller,
    request: pb::ChangePasswordRequest,
) -> Result<pb::ChangePasswordResponse, Error> {
    let mut v = Violations::new();
    if request.current_password.is_empty() {
        v.push(FieldViolation::new("current_password", "is required"));
    }
    let new_password = v.check(Password::parse("new_password", &request.new_password));
    if request.new_password == request.current_password && !request.new_password.is_empty() {
        v.push(FieldViolation::new(
            "new_password",
            "must differ from the current password",
        ));
    }
    v.finish()?;
    let new_password =
        new_password.ok_or_else(|| anyhow::anyhow!("password parsed without violation"))?;
    let new_hash = state
        .hasher
        .hash(SecretString::from(new_password.expose().to_owned()))
        .await?;

    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let current_hash = users::password_hash_for_update(&mut tx, caller.user_id).await?;
    let matches = state
        .hasher
        .verify(SecretString::from(request.current_password), current_hash)
        .await?;
    if !matches {
        return Err(Error::invalid(
            "current_password",
            "is not the current password",
        ));
    }
    users::set_password(&mut tx, caller.user_id, &new_hash).await?;
    sessions::revoke_all_of_user(
        &mut tx,
        caller.user_id,
        Some(caller.session_id),
        RevokeReason::PasswordChange,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(user_id = %caller.user_id, "password changed");
    Ok(pb::ChangePasswordResponse {})
}
