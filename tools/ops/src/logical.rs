//! `ops export` and `ops import`: one service's schema moved to another database as a logical
//! dump (`pg_dump --format=custom --schema=<schema>`), for giving a service a cluster of its
//! own. The dump holds the schema's tables and rows, its own `_sqlx_migrations`, functions,
//! row-level security, policies and grants; the roles belong to the cluster, so the import
//! creates them with the service's provisioning (without passwords: those are never moved).
//!
//! An import never overwrites: a target whose schema holds a table is refused. The restore is
//! one transaction, so a failed one leaves nothing of the schema behind. A finished one is
//! checked against the dump itself (rows of every table), the service's migrations (nothing left
//! to apply) and row-level security (enabled and forced wherever the dump enables it).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use logistics_platform::db::{self, RolePasswords};
use sqlx::{Connection as _, PgConnection};
use tokio::process::Command;

use crate::backup::Bytes;
use crate::cluster;
use crate::services::{self, Service};

mod dump;

use dump::{Toc, rows_in_dump};

/// What `ops export` dumps and where.
#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    /// The service whose schema is dumped: identity, partner, fleet, inventory or shipment.
    #[arg(long, value_parser = services::named)]
    pub service: &'static Service,
    /// The dump (pg_dump custom format); written as `<out>.partial`, renamed once checked.
    #[arg(long)]
    pub out: PathBuf,
}

/// What `ops import` restores and where.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The service whose schema the dump holds.
    #[arg(long, value_parser = services::named)]
    pub service: &'static Service,
    /// The dump `ops export` wrote.
    #[arg(long)]
    pub file: PathBuf,
    /// Superuser URL of the target database (on the service's new cluster).
    #[arg(long, env = "IMPORT_TARGET_URL", hide_env_values = true)]
    pub target_url: String,
    /// URL of the target database as the schema's owner role, for the migration check.
    /// Default: the target URL with the owner as user and no password, which works with trust
    /// or peer authentication, or with the owner's password in PGPASSWORD or ~/.pgpass.
    #[arg(long, env = "IMPORT_TARGET_OWNER_URL", hide_env_values = true)]
    pub target_owner_url: Option<String>,
}

/// What `export` wrote.
#[derive(Debug)]
pub struct ExportReport {
    /// The service exported.
    pub service: &'static str,
    /// The dump.
    pub file: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Rows per table (`schema.table`, partitions each on their own), as read back from the dump.
    pub rows: BTreeMap<String, u64>,
}

/// What `import` restored and checked.
#[derive(Debug)]
pub struct ImportReport {
    /// The service imported.
    pub service: &'static str,
    /// Rows per table on the target, each equal to the dump's.
    pub rows: BTreeMap<String, u64>,
    /// Migrations in the imported `_sqlx_migrations`; the service's migrator found none to apply.
    pub migrations: usize,
    /// Tables the dump enables row-level security on, each enabled and forced on the target.
    pub row_security: Vec<String>,
    /// Tables (partitions aside) without row-level security, as in the dump.
    pub without_row_security: Vec<String>,
    /// Row-level-security policies on the target, as many as the dump has.
    pub policies: usize,
}

/// Dumps the schema of `args.service` from the platform database `source_url` (a superuser
/// URL) into `args.out`, and reads the whole dump back before it takes that name.
pub async fn export(source_url: &str, args: &ExportArgs) -> anyhow::Result<ExportReport> {
    let schema = args.service.schema.schema;
    let mut conn = cluster::connect(source_url).await?;
    let bin = cluster::superuser_bin_dir(&mut conn, "the database URL").await?;
    let tables = tables_of(&mut conn, schema, "'r'").await?;
    conn.close().await?;
    anyhow::ensure!(
        !tables.is_empty(),
        "the database has no table in schema {schema}: nothing to export"
    );

    let mut partial = args.out.clone().into_os_string();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    cluster::run(
        Command::new(bin.join("pg_dump"))
            .args(["--format=custom", "--schema", schema, "--file"])
            .arg(&partial)
            .arg("--dbname")
            .arg(source_url),
        "pg_dump of the schema",
    )
    .await?;
    let toc = Toc::read(&bin, &partial).await?;
    anyhow::ensure!(
        toc.schemas == [schema],
        "the dump {} holds the schemas {:?}, not just {schema}; not renamed",
        partial.display(),
        toc.schemas
    );
    let rows = rows_in_dump(&bin, &partial).await?;
    let missing: Vec<&String> = tables.iter().filter(|t| !rows.contains_key(*t)).collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the dump {} lacks the rows of {missing:?}; not renamed",
        partial.display()
    );
    std::fs::rename(&partial, &args.out)
        .with_context(|| format!("renaming {} to its name", partial.display()))?;
    let bytes = std::fs::metadata(&args.out)?.len();
    Ok(ExportReport {
        service: args.service.name,
        file: args.out.clone(),
        bytes,
        rows,
    })
}

