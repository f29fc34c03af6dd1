//! Physical backups with pgBackRest: the configuration the tool writes for the cluster, WAL
//! archiving, full, differential and incremental backups with retention, `check`, `verify`,
//! the list of what exists, and restores (latest, or to a point in time) into a new data
//! directory on another port, so the running cluster is never touched.
//!
//! pgBackRest does the work; this module only decides its settings and reads its answers.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::process::Command;

use crate::cluster::{self, Cluster};

mod restore;
mod setup;

pub use restore::{RestoreReport, RestoreTarget};

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
    fn the_admin_user_comes_from_the_url() {
        use crate::cluster::user_of;
        assert_eq!(
            user_of("postgres://root:pw@127.0.0.1:5432/x").unwrap(),
            "root"
        );
        assert_eq!(
            user_of("postgres://postgres@127.0.0.1/x").unwrap(),
            "postgres"
        );
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(Bytes(512).to_string(), "512 B");
        assert_eq!(Bytes(5 * 1024 * 1024 + 512 * 1024).to_string(), "5.5 MiB");
    }
}
