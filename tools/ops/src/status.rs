//! `ops status`: one screen an operator reads first. Each service's gRPC health, its build
//! version (from its metrics endpoint) and its schema's last migration; the database server's
//! version and the sizes of the database and each schema; WAL archiving and replication; the
//! last backup; the oldest outbox event not yet published.
//!
//! It only reads. A part that cannot be read (a service down, no backup configured) is
//! reported as such; the rest still prints.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgConnection;
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::backup::{BackupConfig, Backups, Bytes};
use crate::cluster;
use crate::services;

/// Where the services listen.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusConfig {
    /// Each service's gRPC address and metrics address, `name=grpc_host:port[,metrics_host:port]`;
    /// the local stack's by default.
    #[arg(
        long = "service",
        env = "OPS_SERVICES",
        value_delimiter = ' ',
        default_values_t = default_services()
    )]
    pub services: Vec<String>,
    #[command(flatten)]
    pub backup: BackupConfig,
}

fn default_services() -> Vec<String> {
    services::ALL
        .iter()
        .zip(1..)
        .map(|(s, i)| format!("{}=127.0.0.1:{},127.0.0.1:{}", s.name, 50050 + i, 9100 + i))
        .collect()
}

/// A service endpoint as configured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Service name.
    pub name: String,
    /// gRPC address.
    pub grpc: String,
    /// Metrics address, if it serves metrics.
    pub metrics: Option<String>,
}

/// Reads `name=grpc[,metrics]`.
pub fn parse_endpoint(raw: &str) -> anyhow::Result<Endpoint> {
    let (name, rest) = raw
        .split_once('=')
        .with_context(|| format!("{raw:?} is not name=host:port[,host:port]"))?;
    services::named(name)?;
    let mut parts = rest.split(',');
    let grpc = parts.next().unwrap_or_default().to_owned();
    anyhow::ensure!(!grpc.is_empty(), "{raw:?} has no gRPC address");
    Ok(Endpoint {
        name: name.to_owned(),
        grpc,
        metrics: parts.next().filter(|m| !m.is_empty()).map(str::to_owned),
    })
}

/// The whole report, as text.
pub async fn report(url: &str, config: &StatusConfig) -> anyhow::Result<String> {
    let mut out = String::new();
    let mut conn = cluster::connect(url).await?;
    writeln!(out, "services:")?;
    for raw in &config.services {
        let endpoint = parse_endpoint(raw)?;
        let health = health(&endpoint.grpc).await;
        let version = match &endpoint.metrics {
            Some(addr) => build_version(addr)
                .await
                .unwrap_or_else(|e| format!("unknown ({e:#})")),
            None => "unknown (no metrics address)".to_owned(),
        };
        let schema = services::named(&endpoint.name)?.schema.schema;
        let migration = last_migration(&mut conn, schema).await?;
        writeln!(
            out,
            "  {:<10} {:<22} {:<12} version {:<8} schema {schema}: {migration}",
            endpoint.name, endpoint.grpc, health, version
        )?;
    }
    database(&mut conn, &mut out).await?;
    archiving(&mut conn, &mut out).await?;
    match last_backup(url, &config.backup).await {
        Ok(line) => writeln!(out, "last backup: {line}")?,
        Err(err) => writeln!(out, "last backup: unknown ({err:#})")?,
    }
    let oldest: Result<Option<OffsetDateTime>, _> = sqlx::query_scalar(
        "SELECT min(created_at) FROM shipment.outbox WHERE published_at IS NULL",
    )
    .fetch_one(&mut conn)
    .await;
    match oldest {
        Ok(Some(at)) => writeln!(
            out,
            "oldest unpublished outbox event: {} ({} ago)",
            at,
            age(OffsetDateTime::now_utc() - at)
        )?,
        Ok(None) => writeln!(out, "oldest unpublished outbox event: none")?,
        Err(_) => writeln!(
            out,
            "oldest unpublished outbox event: unknown (no shipment schema)"
        )?,
    }
    Ok(out)
}

/// SERVING, NOT_SERVING, or why it could not be asked.
async fn health(addr: &str) -> String {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let asked = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .connect()
            .await?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?
            .into_inner()
            .status();
        anyhow::Ok(status.as_str_name().to_owned())
    };
    match asked.await {
        Ok(status) => status,
        Err(_) => "UNREACHABLE".to_owned(),
    }
}

/// The `version` label of `build_info` on the metrics page at `addr`.
async fn build_version(addr: &str) -> anyhow::Result<String> {
    let page = tokio::time::timeout(Duration::from_secs(2), get_metrics(addr))
        .await
        .context("timed out")??;
    version_of(&page).context("no build_info on the metrics page")
}

/// `GET /metrics` over HTTP/1.0 (the page is small and the answer ends with the connection).
async fn get_metrics(addr: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET /metrics HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("not an HTTP response")?;
    anyhow::ensure!(
        head.starts_with("HTTP/1.1 200") || head.starts_with("HTTP/1.0 200"),
        "metrics answered {}",
        head.lines().next().unwrap_or_default()
    );
    Ok(body.to_owned())
}

fn version_of(page: &str) -> Option<String> {
    let line = page.lines().find(|l| l.starts_with("build_info{"))?;
    let start = line.find("version=\"")? + "version=\"".len();
    let end = line[start..].find('"')? + start;
    Some(line[start..end].to_owned())
}

