//! Physical backups with pgBackRest: the configuration the tool writes for the cluster, WAL
//! archiving, full, differential and incremental backups with retention, `check`, `verify`,
//! the list of what exists, and restores (latest, or to a point in time) into a new data
//! directory on another port, so the running cluster is never touched.
//!
//! pgBackRest does the work; this module only decides its settings and reads its answers.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::process::Command;

use crate::cluster::{self, Cluster};

/// Where backups go and how long they stay.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupConfig {
    /// Directory of the tool's pgBackRest configuration, logs and locks (created, owned by the
    /// cluster's OS user). Extra settings (an S3 repository, say) go in `<dir>/conf.d/*.conf`.
    #[arg(long, env = "BACKUP_DIR", default_value = ".local/backup")]
    pub backup_dir: PathBuf,
    /// The repository on local disk (pgBackRest `repo1-path`; the path inside the bucket when
    /// conf.d sets `repo1-type=s3`). Default: `<backup-dir>/repo`.
    #[arg(long, env = "BACKUP_REPO_PATH")]
    pub repo_path: Option<PathBuf>,
    /// pgBackRest stanza: the name of this cluster in the repository.
    #[arg(long, env = "BACKUP_STANZA", default_value = "logistics")]
    pub stanza: String,
    /// Full backups kept; older ones, with the differentials, incrementals and WAL that depend
    /// on them, expire after each backup.
    #[arg(long, env = "BACKUP_RETENTION_FULL", default_value_t = 2)]
    pub retention_full: u32,
    /// Differential backups kept (each with the incrementals based on it).
    #[arg(long, env = "BACKUP_RETENTION_DIFF", default_value_t = 6)]
    pub retention_diff: u32,
    /// Longest time a finished WAL segment waits before it is archived when the database is
    /// quiet: the most data a lost disk can take with it (PostgreSQL `archive_timeout`).
    #[arg(long, env = "BACKUP_ARCHIVE_TIMEOUT_SECONDS", default_value_t = 60)]
    pub archive_timeout_seconds: u32,
}

/// A kind of backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackupType {
    /// Everything.
    Full,
    /// What changed since the last full backup.
    Diff,
    /// What changed since the last backup of any kind.
    Incr,
}

impl BackupType {
    fn as_pgbackrest(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Diff => "diff",
            Self::Incr => "incr",
        }
    }
}

/// The cluster and its backup configuration.
#[derive(Debug, Clone)]
pub struct Backups {
    /// The cluster backed up.
    pub cluster: Cluster,
    config: BackupConfig,
    backup_dir: PathBuf,
}

/// What `setup` did.
#[derive(Debug, Default)]
pub struct SetupReport {
    /// Settings changed with ALTER SYSTEM.
    pub changed: Vec<String>,
    /// Settings that wait for a restart (empty after `--restart`).
    pub pending_restart: Vec<String>,
    /// Whether the cluster was restarted.
    pub restarted: bool,
    /// Whether `pgbackrest check` ran and passed (archiving works).
    pub checked: bool,
}

/// One backup in the repository.
#[derive(Debug, Clone)]
pub struct BackupSet {
    /// Its label, e.g. `20261202-061500F_20261202-062000I`.
    pub label: String,
    /// full, diff or incr.
    pub kind: String,
    /// The backup it depends on.
    pub prior: Option<String>,
    /// When it started and stopped.
    pub start: OffsetDateTime,
    /// When it stopped.
    pub stop: OffsetDateTime,
    /// Size of the database it copied, in bytes.
    pub database_size: u64,
    /// Bytes this backup copied (all of them for a full one).
    pub backup_size: u64,
    /// Bytes it takes in the repository, compressed.
    pub repository_size: u64,
}

/// Where to stop replaying WAL.
#[derive(Debug, Clone, Copy)]
pub enum RestoreTarget {
    /// To the end of the archived WAL.
    Latest,
    /// To this moment (commits after it are not replayed).
    Time(OffsetDateTime),
}

