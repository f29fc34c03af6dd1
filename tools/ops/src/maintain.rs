//! `ops maintain`: what keeps the database healthy without someone remembering it, safe to run
//! as often as a scheduler likes (a second run finds nothing left to do):
//!
//! - monthly partitions of the ledger and the tracking events created ahead (the services' own
//!   owner functions, the same the servers call daily);
//! - retention of tracking events: whole months older than the retention are detached, dumped
//!   to the archive directory with `pg_dump`, checked, and only then dropped. The stock ledger
//!   is never touched: it is the books;
//! - purges: expired or revoked sessions (with their refresh tokens), idempotency claims past
//!   their window, published outbox rows past theirs — in batches, each its own transaction;
//! - VACUUM of the purged tables, ANALYZE where rows changed since the last one, and always of the partitioned parents,
//!   which autovacuum never analyzes;
//! - a bloat report of tables (dead rows) and B-tree indexes (leaf density, by `pgstatindex`),
//!   and `REINDEX CONCURRENTLY` of the indexes past the threshold or left invalid.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sqlx::{Connection as _, PgConnection};
use time::{Date, Month, OffsetDateTime};

use crate::cluster;
use crate::services;

/// What `maintain` keeps and for how long.
#[derive(Debug, Clone, clap::Args)]
pub struct MaintainConfig {
    /// Whole months of tracking events kept in the database (older ones are archived).
    #[arg(long, env = "TRACKING_RETENTION_MONTHS", default_value_t = 24)]
    pub tracking_retention_months: u32,
    /// Where archived partitions go (`pg_dump` custom format, one file per month).
    #[arg(long, env = "ARCHIVE_DIR", default_value = ".local/archive")]
    pub archive_dir: PathBuf,
    /// Hours an idempotency claim answers a retry; older claims are purged.
    #[arg(long, env = "IDEMPOTENCY_RETENTION_HOURS", default_value_t = 168)]
    pub idempotency_retention_hours: u32,
    /// Days an expired or revoked session is kept (for audit) before it is purged.
    #[arg(long, env = "SESSION_RETENTION_DAYS", default_value_t = 30)]
    pub session_retention_days: u32,
    /// Days a published outbox row is kept before it is purged.
    #[arg(long, env = "OUTBOX_RETENTION_DAYS", default_value_t = 7)]
    pub outbox_retention_days: u32,
    /// An index whose leaf density is this many points under its fill factor is rebuilt.
    #[arg(long, env = "REINDEX_BLOAT_PERCENT", default_value_t = 30.0)]
    pub reindex_bloat_percent: f64,
    /// Indexes smaller than this are neither measured nor rebuilt (bytes).
    #[arg(long, env = "REINDEX_MIN_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub reindex_min_bytes: i64,
}

/// What one run did and found.
#[derive(Debug, Default)]
pub struct MaintainReport {
    /// Partitions created, per partitioned table.
    pub partitions_created: Vec<(String, i32)>,
    /// Tracking partitions archived (file) and dropped.
    pub archived: Vec<(String, PathBuf)>,
    /// Rows purged, per table.
    pub purged: Vec<(String, u64)>,
    /// Tables analyzed because rows changed.
    pub analyzed: Vec<String>,
    /// Partitioned parents analyzed (every run).
    pub analyzed_parents: Vec<String>,
    /// Tables and indexes with their bloat.
    pub bloat: Vec<Bloat>,
    /// Indexes rebuilt.
    pub reindexed: Vec<String>,
}

impl MaintainReport {
    /// Whether the run changed anything besides statistics.
    pub fn changed_anything(&self) -> bool {
        self.partitions_created.iter().any(|(_, n)| *n > 0)
            || !self.archived.is_empty()
            || self.purged.iter().any(|(_, n)| *n > 0)
            || !self.reindexed.is_empty()
    }
}

/// The bloat of one table or index.
#[derive(Debug, Clone)]
pub struct Bloat {
    /// `schema.name`.
    pub name: String,
    /// table or index.
    pub kind: &'static str,
    /// Its size on disk.
    pub bytes: i64,
    /// Dead rows of all rows (tables), or points of leaf density under the fill factor
    /// (indexes), in percent.
    pub percent: f64,
}

