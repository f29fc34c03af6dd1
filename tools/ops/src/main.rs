//! `ops`: the operator's commands for the platform's database. Wiring only: each subcommand's
//! work lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use ops::backup::{BackupConfig, BackupType, Backups, Bytes, RestoreTarget};
use ops::cluster::DEFAULT_ADMIN_URL;
use ops::maintain::{self, MaintainConfig};
use ops::status::StatusConfig;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Operations for the logistics platform's PostgreSQL: backups and restores, logical export
/// and import of one service, maintenance, status, slow queries, the ERD.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Superuser URL of the platform's database (the one holding the five schemas).
    #[arg(long, global = true, env = "OPS_DATABASE_URL", default_value = DEFAULT_ADMIN_URL, hide_env_values = true)]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Configure pgBackRest for the cluster: WAL archiving, retention, the stanza; preload
    /// pg_stat_statements. Safe to run again.
    Setup {
        #[command(flatten)]
        backup: BackupConfig,
        /// Restart PostgreSQL when a changed setting needs it (archive_mode,
        /// shared_preload_libraries); otherwise say so and leave it to the operator.
        #[arg(long)]
        restart: bool,
        /// Only preload pg_stat_statements (the slow-query report); leave archiving off.
        #[arg(long)]
        statements_only: bool,
    },
    /// Take a backup (`--type full|diff|incr`), or `list`, `check`, `verify`.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        action: Option<BackupAction>,
        /// Kind of backup to take.
        #[arg(long = "type", value_enum, default_value = "incr")]
        kind: BackupType,
        #[command(flatten)]
        backup: BackupConfig,
    },
    /// Restore into a new data directory on another port (the running cluster is untouched):
    /// the latest state, or the state at `--time`.
    Restore {
        #[command(flatten)]
        backup: BackupConfig,
        /// New data directory (must not exist or be empty).
        #[arg(long)]
        to: PathBuf,
        /// Port of the restored copy.
        #[arg(long)]
        port: u16,
        /// Point in time (RFC 3339, e.g. 2026-12-02T06:15:30Z); the latest state without it.
        #[arg(long, value_parser = parse_time)]
        time: Option<OffsetDateTime>,
        /// Start the copy and wait until recovery has finished.
        #[arg(long)]
        start: bool,
    },
    /// Generate the entity-relationship diagram (docs/erd.md, erd.dot, erd.svg), or --check it.
    Erd(ops::erd::Args),
    /// Dump one service's schema (rows, its `_sqlx_migrations`, policies, grants) for moving it
    /// to a cluster of its own: pg_dump custom format, read back before it takes its name.
    Export(ops::logical::ExportArgs),
    /// Restore an `ops export` dump into another database, never over a schema that holds a
    /// table: provisions the service's roles and extensions, restores in one transaction,
    /// then checks rows, migrations and row-level security. Role passwords are not moved: set
    /// them afterwards with the service's own `provision` (OWNER_PASSWORD, APP_PASSWORD).
    Import(ops::logical::ImportArgs),
    /// Health, versions, database and schema sizes, archiving and replication, the last
    /// backup, the oldest unpublished outbox event.
    Status {
        #[command(flatten)]
        config: StatusConfig,
    },
    /// The statements that cost the most (pg_stat_statements): by total and by mean time.
    SlowQueries {
        /// Statements per list.
        #[arg(long, default_value_t = 10)]
        limit: i64,
    },
    /// Partitions ahead, tracking retention (archive, then drop), purges, ANALYZE, bloat
    /// report and concurrent reindexing. Safe to run repeatedly.
    Maintain {
        #[command(flatten)]
        config: MaintainConfig,
    },
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// What the repository holds: every backup with its times and sizes.
    List {
        #[command(flatten)]
        backup: BackupConfig,
    },
    /// The configuration is valid and WAL reaches the repository.
    Check {
        #[command(flatten)]
        backup: BackupConfig,
    },
    /// Read every backed-up file and WAL segment back and check its checksum.
    Verify {
        #[command(flatten)]
        backup: BackupConfig,
    },
}

