//! `ops setup`: the pgBackRest configuration file the tool writes for the cluster, the server
//! settings archiving and the statement statistics need (ALTER SYSTEM, changing only what
//! differs), the restart they may take, the stanza and its end-to-end check.

use std::time::Duration;

use anyhow::Context as _;

use super::{Backups, SetupReport};
use crate::cluster;

impl Backups {
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

    /// `repo1-type` as conf.d sets it (`posix`, a local directory, unless an include says
    /// otherwise: `s3`, `gcs`, `azure`, ...).
    fn repository_type(&self) -> anyhow::Result<String> {
        let mut kind = "posix".to_owned();
        let Ok(entries) = std::fs::read_dir(self.include_dir()) else {
            return Ok(kind);
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "conf") {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                if let Some(value) = text
                    .lines()
                    .filter_map(|l| l.trim().strip_prefix("repo1-type="))
                    .next_back()
                {
                    kind = value.trim().to_owned();
                }
            }
        }
        Ok(kind)
    }

    fn write_config(&self) -> anyhow::Result<()> {
        let repo = self.repo_path()?;
        let owner = &self.cluster.owner;
        let mut dirs = vec![
            self.backup_dir.clone(),
            self.include_dir(),
            self.backup_dir.join("log"),
            self.backup_dir.join("lock"),
        ];
        // In an object store the path is inside the bucket, not on this disk.
        if self.repository_type()? == "posix" {
            dirs.push(repo.clone());
        }
        for dir in dirs {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            std::os::unix::fs::chown(&dir, Some(owner.uid), None)
                .with_context(|| format!("giving {} to {}", dir.display(), owner.name))?;
        }
        let c = &self.cluster;
        let user = &c.user;
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

/// `value` as a SQL string literal.
fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_double_their_quotes() {
        assert_eq!(quote_literal("a'b"), "'a''b'");
    }
}