/// What `restore` did.
#[derive(Debug)]
pub struct RestoreReport {
    /// The new data directory.
    pub data_directory: PathBuf,
    /// Its port.
    pub port: u16,
    /// How long pgBackRest took to copy the files back.
    pub restore_time: Duration,
    /// How long recovery (WAL replay to the target) took, when the copy was started.
    pub recovery_time: Option<Duration>,
    /// A superuser URL of the restored copy.
    pub url: String,
}

impl Backups {
    /// The cluster `admin_url` reaches, with `config`.
    pub async fn open(admin_url: &str, config: BackupConfig) -> anyhow::Result<Self> {
        let cluster = Cluster::discover(admin_url).await?;
        let backup_dir = absolute(&config.backup_dir)?;
        Ok(Self {
            cluster,
            config,
            backup_dir,
        })
    }

    /// Whether `ops setup` has written this configuration.
    pub fn is_configured(&self) -> bool {
        self.config_file().is_file()
    }

    fn config_file(&self) -> PathBuf {
        self.backup_dir.join("pgbackrest.conf")
    }

    fn include_dir(&self) -> PathBuf {
        self.backup_dir.join("conf.d")
    }

    fn repo_path(&self) -> anyhow::Result<PathBuf> {
        match &self.config.repo_path {
            Some(path) => absolute(path),
            None => Ok(self.backup_dir.join("repo")),
        }
    }

    /// The `archive_command` the cluster runs for every finished WAL segment.
    pub fn archive_command(&self) -> String {
        format!(
            "pgbackrest --config={} --config-include-path={} --stanza={} archive-push %p",
            self.config_file().display(),
            self.include_dir().display(),
            self.config.stanza
        )
    }

    /// `pgbackrest <command>` as the cluster's owner, with this configuration.
    fn pgbackrest(&self, command: &str) -> anyhow::Result<Command> {
        let mut c = self.cluster.as_owner("pgbackrest")?;
        c.arg(format!("--config={}", self.config_file().display()))
            .arg(format!(
                "--config-include-path={}",
                self.include_dir().display()
            ))
            .arg(format!("--stanza={}", self.config.stanza))
            .arg(command);
        Ok(c)
    }

    /// Writes the pgBackRest configuration, turns WAL archiving on (and `pg_stat_statements`
    /// preloading, which the slow-query report needs, in the same restart), creates the stanza
    /// and, once archiving runs, checks it end to end. Safe to run again: it changes only what
    /// differs. Settings that need a restart wait for one unless `restart` is set. Without
    /// `archiving`, only the statement statistics are set up (the local stack does that: a
    /// developer's cluster should not archive into a checkout that may be deleted).
    pub async fn setup(&self, restart: bool, archiving: bool) -> anyhow::Result<SetupReport> {
        if archiving {
            self.write_config()?;
        }
        let mut report = SetupReport {
            changed: self.configure(archiving).await?,
            ..SetupReport::default()
        };
        report.pending_restart = pending_restart(&self.cluster.admin_url).await?;
        if !report.pending_restart.is_empty() && restart {
            self.cluster.restart().await?;
            report.restarted = true;
            report.pending_restart = pending_restart(&self.cluster.admin_url).await?;
        }
        report
            .changed
            .extend(untrack_utility_statements(&self.cluster.admin_url).await?);
        if !archiving {
            return Ok(report);
        }
        cluster::run(
            &mut self.pgbackrest("stanza-create")?,
            "pgbackrest stanza-create",
        )
        .await?;
        if report.pending_restart.is_empty() {
            self.check().await?;
            report.checked = true;
        }
        Ok(report)
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let repo = self.repo_path()?;
        let owner = &self.cluster.owner;
        for dir in [
            self.backup_dir.clone(),
            self.include_dir(),
            self.backup_dir.join("log"),
            self.backup_dir.join("lock"),
            repo.clone(),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::os::unix::fs::chown(&dir, Some(owner.uid), None)
                .with_context(|| format!("giving {} to {}", dir.display(), owner.name))?;
        }
        let c = &self.cluster;
        let user = admin_user(&c.admin_url);
        let text = format!(
            "# Written by `ops backup setup` for this cluster; edits are overwritten.\n\
             # Put extra settings (an S3 repository, encryption) in conf.d/*.conf.\n\
             [global]\n\
             repo1-path={repo}\n\
             repo1-retention-full={full}\n\
             repo1-retention-diff={diff}\n\
             # Checkpoint at once rather than waiting for the next scheduled one.\n\
             start-fast=y\n\
             # zstd: about gzip's ratio at a fraction of its CPU.\n\
             compress-type=zst\n\
             process-max=2\n\
             log-path={dir}/log\n\
             lock-path={dir}/lock\n\
             log-level-console=warn\n\
             log-level-file=info\n\
             \n\
             [{stanza}]\n\
             pg1-path={data}\n\
             pg1-port={port}\n\
             pg1-socket-path={socket}\n\
             pg1-user={user}\n",
            repo = repo.display(),
            full = self.config.retention_full,
            diff = self.config.retention_diff,
            dir = self.backup_dir.display(),
            stanza = self.config.stanza,
            data = c.data_directory.display(),
            port = c.port,
            socket = c.socket_directory.display(),
        );
        let file = self.config_file();
        std::fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
        std::os::unix::fs::chown(&file, Some(owner.uid), None)?;
        Ok(())
    }