fn parse_time(raw: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(raw, &Rfc3339).map_err(|e| format!("not an RFC 3339 time: {e}"))
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    logistics_platform::telemetry::init(false);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ops: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url;
    match cli.command {
        Command::Erd(args) => ops::erd::run(args).await?,
        Command::Export(args) => print!("{}", ops::logical::export(&url, &args).await?),
        Command::Import(args) => print!("{}", ops::logical::import(&args).await?),
        Command::Setup {
            backup,
            restart,
            statements_only,
        } => {
            let report = Backups::open(&url, backup)
                .await?
                .setup(restart, !statements_only)
                .await?;
            println!("settings changed: {}", list_or_none(&report.changed));
            if report.restarted {
                println!("PostgreSQL restarted to apply them");
            }
            if !report.pending_restart.is_empty() {
                println!(
                    "waiting for a restart of PostgreSQL: {} (run again with --restart)",
                    report.pending_restart.join(", ")
                );
            }
            if statements_only {
                return Ok(());
            }
            println!(
                "stanza ready; archiving {}",
                if report.checked {
                    "checked end to end"
                } else {
                    "starts after the restart"
                }
            );
        }
        Command::Backup {
            action,
            kind,
            backup,
        } => match action {
            None => {
                let started = std::time::Instant::now();
                let set = Backups::open(&url, backup).await?.backup(kind).await?;
                println!(
                    "{} backup {} in {:.1} s: {} copied of {} ({} in the repository)",
                    set.kind,
                    set.label,
                    started.elapsed().as_secs_f64(),
                    Bytes(set.backup_size),
                    Bytes(set.database_size),
                    Bytes(set.repository_size)
                );
            }
            Some(BackupAction::List { backup }) => {
                let sets = Backups::open(&url, backup).await?.list().await?;
                print_backups(&sets);
            }
            Some(BackupAction::Check { backup }) => {
                Backups::open(&url, backup).await?.check().await?;
                println!("ok: configuration valid, WAL archiving reaches the repository");
            }
            Some(BackupAction::Verify { backup }) => {
                let out = Backups::open(&url, backup).await?.verify().await?;
                print!("{out}");
                println!("ok: every backup and WAL segment read back and checked");
            }
        },
        Command::Restore {
            backup,
            to,
            port,
            time,
            start,
        } => {
            let target = time.map_or(RestoreTarget::Latest, RestoreTarget::Time);
            let report = Backups::open(&url, backup)
                .await?
                .restore(&to, port, target, start)
                .await?;
            println!(
                "restored into {} in {:.1} s",
                report.data_directory.display(),
                report.restore_time.as_secs_f64()
            );
            match report.recovery_time {
                Some(recovery) => println!(
                    "recovered and serving in {:.1} s: {}",
                    recovery.as_secs_f64(),
                    report.url
                ),
                None => println!(
                    "start it with: pg_ctl -D {} -l {}/restore.log start   (port {})",
                    report.data_directory.display(),
                    report.data_directory.display(),
                    report.port
                ),
            }
        }
        Command::Status { config } => print!("{}", ops::status::report(&url, &config).await?),
        Command::SlowQueries { limit } => {
            let (by_total, by_mean) = ops::slow_queries::top(&url, limit).await?;
            print!("{}", ops::slow_queries::render(&by_total, &by_mean));
        }
        Command::Maintain { config } => {
            let report = maintain::run(&url, &config).await?;
            print_maintenance(&report);
        }
    }
    Ok(())
}

fn print_maintenance(report: &maintain::MaintainReport) {
    for (table, created) in &report.partitions_created {
        println!("partitions created for {table}: {created}");
    }
    println!(
        "tracking partitions archived and dropped: {}",
        report.archived.len()
    );
    for (table, file) in &report.archived {
        println!("  {table} -> {}", file.display());
    }
    for (table, rows) in &report.purged {
        println!("purged from {table}: {rows}");
    }
    println!(
        "analyzed: {} changed tables ({}), {} partitioned parents",
        report.analyzed.len(),
        list_or_none(&report.analyzed),
        report.analyzed_parents.len()
    );
    println!("bloat (tables: dead rows; indexes: leaf density under fill factor):");
    if report.bloat.is_empty() {
        println!("  none measured");
    }
    for b in report.bloat.iter().take(15) {
        println!(
            "  {:<5} {:<60} {:>10} {:>5.1} %",
            b.kind,
            b.name,
            Bytes(b.bytes as u64).to_string(),
            b.percent
        );
    }
    println!(
        "reindexed concurrently: {}",
        list_or_none(&report.reindexed)
    );
    println!(
        "{}",
        if report.changed_anything() {
            "changes made"
        } else {
            "nothing to change"
        }
    );
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn print_backups(sets: &[ops::backup::BackupSet]) {
    if sets.is_empty() {
        println!("no backups yet");
        return;
    }
    println!(
        "{:<36} {:<5} {:<20} {:>8} {:>11} {:>11} {:>11}",
        "label", "type", "started (UTC)", "took", "database", "copied", "repository"
    );
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    for set in sets {
        println!(
            "{:<36} {:<5} {:<20} {:>7}s {:>11} {:>11} {:>11}",
            set.label,
            set.kind,
            set.start.format(&format).unwrap_or_default(),
            (set.stop - set.start).whole_seconds(),
            Bytes(set.database_size).to_string(),
            Bytes(set.backup_size).to_string(),
            Bytes(set.repository_size).to_string(),
        );
    }
}