/// Restores the dump `args.file` of `args.service` into the target database, which must not
/// hold a table in that schema, and checks the result (see the module's note).
pub async fn import(args: &ImportArgs) -> anyhow::Result<ImportReport> {
    let service = args.service;
    let spec = service.schema;
    let schema = spec.schema;
    anyhow::ensure!(args.file.is_file(), "no dump at {}", args.file.display());
    let mut conn = cluster::connect(&args.target_url)
        .await
        .context("connecting to the target")?;
    let bin = cluster::superuser_bin_dir(&mut conn, "the target URL").await?;
    let toc = Toc::read(&bin, &args.file).await?;
    anyhow::ensure!(
        toc.schemas == [schema],
        "{} is a dump of the schemas {:?}, not of {schema}",
        args.file.display(),
        toc.schemas
    );
    let existing = tables_of(&mut conn, schema, "'r', 'p'").await?;
    anyhow::ensure!(
        existing.is_empty(),
        "the target already has schema {schema} with {} tables in it ({}{}): import never \
         overwrites; nothing was changed",
        existing.len(),
        existing[..existing.len().min(5)].join(", "),
        if existing.len() > 5 { ", ..." } else { "" }
    );

    let provision = async || {
        db::provision(&args.target_url, spec, &RolePasswords::default())
            .await
            .context("provisioning the service's roles and extensions on the target")
    };
    provision().await?;
    // The dump creates the schema itself, with its grants and default privileges. RESTRICT:
    // a schema holding anything (a function, a view) is not this tool's to drop.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP SCHEMA {schema} RESTRICT"
    )))
    .execute(&mut conn)
    .await
    .with_context(|| {
        format!("dropping the schema {schema} provisioning left on the target (it is not empty)")
    })?;
    let restored = cluster::run(
        Command::new(bin.join("pg_restore"))
            .args(["--exit-on-error", "--single-transaction", "--dbname"])
            .arg(&args.target_url)
            .arg(&args.file),
        "pg_restore into the target",
    )
    .await;
    if let Err(err) = restored {
        // Leave the target as the service's own provisioning would: an empty schema.
        let again = provision().await.err();
        return Err(err.context(format!(
            "nothing of {schema} was imported (the restore is one transaction){}",
            again.map_or(String::new(), |e| format!(
                "; re-provisioning failed too: {e:#}"
            ))
        )));
    }

    let owner_url = match &args.target_owner_url {
        Some(url) => url.clone(),
        None => url_as(&args.target_url, spec.owner_role)?,
    };
    let checked = async {
        let migrations = check_migrations(&mut conn, &owner_url, service).await?;
        let rows = check_rows(&mut conn, &bin, &args.file).await?;
        let row_security = check_row_security(&mut conn, schema, &toc).await?;
        // pg_restore leaves the planner without statistics, and autovacuum never analyzes a
        // partitioned parent: the service's first queries should not pay for that.
        for table in tables_of(&mut conn, schema, "'r', 'p'").await? {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
                .execute(&mut conn)
                .await
                .with_context(|| format!("analyzing {table}"))?;
        }
        anyhow::Ok((migrations, rows, row_security))
    };
    let (migrations, rows, (row_security, without_row_security, policies)) = checked
        .await
        .with_context(|| format!("{schema} is imported on the target, but checking it failed"))?;
    conn.close().await?;
    Ok(ImportReport {
        service: service.name,
        rows,
        migrations,
        row_security,
        without_row_security,
        policies,
    })
}

/// The imported `_sqlx_migrations` holds every migration this binary knows, and the service's
/// migrator, run as the owner, finds nothing to apply. Returns how many it holds.
async fn check_migrations(
    conn: &mut PgConnection,
    owner_url: &str,
    service: &Service,
) -> anyhow::Result<usize> {
    let schema = service.schema.schema;
    let applied_sql = format!("SELECT version FROM {schema}._sqlx_migrations WHERE success");
    let applied: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(applied_sql.clone()))
        .fetch_all(&mut *conn)
        .await
        .context("reading the imported _sqlx_migrations")?;
    let missing: Vec<i64> = service
        .migrator
        .iter()
        .filter(|m| m.migration_type.is_up_migration() && !applied.contains(&m.version))
        .map(|m| m.version)
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the imported schema lacks the migrations {missing:?} this ops binary knows: the dump \
         is older than the service; the data is imported, run `{} migrate` on the target",
        service.name
    );
    db::migrate(owner_url, schema, service.migrator)
        .await
        .context("running the service's migrations as the owner on the target")?;
    let after: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(applied_sql))
        .fetch_all(&mut *conn)
        .await?;
    anyhow::ensure!(
        after.len() == applied.len(),
        "the service's migrations applied {} more on the imported schema",
        after.len().saturating_sub(applied.len())
    );
    Ok(applied.len())
}