    /// ALTER SYSTEM for what archiving (when asked) and the statement statistics need; returns
    /// the names of the settings it changed.
    async fn configure(&self, archiving: bool) -> anyhow::Result<Vec<String>> {
        let mut conn = cluster::connect(&self.cluster.admin_url).await?;
        let mut wanted = Vec::new();
        if archiving {
            wanted.push(("archive_mode", "on".to_owned()));
            wanted.push(("archive_command", self.archive_command()));
            wanted.push((
                "archive_timeout",
                self.config.archive_timeout_seconds.to_string(),
            ));
            let wal_level: String = sqlx::query_scalar("SHOW wal_level")
                .fetch_one(&mut conn)
                .await?;
            if wal_level == "minimal" {
                wanted.push(("wal_level", "replica".to_owned()));
            }
        }
        let preload = effective_setting(&mut conn, "shared_preload_libraries").await?;
        let available: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_stat_statements')",
        )
        .fetch_one(&mut conn)
        .await?;
        if available && !preload.split(',').any(|l| l.trim() == "pg_stat_statements") {
            let libraries = if preload.trim().is_empty() {
                "pg_stat_statements".to_owned()
            } else {
                format!("{preload},pg_stat_statements")
            };
            wanted.push(("shared_preload_libraries", libraries));
        }
        let mut changed = Vec::new();
        for (name, value) in wanted {
            if effective_setting(&mut conn, name).await? == value {
                continue;
            }
            // ALTER SYSTEM takes no parameters; the value is quoted as a literal.
            let sql = format!("ALTER SYSTEM SET {name} = {}", quote_literal(&value));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .execute(&mut conn)
                .await?;
            changed.push(name.to_owned());
        }
        sqlx::query("SELECT pg_reload_conf()")
            .execute(&mut conn)
            .await?;
        // The reload is asynchronous; wait until archive_command shows the new value.
        for _ in 0..if archiving { 50 } else { 0 } {
            let running: String = sqlx::query_scalar("SELECT current_setting('archive_command')")
                .fetch_one(&mut conn)
                .await?;
            if running == self.archive_command() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if available {
            sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                .execute(&mut conn)
                .await?;
        }
        Ok(changed)
    }

    /// Takes a backup of `kind` and expires what the retention settings no longer keep.
    /// Returns the new backup.
    pub async fn backup(&self, kind: BackupType) -> anyhow::Result<BackupSet> {
        let mut command = self.pgbackrest("backup")?;
        command.arg(format!("--type={}", kind.as_pgbackrest()));
        cluster::run(&mut command, "pgbackrest backup").await?;
        self.list()
            .await?
            .pop()
            .context("pgbackrest reported no backup after taking one")
    }

    /// The backups in the repository, oldest first.
    pub async fn list(&self) -> anyhow::Result<Vec<BackupSet>> {
        let mut command = self.pgbackrest("info")?;
        command.arg("--output=json");
        let json = cluster::run(&mut command, "pgbackrest info").await?;
        parse_info(&json)
    }

