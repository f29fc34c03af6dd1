//! What the ops tests share: a private PostgreSQL cluster of their own (initdb on a free port
//! under the temporary directory, removed when dropped), so a test can turn on archiving,
//! restart, back up and restore without touching the machine's cluster or another test's.

#![allow(dead_code, clippy::unwrap_used)]

pub mod platform;

use std::path::{Path, PathBuf};
use std::process::Command;

use ops::cluster::{self, OsUser};

/// A cluster that exists for one test.
pub struct PrivateCluster {
    /// Directory holding the data directory, sockets and logs.
    pub dir: PathBuf,
    /// Its data directory.
    pub data: PathBuf,
    /// Its port on 127.0.0.1.
    pub port: u16,
    owner: OsUser,
    bin: PathBuf,
}

impl PrivateCluster {
    /// Creates and starts a cluster (trust authentication, superuser `postgres`).
    pub fn start() -> Self {
        let major = installed_major();
        let bin = cluster::server_bin_dir(major).unwrap();
        let me = cluster::current_user().unwrap();
        // PostgreSQL refuses to run as root: root's tests run it as `postgres`.
        let owner = if me.uid == 0 {
            let uid = id_of("postgres");
            OsUser {
                name: "postgres".to_owned(),
                uid,
            }
        } else {
            me
        };
        let dir = std::env::temp_dir().join(format!("ops-pg-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(dir.join("run")).unwrap();
        chown_r(&dir, owner.uid);
        let data = dir.join("data");
        let port = free_port();
        succeed(
            as_owner(&owner, bin.join("initdb"))
                .arg("-D")
                .arg(&data)
                .args([
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-locale",
                    "--no-sync",
                ]),
        );
        std::fs::write(
            data.join("postgresql.conf"),
            format!(
                "{}\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
                 fsync = off\nmax_connections = 100\n",
                std::fs::read_to_string(data.join("postgresql.conf")).unwrap(),
                dir.join("run").display()
            ),
        )
        .unwrap();
        let cluster = Self {
            dir,
            data,
            port,
            owner,
            bin,
        };
        cluster.pg_ctl(&["-w", "-t", "60", "start"]);
        cluster
    }

    /// Superuser URL of `database` on it.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// URL of `database` for `role`.
    pub fn url_as(&self, role: &str, database: &str) -> String {
        format!("postgres://{role}@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the cluster (fast: sessions are cut) and waits until it is down.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "stop"]);
    }

    /// Starts the stopped cluster again on its port.
    pub fn restart_stopped(&self) {
        self.pg_ctl(&["-w", "-t", "60", "start"]);
    }

    fn pg_ctl(&self, args: &[&str]) {
        succeed(
            as_owner(&self.owner, self.bin.join("pg_ctl"))
                .arg("-D")
                .arg(&self.data)
                .arg("-l")
                .arg(self.dir.join("log"))
                .args(args),
        );
    }

    /// Stops a cluster living in `data` (a restored copy), quickly.
    pub fn stop_data_directory(&self, data: &Path) {
        // Best effort: it also runs on drop, when the cluster may already be down.
        let _ = as_owner(&self.owner, self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(data)
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        self.stop_data_directory(&self.data.clone());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn installed_major() -> i32 {
    let mut majors: Vec<i32> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    majors.sort();
    majors.pop().unwrap_or(15)
}

fn id_of(user: &str) -> u32 {
    let out = Command::new("id").args(["-u", user]).output().unwrap();
    assert!(
        out.status.success(),
        "no OS user {user}: the tests run PostgreSQL as it"
    );
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn chown_r(path: &Path, uid: u32) {
    std::os::unix::fs::chown(path, Some(uid), None).unwrap();
    if path.is_dir() {
        for entry in std::fs::read_dir(path).unwrap() {
            chown_r(&entry.unwrap().path(), uid);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port on 127.0.0.1.
pub fn port() -> u16 {
    free_port()
}

/// A command running `program` as `owner`: directly when the test is that user, through
/// `runuser` when it runs as root (PostgreSQL refuses to run as root).
fn as_owner(owner: &OsUser, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let me = cluster::current_user().unwrap();
    if me.uid == owner.uid {
        return Command::new(program);
    }
    let mut command = Command::new("runuser");
    command
        .args(["-u", &owner.name, "--"])
        .arg(program)
        .current_dir("/");
    command
}

/// Runs `command`, failing the test with its output when it fails.
fn succeed(command: &mut Command) {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A platform database on the machine's cluster: the five schemas provisioned and migrated, as
/// production has them, and a superuser pool on it.
pub async fn platform_database() -> (logistics_testkit::TestDatabase, sqlx::PgPool) {
    let db = logistics_testkit::TestDatabase::create(&identity::app::SCHEMA)
        .await
        .unwrap();
    ops::services::migrate_all(&db.admin_url(), |role| db.url_as(role))
        .await
        .unwrap();
    let pool = db.admin_pool().await.unwrap();
    (db, pool)
}

/// Runs the real `ops` binary with `args` against `database_url`, backups under `backup_dir`;
/// returns its standard output, failing the test with its output when it fails.
pub fn ops(database_url: &str, backup_dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ops"))
        .args(args)
        .env("OPS_DATABASE_URL", database_url)
        .env("BACKUP_DIR", backup_dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "ops {args:?} failed:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Writes a line where a passing test's output still shows (the test harness captures only
/// `print!`): the drill's figures belong in the CI log.
pub fn report(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}
