//! The request context that row-level security reads.
//!
//! Every piece of a request's database work runs in the one transaction that [`DbContext::begin`]
//! opens: `BEGIN` and the `set_config('app.*', ..., true)` calls go in a single round trip, and
//! being transaction-local they vanish at commit or rollback, so nothing leaks to the next user of
//! a pooled connection. Nothing else in a service should query the pool directly.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::Error;

/// A transaction with the row-level-security context already set.
pub type Tx = Transaction<'static, Postgres>;

/// The values policies see through `current_setting('app.*', true)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DbContext {
    /// `app.tenant_id`: every tenant-isolation policy compares to it.
    pub tenant_id: Option<Uuid>,
    /// `app.user_id`.
    pub user_id: Option<Uuid>,
    /// `app.roles`, comma-separated role names (plus `system` for service-internal work).
    pub roles: Vec<&'static str>,
    /// `app.partner_id`: scopes customer and supplier users.
    pub partner_id: Option<Uuid>,
    /// `app.driver_id`: scopes driver users.
    pub driver_id: Option<Uuid>,
    /// Run every statement from its generic plan (`plan_cache_mode = force_generic_plan`) for
    /// this transaction: for statements PostgreSQL would otherwise plan again in every call
    /// because a custom plan looks cheaper, when their generic plans are known to be right
    /// (the EXPLAIN tests see the plans these transactions run).
    pub generic_plans: bool,
}

/// The role name policies accept for a service's own maintenance work (key rotation at start-up,
/// bootstrap), which no token can carry.
pub const SYSTEM_ROLE: &str = "system";

impl DbContext {
    /// The context of an authenticated call.
    pub fn for_caller(caller: &Caller) -> Self {
        Self {
            tenant_id: Some(caller.tenant_id),
            user_id: Some(caller.user_id),
            roles: caller.roles.iter().map(|r| r.as_str()).collect(),
            partner_id: caller.partner_id,
            driver_id: caller.driver_id,
            generic_plans: false,
        }
    }

    /// A context that sees one tenant and nothing else, for open calls such as Login.
    pub fn for_tenant(tenant_id: Uuid) -> Self {
        Self {
            tenant_id: Some(tenant_id),
            ..Self::default()
        }
    }

    /// The service's own maintenance context, optionally inside one tenant.
    pub fn system(tenant_id: Option<Uuid>) -> Self {
        Self {
            tenant_id,
            roles: vec![SYSTEM_ROLE],
            ..Self::default()
        }
    }

    /// The same context, with every statement run from its generic plan (see `generic_plans`).
    pub fn with_generic_plans(self) -> Self {
        Self {
            generic_plans: true,
            ..self
        }
    }

    /// Opens a transaction and sets the context in the same round trip. The wait for a pooled
    /// connection is recorded in `db_pool_acquire_seconds`.
    pub async fn begin(&self, pool: &PgPool) -> Result<Tx, Error> {
        let started = std::time::Instant::now();
        let tx = pool
            .begin_with(sqlx::AssertSqlSafe(self.begin_statement()))
            .await;
        crate::metrics::global().record_acquire(
            pool.connect_options()
                .get_application_name()
                .unwrap_or("unnamed"),
            started.elapsed().as_secs_f64(),
        );
        Ok(tx?)
    }

    /// Sets this context inside an already open transaction (e.g. after creating a tenant, to
    /// act inside it).
    pub async fn apply(&self, tx: &mut Tx) -> Result<(), Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(self.set_statement()))
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    fn begin_statement(&self) -> String {
        format!("BEGIN; {}", self.set_statement())
    }

    /// The values are UUIDs and fixed role names, never caller text, so inlining them is safe;
    /// `set_config` with an empty string reads as "unset" through `NULLIF(..., '')`.
    fn set_statement(&self) -> String {
        let uuid = |v: Option<Uuid>| v.map(|u| u.to_string()).unwrap_or_default();
        for role in &self.roles {
            debug_assert!(role.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'));
        }
        let plans = if self.generic_plans {
            ", set_config('plan_cache_mode', 'force_generic_plan', true)"
        } else {
            ""
        };
        format!(
            "SELECT set_config('app.tenant_id', '{}', true), set_config('app.user_id', '{}', true), \
             set_config('app.roles', '{}', true), set_config('app.partner_id', '{}', true), \
             set_config('app.driver_id', '{}', true){plans};",
            uuid(self.tenant_id),
            uuid(self.user_id),
            self.roles.join(","),
            uuid(self.partner_id),
            uuid(self.driver_id),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authz::Role;

    #[test]
    fn caller_context_names_tenant_user_and_roles() {
        let caller = Caller {
            user_id: Uuid::nil(),
            tenant_id: Uuid::max(),
            roles: vec![Role::Admin, Role::Auditor],
            session_id: Uuid::nil(),
            partner_id: None,
            driver_id: None,
        };
        let sql = DbContext::for_caller(&caller).begin_statement();
        assert!(sql.starts_with("BEGIN; SELECT set_config('app.tenant_id', 'ffffffff-"));
        assert!(sql.contains("set_config('app.roles', 'admin,auditor', true)"));
        assert!(sql.contains("set_config('app.partner_id', '', true)"));
        assert!(!sql.contains("plan_cache_mode"));
        let sql = DbContext::for_caller(&caller)
            .with_generic_plans()
            .begin_statement();
        assert!(sql.ends_with(
            "set_config('app.driver_id', '', true), \
             set_config('plan_cache_mode', 'force_generic_plan', true);"
        ));
    }
}