    /// `pgbackrest check`: the configuration is valid and a WAL segment switched now reaches
    /// the repository (it waits for it).
    pub async fn check(&self) -> anyhow::Result<()> {
        cluster::run(&mut self.pgbackrest("check")?, "pgbackrest check").await?;
        Ok(())
    }

    /// `pgbackrest verify`: every file of every backup and every archived WAL segment is read
    /// back and checked against its checksum.
    pub async fn verify(&self) -> anyhow::Result<String> {
        let mut command = self.pgbackrest("verify")?;
        command.arg("--log-level-console=info");
        cluster::run(&mut command, "pgbackrest verify").await
    }

    /// Restores into `data_directory` (which must not exist or be empty) for a copy listening
    /// on 127.0.0.1:`port` that never archives into this repository, replaying WAL to
    /// `target`; starts it and waits for recovery to finish when `start` is set.
    pub async fn restore(
        &self,
        data_directory: &Path,
        port: u16,
        target: RestoreTarget,
        start: bool,
    ) -> anyhow::Result<RestoreReport> {
        let dir = absolute(data_directory)?;
        if dir.exists() {
            anyhow::ensure!(
                std::fs::read_dir(&dir)?.next().is_none(),
                "{} is not empty: a restore goes into a new data directory",
                dir.display()
            );
        }
        anyhow::ensure!(
            dir != self.cluster.data_directory,
            "refusing to restore over the running cluster's data directory"
        );
        std::fs::create_dir_all(&dir)?;
        std::os::unix::fs::chown(&dir, Some(self.cluster.owner.uid), None)?;
        set_mode(&dir, 0o700)?;

        let started = Instant::now();
        let mut command = self.pgbackrest("restore")?;
        command
            .arg(format!("--pg1-path={}", dir.display()))
            .arg("--archive-mode=off");
        if let RestoreTarget::Time(at) = target {
            command
                .arg("--type=time")
                .arg(format!("--target={}", pgbackrest_time(at)?))
                .arg("--target-action=promote");
        }
        cluster::run(&mut command, "pgbackrest restore").await?;
        let restore_time = started.elapsed();
        self.configure_copy(&dir, port)?;

        let user = admin_user(&self.cluster.admin_url);
        let url = format!("postgres://{user}@127.0.0.1:{port}/postgres");
        let mut recovery_time = None;
        if start {
            let started = Instant::now();
            let mut command = self.cluster.as_owner(self.cluster.bin("pg_ctl"))?;
            command
                .arg("-D")
                .arg(&dir)
                .arg("-l")
                .arg(dir.join("restore.log"))
                .args(["-w", "-t", "600", "start"]);
            cluster::run(&mut command, "starting the restored copy").await?;
            cluster::wait_until_accepting(&url, 600).await?;
            recovery_time = Some(started.elapsed());
        }
        Ok(RestoreReport {
            data_directory: dir,
            port,
            restore_time,
            recovery_time,
            url,
        })
    }

    /// Makes a restored data directory a copy of its own: its port and socket, no archiving,
    /// and the configuration files a Debian cluster keeps under /etc (not in the backup).
    fn configure_copy(&self, dir: &Path, port: u16) -> anyhow::Result<()> {
        let owner = self.cluster.owner.uid;
        let conf = dir.join("postgresql.conf");
        if !conf.exists() {
            std::fs::write(
                &conf,
                "# Written by `ops restore`: the original's configuration lives outside its data directory.\n",
            )?;
            std::os::unix::fs::chown(&conf, Some(owner), None)?;
        }
        let hba = dir.join("pg_hba.conf");
        if !hba.exists() {
            std::fs::copy(&self.cluster.hba_file, &hba).with_context(|| {
                format!(
                    "copying the original's {} into the restored copy",
                    self.cluster.hba_file.display()
                )
            })?;
            std::os::unix::fs::chown(&hba, Some(owner), None)?;
        }
        let auto = dir.join("postgresql.auto.conf");
        let mut text = std::fs::read_to_string(&auto).unwrap_or_default();
        text.push_str(&format!(
            "\n# Added by `ops restore`: a copy on its own port that never archives into the original's repository.\n\
             port = {port}\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{}'\n\
             archive_mode = 'off'\n\
             hba_file = '{}'\n\
             ident_file = '{}'\n",
            dir.display(),
            hba.display(),
            dir.join("pg_ident.conf").display(),
        ));
        std::fs::write(&auto, text)?;
        std::os::unix::fs::chown(&auto, Some(owner), None)?;
        let ident = dir.join("pg_ident.conf");
        if !ident.exists() {
            std::fs::write(&ident, "")?;
            std::os::unix::fs::chown(&ident, Some(owner), None)?;
        }
        Ok(())
    }
}