/// Rows deleted per transaction by the purges: short transactions, no long locks.
const PURGE_BATCH: i64 = 5_000;

/// Runs every task on the platform's database `url` (a superuser URL).
pub async fn run(url: &str, config: &MaintainConfig) -> anyhow::Result<MaintainReport> {
    let mut conn = cluster::connect(url).await?;
    let bin = cluster::superuser_bin_dir(&mut conn, "the database URL").await?;
    let mut report = MaintainReport::default();
    for service in &services::ALL {
        if let Some(partitions) = service.partitions {
            let created: i32 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT {}($1)",
                partitions.function
            )))
            .bind(partitions.months_ahead)
            .fetch_one(&mut conn)
            .await
            .with_context(|| format!("creating partitions of {}", partitions.table))?;
            report
                .partitions_created
                .push((partitions.table.to_owned(), created));
        }
    }
    report.archived = archive_tracking(&mut conn, url, &bin, config).await?;
    report.purged = purge(&mut conn, config).await?;
    // A big purge leaves dead rows and sparse index pages: vacuum now rather than whenever
    // autovacuum's thresholds are crossed, so the space is reusable and the bloat measured
    // below is what stays.
    for (table, rows) in &report.purged {
        if *rows > 0 {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("VACUUM {table}")))
                .execute(&mut conn)
                .await
                .with_context(|| format!("vacuuming {table}"))?;
        }
    }
    (report.analyzed, report.analyzed_parents) = analyze(&mut conn).await?;
    report.bloat = table_bloat(&mut conn).await?;
    let (index_bloat, to_rebuild) = index_bloat(&mut conn, config).await?;
    report.bloat.extend(index_bloat);
    for index in to_rebuild {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "REINDEX INDEX CONCURRENTLY {index}"
        )))
        .execute(&mut conn)
        .await
        .with_context(|| format!("rebuilding {index}"))?;
        report.reindexed.push(index);
    }
    conn.close().await?;
    Ok(report)
}

/// The first day of the month `months` before the current one (UTC).
fn months_before_this(now: OffsetDateTime, months: u32) -> anyhow::Result<Date> {
    let total = now.year() * 12 + i32::from(u8::from(now.month())) - 1 - months as i32;
    let month = Month::try_from(u8::try_from(total.rem_euclid(12) + 1)?)?;
    Ok(Date::from_calendar_date(total.div_euclid(12), month, 1)?)
}

/// The month a `tracking_events_YYYY_MM` partition holds.
fn partition_month(name: &str) -> Option<Date> {
    let rest = name.strip_prefix("tracking_events_")?;
    let (year, month) = rest.split_once('_')?;
    let month = Month::try_from(month.parse::<u8>().ok()?).ok()?;
    Date::from_calendar_date(year.parse().ok()?, month, 1).ok()
}

/// Detaches, archives and drops the tracking partitions of months before the retention. A run
/// interrupted half-way is finished by the next: a pending detach is finalized, a partition
/// already detached is archived, a dump already written is written again.
async fn archive_tracking(
    conn: &mut PgConnection,
    url: &str,
    bin: &Path,
    config: &MaintainConfig,
) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let cutoff = months_before_this(OffsetDateTime::now_utc(), config.tracking_retention_months)?;
    // Every table named like a month of tracking events, attached or not.
    let rows: Vec<(String, Option<bool>)> = sqlx::query_as(
        "SELECT c.relname::text, i.inhdetachpending \
           FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'shipment' \
           LEFT JOIN pg_inherits i ON i.inhrelid = c.oid \
          WHERE c.relkind = 'r' AND c.relname ~ '^tracking_events_[0-9]{4}_[0-9]{2}$' \
          ORDER BY c.relname",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut archived = Vec::new();
    for (name, detach_pending) in rows {
        let Some(month) = partition_month(&name) else {
            continue;
        };
        if month >= cutoff {
            continue;
        }
        match detach_pending {
            Some(true) => {
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE shipment.tracking_events DETACH PARTITION shipment.{name} FINALIZE"
                )))
                .execute(&mut *conn)
                .await?;
            }
            Some(false) => {
                // Concurrently: inserts into this month's partition go on meanwhile.
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "ALTER TABLE shipment.tracking_events DETACH PARTITION shipment.{name} CONCURRENTLY"
                )))
                .execute(&mut *conn)
                .await?;
            }
            None => {} // detached by an earlier run that stopped before the drop
        }
        let file = dump_table(url, bin, "shipment", &name, &config.archive_dir).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE shipment.{name}")))
            .execute(&mut *conn)
            .await?;
        archived.push((format!("shipment.{name}"), file));
    }
    Ok(archived)
}

