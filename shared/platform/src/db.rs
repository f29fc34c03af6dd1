//! Database set-up shared by every service: provisioning a service's schema and its two roles,
//! running its migrations as the owner, the runtime pool, and the health watcher that turns the
//! gRPC health status to NOT_SERVING while the database cannot be reached.

use std::time::Duration;

use anyhow::Context as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, PgPool};
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// A service's schema and the roles around it.
#[derive(Debug, Clone)]
pub struct SchemaSpec {
    /// Schema name, e.g. `identity`.
    pub schema: &'static str,
    /// Role that owns the schema and runs migrations, e.g. `identity_owner`.
    pub owner_role: &'static str,
    /// Role the service runs as: no ownership, no BYPASSRLS, rights on its own schema only.
    pub app_role: &'static str,
    /// Extensions the migrations need (`btree_gist`), created by `provision` because creating
    /// an extension takes more rights than the owner role has.
    pub extensions: &'static [&'static str],
}

impl SchemaSpec {
    /// The usual names for `schema`: `<schema>_owner` and `<schema>_app`.
    pub const fn for_service(
        schema: &'static str,
        owner_role: &'static str,
        app_role: &'static str,
    ) -> Self {
        Self {
            schema,
            owner_role,
            app_role,
            extensions: &[],
        }
    }

    /// The same with `extensions` created at provisioning.
    pub const fn with_extensions(self, extensions: &'static [&'static str]) -> Self {
        Self { extensions, ..self }
    }
}

/// Passwords for the two roles; `None` leaves the role without one (trust or peer auth).
#[derive(Debug, Clone, Default)]
pub struct RolePasswords {
    /// Owner role password.
    pub owner: Option<secrecy::SecretString>,
    /// Runtime role password.
    pub app: Option<secrecy::SecretString>,
}

/// Creates (or brings up to date) the roles, the schema and the default privileges of `spec`
/// in the database `admin_url` points at. Idempotent; safe to run concurrently for different
/// databases of one cluster (role creation races are retried).
pub async fn provision(
    admin_url: &str,
    spec: &SchemaSpec,
    passwords: &RolePasswords,
) -> anyhow::Result<()> {
    for name in [spec.schema, spec.owner_role, spec.app_role]
        .into_iter()
        .chain(spec.extensions.iter().copied())
    {
        anyhow::ensure!(
            is_identifier(name),
            "{name:?} is not a plain SQL identifier"
        );
    }
    // Statement logging off: ALTER ROLE ... PASSWORD must never reach a log.
    let options: PgConnectOptions = admin_url.parse().context("parsing the admin URL")?;
    let mut conn = options
        .log_statements(tracing::log::LevelFilter::Off)
        .log_slow_statements(tracing::log::LevelFilter::Off, Duration::from_secs(3600))
        .connect()
        .await
        .context("connecting with the admin URL")?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        match create_roles(&mut conn, spec, passwords).await {
            Ok(()) => break,
            // Two databases provisioned at once race on the cluster-wide role catalog.
            Err(err) if attempt < 10 && is_catalog_race(&err) => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(err) => return Err(err).context("creating roles"),
        }
    }
    let s = spec.schema;
    let owner = spec.owner_role;
    let app = spec.app_role;
    let statements = [
        format!("CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {owner}"),
        format!("ALTER SCHEMA {s} OWNER TO {owner}"),
        format!("REVOKE ALL ON SCHEMA {s} FROM PUBLIC"),
        format!("GRANT USAGE ON SCHEMA {s} TO {app}"),
        format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} \
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app}"
        ),
        format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {app}"
        ),
        format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC"
        ),
        format!(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {s} GRANT EXECUTE ON FUNCTIONS TO {app}"
        ),
    ];
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut conn)
            .await?;
    }
    for extension in spec.extensions {
        create_extension(&mut conn, extension).await?;
    }
    Ok(())
}

async fn create_roles(
    conn: &mut sqlx::PgConnection,
    spec: &SchemaSpec,
    passwords: &RolePasswords,
) -> anyhow::Result<()> {
    let roles = [
        (
            spec.owner_role,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS",
            &passwords.owner,
        ),
        (
            spec.app_role,
            "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOINHERIT",
            &passwords.app,
        ),
    ];
    for (role, attributes, password) in roles {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
                .bind(role)
                .fetch_one(&mut *conn)
                .await?;
        // An existing role gets the attributes too: one made by hand (NOLOGIN, say) would
        // otherwise fail at the first connection, far from here.
        let verb = if exists { "ALTER" } else { "CREATE" };
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "{verb} ROLE {role} {attributes}"
        )))
        .execute(&mut *conn)
        .await?;
        if let Some(password) = password {
            let quoted = secrecy::ExposeSecret::expose_secret(password).replace('\'', "''");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "ALTER ROLE {role} PASSWORD '{quoted}'"
            )))
            .execute(&mut *conn)
            .await?;
        }
    }
    Ok(())
}