/// The value `name` has once the configuration files are applied: the last valid one in the
/// files (pending a reload or restart included), else the running one, in its base unit.
async fn effective_setting(conn: &mut sqlx::PgConnection, name: &str) -> anyhow::Result<String> {
    let in_files: Option<String> = sqlx::query_scalar(
        "SELECT setting FROM pg_file_settings WHERE name = $1 AND error IS NULL \
         ORDER BY seqno DESC LIMIT 1",
    )
    .bind(name)
    .fetch_optional(&mut *conn)
    .await?;
    match in_files {
        Some(value) => Ok(value),
        // A setting of a library not loaded yet has no row: it is not set.
        None => Ok(
            sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut *conn)
                .await?
                .unwrap_or_default(),
        ),
    }
}

/// Turns `pg_stat_statements.track_utility` off once the library is loaded (its settings exist
/// only then): utility statements, ALTER ROLE ... PASSWORD among them, keep their literal text,
/// and the slow-query report has no use for them and must never show a password.
async fn untrack_utility_statements(admin_url: &str) -> anyhow::Result<Vec<String>> {
    let mut conn = cluster::connect(admin_url).await?;
    let name = "pg_stat_statements.track_utility";
    let loaded: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name = $1)")
            .bind(name)
            .fetch_one(&mut conn)
            .await?;
    if !loaded || effective_setting(&mut conn, name).await? == "off" {
        return Ok(Vec::new());
    }
    sqlx::raw_sql("ALTER SYSTEM SET pg_stat_statements.track_utility = off")
        .execute(&mut conn)
        .await?;
    sqlx::query("SELECT pg_reload_conf()")
        .execute(&mut conn)
        .await?;
    Ok(vec![name.to_owned()])
}

/// Setting names waiting for a restart.
async fn pending_restart(admin_url: &str) -> anyhow::Result<Vec<String>> {
    let mut conn = cluster::connect(admin_url).await?;
    Ok(
        sqlx::query_scalar("SELECT name FROM pg_settings WHERE pending_restart ORDER BY name")
            .fetch_all(&mut conn)
            .await?,
    )
}

#[derive(Debug, Deserialize)]
struct StanzaInfo {
    #[serde(default)]
    backup: Vec<BackupInfo>,
    status: StanzaStatus,
}

#[derive(Debug, Deserialize)]
struct StanzaStatus {
    code: i32,
    message: String,
}

#[derive(Debug, Deserialize)]
struct BackupInfo {
    label: String,
    #[serde(rename = "type")]
    kind: String,
    prior: Option<String>,
    timestamp: Stamps,
    info: Sizes,
}

#[derive(Debug, Deserialize)]
struct Stamps {
    start: i64,
    stop: i64,
}

#[derive(Debug, Deserialize)]
struct Sizes {
    size: u64,
    delta: u64,
    repository: RepositorySizes,
}

#[derive(Debug, Deserialize)]
struct RepositorySizes {
    delta: u64,
}

