//! Tenants: creation with a first admin (platform admins only), and reading one's own.

use logistics_platform::aip;
use logistics_platform::auth::Caller;
use logistics_platform::authz::{Permission, Role};
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Resource, Violations};
use logistics_proto::identity::v1 as pb;
use prost::Message;
use secrecy::SecretString;
use uuid::Uuid;

use super::State;
use super::convert;
use crate::domain::user::{DisplayName, Email, NewUser, Password};
use crate::store::{IDEMPOTENCY, tenants, users};

const CREATE_TENANT: &str = "CreateTenant";

/// Creates a tenant, its role catalog and its first admin user in one transaction.
#[tracing::instrument(skip_all)]
pub async fn create_tenant(
    state: &State,
    caller: &Caller,
    request: pb::CreateTenantRequest,
) -> Result<pb::CreateTenantResponse, Error> {
    caller.require(Permission::TenantsCreate)?;
    let mut v = Violations::new();
    let request_id = v
        .check(aip::parse_optional_id("request_id", &request.request_id))
        .flatten();
    let name = v.check(DisplayName::parse("display_name", &request.display_name));
    let email = v.check(Email::parse("admin_email", &request.admin_email));
    let admin_name = v.check(DisplayName::parse(
        "admin_display_name",
        &request.admin_display_name,
    ));
    let password = v.check(Password::parse("admin_password", &request.admin_password));
    v.finish()?;
    let (Some(name), Some(email), Some(admin_name), Some(password)) =
        (name, email, admin_name, password)
    else {
        return Err(Error::Internal(anyhow::anyhow!(
            "parsed fields missing without violations"
        )));
    };
    let mut fingerprint_source = request.clone();
    fingerprint_source.admin_password.clear();
    let fingerprint = aip::request_fingerprint(&fingerprint_source.encode_to_vec());
    let password_hash = state
        .hasher
        .hash(SecretString::from(password.expose().to_owned()))
        .await?;

    let caller_context = DbContext::for_caller(caller);
    let mut tx = caller_context.begin(&state.pool).await?;
    if let Some(first) = IDEMPOTENCY
        .replay(&mut tx, CREATE_TENANT, request_id, &fingerprint)
        .await?
    {
        return Ok(first);
    }
    let tenant_id = Uuid::now_v7();
    let tenant = tenants::insert(&mut tx, tenant_id, &name).await?;
    // Act inside the new tenant to fill it, then return to the caller's tenant.
    DbContext::system(Some(tenant_id)).apply(&mut tx).await?;
    tenants::seed_roles(&mut tx).await?;
    let admin = NewUser {
        email,
        display_name: admin_name,
        password,
        roles: vec![Role::Admin],
        partner_id: None,
        driver_id: None,
    };
    let admin = users::insert(&mut tx, Uuid::now_v7(), &admin, &password_hash).await?;
    caller_context.apply(&mut tx).await?;
    let response = pb::CreateTenantResponse {
        tenant: Some(convert::tenant(&tenant)),
        admin_user: Some(convert::user(&admin)),
    };
    IDEMPOTENCY
        .record(&mut tx, CREATE_TENANT, request_id, &response)
        .await?;
    tx.commit().await?;
    tracing::info!(%tenant_id, "tenant created");
    Ok(response)
}

/// The caller's own tenant.
pub async fn get_tenant(
    state: &State,
    caller: &Caller,
    _request: pb::GetTenantRequest,
) -> Result<pb::GetTenantResponse, Error> {
    caller.require(Permission::TenantRead)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = tenants::get(&mut tx, caller.tenant_id).await?;
    tx.commit().await?;
    let row = row.ok_or_else(|| Error::NotFound(Resource::new(tenants::KIND, caller.tenant_id)))?;
    Ok(pb::GetTenantResponse {
        tenant: Some(convert::tenant(&row)),
    })
}