/// Creates `extension` in `public`, retrying when another database's provisioning races on it.
async fn create_extension(conn: &mut sqlx::PgConnection, extension: &str) -> anyhow::Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let created = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE EXTENSION IF NOT EXISTS {extension} WITH SCHEMA public"
        )))
        .execute(&mut *conn)
        .await;
        match created {
            Ok(_) => return Ok(()),
            Err(err) if attempt < 10 && is_catalog_race_sqlx(&err) => {
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(err) => return Err(err).with_context(|| format!("creating extension {extension}")),
        }
    }
}

fn is_catalog_race(err: &anyhow::Error) -> bool {
    err.downcast_ref::<sqlx::Error>()
        .is_some_and(is_catalog_race_sqlx)
}

fn is_catalog_race_sqlx(err: &sqlx::Error) -> bool {
    err.as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| {
            matches!(
                code.as_ref(),
                "23505" | "XX000" | "42710" | "40001" | "40P01"
            )
        })
}

fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && name.len() <= 63
}

/// Runs `migrator` as the schema owner, with the migration table inside `schema`.
pub async fn migrate(
    owner_url: &str,
    schema: &str,
    migrator: &sqlx::migrate::Migrator,
) -> anyhow::Result<()> {
    let options: PgConnectOptions = owner_url.parse().context("parsing the migration URL")?;
    // A one-connection pool rather than a bare connection: `Migrator::run` over `&PgPool` keeps
    // the future `Send` for every lifetime, so callers can spawn it.
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options.options([("search_path", schema)]))
        .await
        .context("connecting as the schema owner")?;
    migrator.run(&pool).await.context("running migrations")?;
    pool.close().await;
    Ok(())
}

/// How long a pooled connection may sit idle before it is pinged ahead of being lent out.
pub const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The runtime pool. It connects lazily, so the service starts (and reports NOT_SERVING) while
/// the database is down, and every connection's `application_name` names the service.
///
/// sqlx pings every connection before lending it by default: one extra round trip on every
/// request, a fifth of a short read's. Here only a connection idle for longer than
/// [`CHECK_IDLE_AFTER`] is pinged, which still catches the ones a restart or an idle-session
/// timeout closed while a busy connection goes straight to work.
pub fn pool(url: &str, max_connections: u32, application_name: &str) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url.parse().context("parsing DATABASE_URL")?;
    Ok(PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .idle_timeout(Duration::from_secs(300))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > CHECK_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_lazy_with(options.application_name(application_name)))
}

/// Keeps the health status of `services` (and of the server as a whole, `""`) in line with
/// whether the database answers, checking every `every`. Runs until the task is dropped.
pub async fn watch_health(
    pool: PgPool,
    reporter: HealthReporter,
    services: Vec<&'static str>,
    every: Duration,
) {
    let mut last = None;
    loop {
        let ok = tokio::time::timeout(
            Duration::from_secs(3),
            sqlx::query("SELECT 1").execute(&pool),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        let status = if ok {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            if ok {
                tracing::info!("database reachable; serving");
            } else {
                tracing::warn!("database unreachable; health is NOT_SERVING");
            }
            reporter.set_service_status("", status).await;
            for name in &services {
                reporter.set_service_status(*name, status).await;
            }
            last = Some(status);
        }
        tokio::time::sleep(every).await;
    }
}

/// Calls the schema's partition function `function` (schema-qualified, taking the months to
/// keep ahead, returning how many partitions it created).
pub async fn ensure_partitions(
    pool: &PgPool,
    function: &'static str,
    months_ahead: i32,
) -> Result<i32, sqlx::Error> {
    debug_assert!(
        function
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
    );
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {function}($1)")))
        .bind(months_ahead)
        .fetch_one(pool)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_identifiers_are_accepted() {
        assert!(is_identifier("identity_app"));
        assert!(!is_identifier("Identity"));
        assert!(!is_identifier("x; DROP ROLE postgres"));
        assert!(!is_identifier(""));
    }
}