/// Dumps `schema.table` into `dir/<schema>.<table>.dump` and checks the dump holds its data.
async fn dump_table(
    url: &str,
    bin: &Path,
    schema: &str,
    table: &str,
    dir: &Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let file = dir.join(format!("{schema}.{table}.dump"));
    let partial = dir.join(format!("{schema}.{table}.dump.partial"));
    cluster::run(
        tokio::process::Command::new(bin.join("pg_dump"))
            .args(["--format=custom", "--no-owner", "--table"])
            .arg(format!("{schema}.{table}"))
            .arg("--file")
            .arg(&partial)
            .arg("--dbname")
            .arg(url),
        "pg_dump of an archived partition",
    )
    .await?;
    let listing = cluster::run(
        tokio::process::Command::new(bin.join("pg_restore"))
            .arg("--list")
            .arg(&partial),
        "checking the archive",
    )
    .await?;
    anyhow::ensure!(
        listing
            .lines()
            .any(|l| l.contains("TABLE DATA") && l.contains(&format!("{schema} {table} "))),
        "the archive {} does not hold the data of {schema}.{table}; nothing dropped",
        partial.display()
    );
    std::fs::rename(&partial, &file)?;
    Ok(file)
}

/// Deletes, batch by batch, what each retention no longer keeps.
async fn purge(
    conn: &mut PgConnection,
    config: &MaintainConfig,
) -> anyhow::Result<Vec<(String, u64)>> {
    let mut purges: Vec<(String, String)> = vec![(
        "identity.sessions".to_owned(),
        format!(
            "expires_at < now() - interval '{days} days' OR revoked_at < now() - interval '{days} days'",
            days = config.session_retention_days
        ),
    )];
    for service in &services::ALL {
        purges.push((
            format!("{}.idempotency_keys", service.schema.schema),
            format!(
                "created_at < now() - interval '{} hours'",
                config.idempotency_retention_hours
            ),
        ));
    }
    purges.push((
        "shipment.outbox".to_owned(),
        format!(
            "published_at < now() - interval '{} days'",
            config.outbox_retention_days
        ),
    ));
    let mut purged = Vec::new();
    for (table, condition) in purges {
        let mut total = 0u64;
        loop {
            let sql = format!(
                "DELETE FROM {table} WHERE ctid = ANY (ARRAY(SELECT ctid FROM {table} WHERE {condition} LIMIT {PURGE_BATCH}))"
            );
            let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut *conn)
                .await
                .with_context(|| format!("purging {table}"))?;
            total += done.rows_affected();
            if done.rows_affected() < PURGE_BATCH as u64 {
                break;
            }
        }
        purged.push((table, total));
    }
    Ok(purged)
}

/// The platform's schemas.
fn schemas() -> Vec<&'static str> {
    services::ALL.iter().map(|s| s.schema.schema).collect()
}

/// ANALYZE of the tables with rows changed since their last analysis, and of every partitioned
/// parent. Returns both lists.
async fn analyze(conn: &mut PgConnection) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    let changed: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', schemaname, relname) FROM pg_stat_user_tables \
          WHERE schemaname = ANY($1) AND n_mod_since_analyze > 0 ORDER BY 1",
    )
    .bind(schemas())
    .fetch_all(&mut *conn)
    .await?;
    let parents: Vec<String> = sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind = 'p' AND n.nspname = ANY($1) ORDER BY 1",
    )
    .bind(schemas())
    .fetch_all(&mut *conn)
    .await?;
    for table in changed.iter().chain(&parents) {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("ANALYZE {table}")))
            .execute(&mut *conn)
            .await?;
    }
    Ok((changed, parents))
}