/// Every table of the dump has on the target exactly the rows the dump holds for it.
async fn check_rows(
    conn: &mut PgConnection,
    bin: &Path,
    file: &Path,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let expected = rows_in_dump(bin, file).await?;
    let mut found = BTreeMap::new();
    let mut differences = Vec::new();
    for (table, &rows) in &expected {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(table)
            .fetch_one(&mut *conn)
            .await?;
        if !exists {
            differences.push(format!("{table}: missing (the dump has {rows} rows)"));
            continue;
        }
        // `table` is pg_dump's quoted name, just resolved as a relation.
        let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM ONLY {table}"
        )))
        .fetch_one(&mut *conn)
        .await?;
        let count = u64::try_from(count)?;
        if count != rows {
            differences.push(format!("{table}: {count} rows, the dump has {rows}"));
        }
        found.insert(table.clone(), count);
    }
    anyhow::ensure!(
        differences.is_empty(),
        "the target's rows differ from the dump's:\n  {}",
        differences.join("\n  ")
    );
    Ok(found)
}

/// Row-level security is enabled and forced on every table the dump enables it on, and the
/// target has as many policies as the dump. Returns those tables, the tables without it
/// (partitions aside) and the number of policies.
async fn check_row_security(
    conn: &mut PgConnection,
    schema: &str,
    toc: &Toc,
) -> anyhow::Result<(Vec<String>, Vec<String>, usize)> {
    let flags: Vec<(String, bool, bool)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND NOT c.relispartition \
          ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?;
    let unprotected: Vec<&String> = toc
        .row_security
        .iter()
        .filter(|t| {
            !flags
                .iter()
                .any(|(name, on, forced)| name == *t && *on && *forced)
        })
        .collect();
    anyhow::ensure!(
        unprotected.is_empty(),
        "row-level security is not enabled and forced on the target for {unprotected:?} (the \
         dump enables it on them)"
    );
    let policies: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1",
    )
    .bind(schema)
    .fetch_one(&mut *conn)
    .await?;
    let policies = usize::try_from(policies)?;
    anyhow::ensure!(
        policies == toc.policies,
        "the target has {policies} row-level-security policies in {schema}, the dump {}",
        toc.policies
    );
    let qualified = |name: &String| format!("{schema}.{name}");
    Ok((
        toc.row_security.iter().map(qualified).collect(),
        flags
            .iter()
            .filter(|(_, on, _)| !on)
            .map(|(name, ..)| qualified(name))
            .collect(),
        policies,
    ))
}

/// The relations of `schema` of the kinds `relkinds` (an SQL list), as `schema.table`.
async fn tables_of(
    conn: &mut PgConnection,
    schema: &str,
    relkinds: &'static str,
) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE n.nspname = $1 AND c.relkind IN ({relkinds}) ORDER BY 1"
    )))
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?)
}

/// `url` with `role` as its user and no password.
fn url_as(url: &str, role: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url
        .split_once("://")
        .context("the target URL is not a postgres:// URL; pass --target-owner-url")?;
    let (authority, path) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let host = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    Ok(format!("{scheme}://{role}@{host}{path}"))
}

impl fmt::Display for ExportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "exported {} to {}: {}, {} tables, {} rows",
            self.service,
            self.file.display(),
            Bytes(self.bytes),
            self.rows.len(),
            self.rows.values().sum::<u64>()
        )?;
        write_rows(f, &self.rows)
    }
}

impl fmt::Display for ImportReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "imported {}: {} tables, {} rows, every table's count equal to the dump's",
            self.service,
            self.rows.len(),
            self.rows.values().sum::<u64>()
        )?;
        write_rows(f, &self.rows)?;
        writeln!(
            f,
            "migrations: {} came along, nothing left to apply",
            self.migrations
        )?;
        writeln!(
            f,
            "row-level security enabled and forced on {} tables, {} policies; without it: {}",
            self.row_security.len(),
            self.policies,
            if self.without_row_security.is_empty() {
                "none".to_owned()
            } else {
                self.without_row_security.join(", ")
            }
        )?;
        writeln!(
            f,
            "role passwords were not moved: set them on the target with `{} provision` \
             (OWNER_PASSWORD, APP_PASSWORD)",
            self.service
        )
    }
}

fn write_rows(f: &mut fmt::Formatter<'_>, rows: &BTreeMap<String, u64>) -> fmt::Result {
    for (table, n) in rows {
        writeln!(f, "  {table:<60} {n:>12}")?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_owner_url_is_the_target_url_with_the_owner_and_no_password() {
        assert_eq!(
            url_as(
                "postgres://postgres:secret@db.internal:5433/logistics?sslmode=require",
                "inventory_owner"
            )
            .unwrap(),
            "postgres://inventory_owner@db.internal:5433/logistics?sslmode=require"
        );
        assert_eq!(
            url_as("postgresql://127.0.0.1/logistics", "fleet_owner").unwrap(),
            "postgresql://fleet_owner@127.0.0.1/logistics"
        );
        assert!(url_as("host=127.0.0.1 dbname=logistics", "fleet_owner").is_err());
    }
}
