//! `ops restore`: a backup restored into a new data directory, WAL replayed to the end or to a
//! point in time, the copy given its own port and socket and kept from archiving into the
//! original's repository, then optionally started and waited for until it serves.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use time::OffsetDateTime;

use super::{Backups, absolute, set_mode};
use crate::cluster;

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

        let user = &self.cluster.user;
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

/// `at` as pgBackRest's `--target` wants it: `YYYY-MM-DD HH:MM:SS.ffffff+00`.
fn pgbackrest_time(at: OffsetDateTime) -> anyhow::Result<String> {
    let format = time::macros::format_description!(
        "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]+00"
    );
    Ok(at.to_offset(time::UtcOffset::UTC).format(&format)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn target_times_are_utc_with_microseconds() {
        let at = time::macros::datetime!(2026-12-02 07:15:30.123456789 +01:00);
        assert_eq!(
            pgbackrest_time(at).unwrap(),
            "2026-12-02 06:15:30.123456+00"
        );
    }
}