/// Tables with dead rows, most bloated first.
async fn table_bloat(conn: &mut PgConnection) -> anyhow::Result<Vec<Bloat>> {
    let rows: Vec<(String, i64, f64)> = sqlx::query_as(
        "SELECT format('%I.%I', schemaname, relname), pg_table_size(relid), \
                (100.0 * n_dead_tup / GREATEST(n_live_tup + n_dead_tup, 1))::float8 \
           FROM pg_stat_user_tables \
          WHERE schemaname = ANY($1) AND n_dead_tup > 0 \
          ORDER BY 3 DESC, 1",
    )
    .bind(schemas())
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, bytes, percent)| Bloat {
            name,
            kind: "table",
            bytes,
            percent,
        })
        .collect())
}

/// B-tree indexes of at least the minimum size with their bloat (fill factor minus leaf
/// density, measured by `pgstatindex`), and the ones to rebuild: past the threshold, or
/// invalid (a concurrent build that failed).
async fn index_bloat(
    conn: &mut PgConnection,
    config: &MaintainConfig,
) -> anyhow::Result<(Vec<Bloat>, Vec<String>)> {
    sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pgstattuple")
        .execute(&mut *conn)
        .await?;
    let rows: Vec<(String, i64, bool, Option<f64>)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname), pg_relation_size(c.oid), i.indisvalid, \
                CASE WHEN i.indisvalid AND pg_relation_size(c.oid) >= $2 \
                     THEN (COALESCE((SELECT split_part(o, '=', 2)::float8 FROM unnest(c.reloptions) o \
                                      WHERE o LIKE 'fillfactor=%'), 90) \
                           - (pgstatindex(c.oid)).avg_leaf_density)::float8 END \
           FROM pg_index i \
           JOIN pg_class c ON c.oid = i.indexrelid \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_am a ON a.oid = c.relam AND a.amname = 'btree' \
          WHERE n.nspname = ANY($1) AND c.relkind = 'i' \
          ORDER BY 1",
    )
    .bind(schemas())
    .bind(config.reindex_min_bytes)
    .fetch_all(&mut *conn)
    .await?;
    let mut bloat = Vec::new();
    let mut rebuild = Vec::new();
    for (name, bytes, valid, points) in rows {
        if !valid {
            rebuild.push(name.clone());
        }
        if let Some(points) = points {
            // An empty index reads as NaN density.
            let percent = if points.is_finite() {
                points.max(0.0)
            } else {
                0.0
            };
            if percent >= config.reindex_bloat_percent {
                rebuild.push(name.clone());
            }
            bloat.push(Bloat {
                name,
                kind: "index",
                bytes,
                percent,
            });
        }
    }
    bloat.sort_by(|a, b| b.percent.total_cmp(&a.percent));
    rebuild.dedup();
    Ok((bloat, rebuild))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cutoff_counts_whole_months_back_across_years() {
        let now = time::macros::datetime!(2026-02-15 10:00 UTC);
        assert_eq!(
            months_before_this(now, 0).unwrap(),
            time::macros::date!(2026 - 02 - 01)
        );
        assert_eq!(
            months_before_this(now, 2).unwrap(),
            time::macros::date!(2025 - 12 - 01)
        );
        assert_eq!(
            months_before_this(now, 26).unwrap(),
            time::macros::date!(2023 - 12 - 01)
        );
    }

    #[test]
    fn only_month_partitions_have_a_month() {
        assert_eq!(
            partition_month("tracking_events_2024_07"),
            Some(time::macros::date!(2024 - 07 - 01))
        );
        assert_eq!(partition_month("tracking_events_2024_13"), None);
        assert_eq!(partition_month("tracking_event_ids"), None);
    }
}
