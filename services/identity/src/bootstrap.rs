//! First-run set-up that no token can authorize: a tenant with an admin user who is also a
//! platform admin (so it can create further tenants). Idempotent: run again, it changes nothing
//! and reports the existing tenant.

use logistics_platform::authz::Role;
use logistics_platform::context::DbContext;
use secrecy::SecretString;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::user::{DisplayName, Email, NewUser, Password};
use crate::passwords::PasswordHasher;
use crate::store::{tenants, users};

/// What to create.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    /// Fixed tenant id, so re-running finds the same tenant.
    pub tenant_id: Uuid,
    /// Tenant name.
    pub tenant_name: String,
    /// Admin e-mail.
    pub admin_email: String,
    /// Admin password.
    pub admin_password: SecretString,
}

/// What exists afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootstrapped {
    /// The tenant.
    pub tenant_id: Uuid,
    /// The admin user.
    pub admin_id: Uuid,
    /// Whether this run created them.
    pub created: bool,
}

/// Creates the tenant and its admin unless they exist.
pub async fn run(pool: &PgPool, spec: &Bootstrap) -> anyhow::Result<Bootstrapped> {
    let field =
        |e: logistics_platform::FieldViolation| anyhow::anyhow!("{}: {}", e.field, e.description);
    let name = DisplayName::parse("tenant name", &spec.tenant_name).map_err(field)?;
    let email = Email::parse("admin e-mail", &spec.admin_email).map_err(field)?;
    let password = Password::parse(
        "admin password",
        secrecy::ExposeSecret::expose_secret(&spec.admin_password),
    )
    .map_err(field)?;

    let context = DbContext::system(Some(spec.tenant_id));
    let mut tx = context.begin(pool).await?;
    if tenants::get(&mut tx, spec.tenant_id).await?.is_none() {
        tenants::insert(&mut tx, spec.tenant_id, &name).await?;
    }
    tenants::seed_roles(&mut tx).await?;
    if let Some(existing) = users::credentials_for_update(&mut tx, &email).await? {
        tx.commit().await?;
        return Ok(Bootstrapped {
            tenant_id: spec.tenant_id,
            admin_id: existing.id,
            created: false,
        });
    }
    let hash = PasswordHasher::new()?
        .hash(SecretString::from(password.expose().to_owned()))
        .await?;
    let admin = NewUser {
        email,
        display_name: DisplayName::parse("name", "Administrator").map_err(field)?,
        password,
        roles: vec![Role::Admin, Role::PlatformAdmin],
        partner_id: None,
        driver_id: None,
    };
    let row = users::insert(&mut tx, Uuid::now_v7(), &admin, &hash).await?;
    tx.commit().await?;
    Ok(Bootstrapped {
        tenant_id: spec.tenant_id,
        admin_id: row.id,
        created: true,
    })
}
