//! Tenants and their role catalogs.

use logistics_platform::Error;
use logistics_platform::authz::Role;
use logistics_platform::context::Tx;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::user::DisplayName;

/// Resource kind in error details.
pub const KIND: &str = "logistics.identity.v1.Tenant";

/// A tenant as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub display_name: String,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Last changed.
    pub updated_at: OffsetDateTime,
    /// Row version.
    pub version: i32,
}

/// Inserts a tenant. The transaction's context must allow it (platform admin or system).
pub async fn insert(tx: &mut Tx, id: Uuid, name: &DisplayName) -> Result<TenantRow, Error> {
    Ok(sqlx::query_as(
        "INSERT INTO identity.tenants (id, display_name) VALUES ($1, $2) \
         RETURNING id, display_name, created_at, updated_at, version",
    )
    .bind(id)
    .bind(name.as_str())
    .fetch_one(&mut **tx)
    .await?)
}

/// Fills the tenant's role catalog. The transaction's context must be inside the tenant.
pub async fn seed_roles(tx: &mut Tx) -> Result<(), Error> {
    for role in Role::ALL {
        sqlx::query(
            "INSERT INTO identity.roles (tenant_id, id, name, description) \
             VALUES (identity.current_tenant_id(), $1, $2, $3) ON CONFLICT (tenant_id, name) DO NOTHING",
        )
        .bind(Uuid::now_v7())
        .bind(role.as_str())
        .bind(role.description())
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// One tenant visible to the context.
pub async fn get(tx: &mut Tx, id: Uuid) -> Result<Option<TenantRow>, Error> {
    Ok(sqlx::query_as(
        "SELECT id, display_name, created_at, updated_at, version FROM identity.tenants WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?)
}