async fn last_migration(conn: &mut PgConnection, schema: &str) -> anyhow::Result<String> {
    let sql = format!(
        "SELECT version, description, installed_on FROM {schema}._sqlx_migrations \
          WHERE success ORDER BY version DESC LIMIT 1"
    );
    let row: Result<Option<(i64, String, OffsetDateTime)>, _> =
        sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_optional(&mut *conn)
            .await;
    Ok(match row {
        Ok(Some((version, description, at))) => {
            format!("migration {version:04} {description} ({})", at.date())
        }
        Ok(None) => "no migration applied".to_owned(),
        Err(_) => "not provisioned".to_owned(),
    })
}

async fn database(conn: &mut PgConnection, out: &mut String) -> anyhow::Result<()> {
    let (version, name, size): (String, String, i64) = sqlx::query_as(
        "SELECT version(), current_database()::text, pg_database_size(current_database())",
    )
    .fetch_one(&mut *conn)
    .await?;
    writeln!(out, "database: {version}")?;
    writeln!(out, "  {name}: {}", Bytes(size as u64))?;
    let schemas: Vec<&str> = services::ALL.iter().map(|s| s.schema.schema).collect();
    let sizes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT n.nspname::text, COALESCE(sum(pg_total_relation_size(c.oid)) \
                FILTER (WHERE c.relkind IN ('r', 'm', 't')), 0)::int8 \
           FROM pg_namespace n LEFT JOIN pg_class c ON c.relnamespace = n.oid \
          WHERE n.nspname = ANY($1) GROUP BY 1 ORDER BY 1",
    )
    .bind(&schemas)
    .fetch_all(&mut *conn)
    .await?;
    for (schema, bytes) in sizes {
        writeln!(out, "    schema {schema:<10} {}", Bytes(bytes as u64))?;
    }
    Ok(())
}

async fn archiving(conn: &mut PgConnection, out: &mut String) -> anyhow::Result<()> {
    let mode: String = sqlx::query_scalar("SHOW archive_mode")
        .fetch_one(&mut *conn)
        .await?;
    let (archived, last_wal, last_time, failed, last_failed): (
        i64,
        Option<String>,
        Option<OffsetDateTime>,
        i64,
        Option<OffsetDateTime>,
    ) = sqlx::query_as(
        "SELECT archived_count, last_archived_wal, last_archived_time, failed_count, last_failed_time \
           FROM pg_stat_archiver",
    )
    .fetch_one(&mut *conn)
    .await?;
    let last = match (last_wal, last_time) {
        (Some(wal), Some(at)) => format!("last {wal} {} ago", age(OffsetDateTime::now_utc() - at)),
        _ => "none yet".to_owned(),
    };
    let failures = match last_failed {
        Some(at) if failed > 0 => format!(
            "{failed} failed, last {} ago",
            age(OffsetDateTime::now_utc() - at)
        ),
        _ => "no failures".to_owned(),
    };
    writeln!(
        out,
        "wal archiving: {mode}; {archived} segments archived, {last}; {failures}"
    )?;
    let standbys: Vec<(Option<String>, String, Option<i64>)> = sqlx::query_as(
        "SELECT client_addr::text, state, \
                (pg_current_wal_lsn() - replay_lsn)::int8 FROM pg_stat_replication",
    )
    .fetch_all(&mut *conn)
    .await?;
    if standbys.is_empty() {
        writeln!(out, "replication: no standby connected")?;
    }
    for (addr, state, lag) in standbys {
        writeln!(
            out,
            "replication: standby {} {state}, {} behind",
            addr.unwrap_or_else(|| "local".to_owned()),
            Bytes(lag.unwrap_or(0).max(0) as u64)
        )?;
    }
    Ok(())
}

async fn last_backup(url: &str, config: &BackupConfig) -> anyhow::Result<String> {
    let backups = Backups::open(url, config.clone()).await?;
    anyhow::ensure!(backups.is_configured(), "not configured (run `ops setup`)");
    let sets = backups.list().await?;
    Ok(match sets.last() {
        Some(set) => format!(
            "{} ({}) finished {} ({} ago), {} backups in the repository",
            set.label,
            set.kind,
            set.stop,
            age(OffsetDateTime::now_utc() - set.stop),
            sets.len()
        ),
        None => "none yet".to_owned(),
    })
}

/// A duration as a human reads an age.
fn age(d: time::Duration) -> String {
    let s = d.whole_seconds().max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_a_service_and_its_addresses() {
        let e = parse_endpoint("inventory=10.0.0.5:50054,10.0.0.5:9100").unwrap();
        assert_eq!(e.grpc, "10.0.0.5:50054");
        assert_eq!(e.metrics.as_deref(), Some("10.0.0.5:9100"));
        assert_eq!(parse_endpoint("fleet=h:1").unwrap().metrics, None);
        assert!(parse_endpoint("billing=h:1").is_err());
        assert!(parse_endpoint("fleet").is_err());
    }

    #[test]
    fn the_version_is_read_off_build_info() {
        let page = "# HELP build_info x\nbuild_info{version=\"0.1.0\"} 1\nrpc_calls_total 3\n";
        assert_eq!(version_of(page).as_deref(), Some("0.1.0"));
        assert_eq!(version_of("rpc_calls_total 3\n"), None);
    }

    #[test]
    fn ages_read_in_the_largest_unit() {
        assert_eq!(age(time::Duration::seconds(42)), "42 s");
        assert_eq!(age(time::Duration::seconds(3 * 3600 + 120)), "3 h 2 min");
        assert_eq!(age(time::Duration::days(2)), "2 d 0 h");
    }
}