/// The backups of `pgbackrest info --output=json`, oldest first.
fn parse_info(json: &str) -> anyhow::Result<Vec<BackupSet>> {
    let stanzas: Vec<StanzaInfo> =
        serde_json::from_str(json).context("reading pgbackrest info's answer")?;
    let stanza = stanzas
        .into_iter()
        .next()
        .context("pgbackrest info listed no stanza")?;
    // 2: no backups yet, which is a state, not an error.
    anyhow::ensure!(
        stanza.status.code == 0 || stanza.status.code == 2,
        "the stanza is not healthy: {}",
        stanza.status.message
    );
    stanza
        .backup
        .into_iter()
        .map(|b| {
            Ok(BackupSet {
                label: b.label,
                kind: b.kind,
                prior: b.prior,
                start: OffsetDateTime::from_unix_timestamp(b.timestamp.start)?,
                stop: OffsetDateTime::from_unix_timestamp(b.timestamp.stop)?,
                database_size: b.info.size,
                backup_size: b.info.delta,
                repository_size: b.info.repository.delta,
            })
        })
        .collect()
}

/// `at` as pgBackRest's `--target` wants it: `YYYY-MM-DD HH:MM:SS.ffffff+00`.
fn pgbackrest_time(at: OffsetDateTime) -> anyhow::Result<String> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]+00"
    );
    Ok(at.to_offset(time::UtcOffset::UTC).format(&format)?)
}

/// `value` as a SQL string literal.
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// The user name of a `postgres://user[:password]@host/...` URL.
fn admin_user(url: &str) -> String {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(userinfo, _)| userinfo.split(':').next().unwrap_or("postgres").to_owned())
        .unwrap_or_else(|| "postgres".to_owned())
}

fn absolute(path: &Path) -> anyhow::Result<PathBuf> {
    Ok(if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    })
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Bytes as a human reads them.
pub struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"];
        let mut value = self.0 as f64;
        let mut unit = 0;
        while value >= 1024.0 && unit + 1 < units.len() {
            value /= 1024.0;
            unit += 1;
        }
        if unit == 0 {
            write!(f, "{} B", self.0)
        } else {
            write!(f, "{value:.1} {}", units[unit])
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn info_lists_every_backup_with_its_sizes() {
        let json = r#"[{"archive":[],"backup":[
            {"label":"20261202-061500F","type":"full","prior":null,
             "timestamp":{"start":1764656100,"stop":1764656104},
             "info":{"size":41000000,"delta":41000000,"repository":{"size":5000000,"delta":5000000}}},
            {"label":"20261202-061500F_20261202-062000I","type":"incr","prior":"20261202-061500F",
             "timestamp":{"start":1764656400,"stop":1764656401},
             "info":{"size":41100000,"delta":900000,"repository":{"size":5100000,"delta":120000}}}],
            "name":"logistics","status":{"code":0,"message":"ok"}}]"#;
        let sets = parse_info(json).unwrap();
        assert_eq!(sets.len(), 2);
        assert_eq!(sets[1].kind, "incr");
        assert_eq!(sets[1].prior.as_deref(), Some("20261202-061500F"));
        assert_eq!(sets[1].backup_size, 900000);
        assert_eq!(sets[1].repository_size, 120000);
    }

    #[test]
    fn a_stanza_without_backups_is_an_empty_list_and_a_broken_one_an_error() {
        let empty =
            r#"[{"backup":[],"name":"s","status":{"code":2,"message":"no valid backups"}}]"#;
        assert!(parse_info(empty).unwrap().is_empty());
        let broken =
            r#"[{"backup":[],"name":"s","status":{"code":1,"message":"missing stanza path"}}]"#;
        assert!(parse_info(broken).is_err());
    }

    #[test]
    fn target_times_are_utc_with_microseconds() {
        let at = time::macros::datetime!(2026-12-02 07:15:30.123456789 +01:00);
        assert_eq!(
            pgbackrest_time(at).unwrap(),
            "2026-12-02 06:15:30.123456+00"
        );
    }

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
    }

    #[test]
    fn the_admin_user_comes_from_the_url() {
        assert_eq!(admin_user("postgres://root:pw@127.0.0.1:5432/x"), "root");
        assert_eq!(admin_user("postgres://postgres@127.0.0.1/x"), "postgres");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(5 * 1024 * 1024 + 512 * 1024).to_string(), "5.5 MiB");
    }
}
