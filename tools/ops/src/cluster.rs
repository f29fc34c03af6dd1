//! The PostgreSQL cluster the tool works on, as found through a superuser connection: where its
//! data directory is, which OS user owns it, its port and socket, its server binaries, and how
//! to run a program as that owner (pgBackRest and `pg_ctl` must run as the cluster's owner; an
//! operator running `ops` as root gets `runuser`).
//!
//! Nothing here changes the cluster; [`Cluster::restart`] is the only command with an effect.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::Context as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection as _, PgConnection};
use tokio::process::Command;

/// Where an operator's commands find a superuser when `ADMIN_DATABASE_URL` is unset.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A running cluster, described by itself.
#[derive(Debug, Clone)]
pub struct Cluster {
    /// Superuser URL it was found through.
    pub admin_url: String,
    /// `data_directory`.
    pub data_directory: PathBuf,
    /// `port`.
    pub port: u16,
    /// The first of `unix_socket_directories`, where local tools connect.
    pub socket_directory: PathBuf,
    /// `server_version_num`, e.g. 150020.
    pub version_num: i32,
    /// `server_version`, e.g. `15.20 (Debian 15.20-0+deb12u1)`.
    pub version: String,
    /// `config_file`.
    pub config_file: PathBuf,
    /// `hba_file`.
    pub hba_file: PathBuf,
    /// The database user of `admin_url`.
    pub user: String,
    /// The OS user that owns the data directory.
    pub owner: OsUser,
    /// Directory of the server binaries of the cluster's major version.
    pub bin_dir: PathBuf,
}

/// An OS user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsUser {
    /// Login name.
    pub name: String,
    /// Numeric id.
    pub uid: u32,
}

impl Cluster {
    /// Describes the cluster `admin_url` reaches. The tool must run on the cluster's host: the
    /// data directory is looked at on the local file system.
    pub async fn discover(admin_url: &str) -> anyhow::Result<Self> {
        let mut conn = connect(admin_url).await?;
        let bin_dir = superuser_bin_dir(&mut conn, "the database URL").await?;
        let setting = async |conn: &mut PgConnection, name: &str| -> anyhow::Result<String> {
            sqlx::query_scalar("SELECT setting FROM pg_settings WHERE name = $1")
                .bind(name)
                .fetch_one(&mut *conn)
                .await
                .with_context(|| format!("reading the setting {name}"))
        };
        let data_directory = PathBuf::from(setting(&mut conn, "data_directory").await?);
        let port: u16 = setting(&mut conn, "port").await?.parse()?;
        let sockets = setting(&mut conn, "unix_socket_directories").await?;
        let version_num: i32 = setting(&mut conn, "server_version_num").await?.parse()?;
        let version = setting(&mut conn, "server_version").await?;
        let config_file = PathBuf::from(setting(&mut conn, "config_file").await?);
        let hba_file = PathBuf::from(setting(&mut conn, "hba_file").await?);
        conn.close().await?;

        let socket_directory = sockets
            .split(',')
            .map(str::trim)
            .find(|s| !s.is_empty())
            .map(PathBuf::from)
            .context("the cluster listens on no Unix socket; local tools need one")?;
        let owner = owner_of(&data_directory).with_context(|| {
            format!(
                "looking at the data directory {} (ops must run on the database host)",
                data_directory.display()
            )
        })?;
        Ok(Self {
            admin_url: admin_url.to_owned(),
            data_directory,
            port,
            socket_directory,
            version_num,
            version,
            config_file,
            hba_file,
            user: user_of(admin_url)?,
            owner,
            bin_dir,
        })
    }

    /// The major version, e.g. 15.
    pub fn major(&self) -> i32 {
        self.version_num / 10000
    }

    /// `program` of the cluster's server binaries (`pg_ctl`, `pg_dump`, ...).
    pub fn bin(&self, program: &str) -> PathBuf {
        self.bin_dir.join(program)
    }

    /// A command that runs `program` as the cluster's owner.
    pub fn as_owner(&self, program: impl AsRef<Path>) -> anyhow::Result<Command> {
        as_user(&self.owner, program.as_ref())
    }

    /// The Debian cluster (`pg_ctlcluster` version and name) this is, if it is one: its
    /// configuration lives under `/etc/postgresql/<version>/<name>/`.
    pub fn debian_cluster(&self) -> Option<(String, String)> {
        let dir = self.config_file.parent()?;
        let name = dir.file_name()?.to_str()?.to_owned();
        let version = dir.parent()?.file_name()?.to_str()?.to_owned();
        let root = dir.parent()?.parent()?;
        (root == Path::new("/etc/postgresql")).then_some((version, name))
    }

    /// Restarts the cluster (fast shutdown: sessions are cut, nothing committed is lost) and
    /// waits until it accepts connections again.
    pub async fn restart(&self) -> anyhow::Result<()> {
        let mut command = match self.debian_cluster() {
            Some((version, name)) => {
                let mut c = Command::new("pg_ctlcluster");
                c.args(["--skip-systemctl-redirect", &version, &name, "restart"])
                    .args(["--", "-m", "fast", "-w", "-t", "120"]);
                c
            }
            None => {
                let mut c = self.as_owner(self.bin("pg_ctl"))?;
                c.arg("-D")
                    .arg(&self.data_directory)
                    .args(["-m", "fast", "-w", "-t", "120", "restart"])
                    .arg("-l")
                    .arg(self.data_directory.join("restart.log"));
                c
            }
        };
        run(&mut command, "restarting PostgreSQL").await?;
        wait_until_accepting(&self.admin_url, 120).await
    }
}

/// A superuser connection.
pub async fn connect(url: &str) -> anyhow::Result<PgConnection> {
    let options: PgConnectOptions = url.parse().context("parsing the database URL")?;
    PgConnection::connect_with(&options)
        .await
        .context("connecting to PostgreSQL")
}

/// The database user a URL connects as (`postgres` when it names none, as libpq's default).
pub fn user_of(url: &str) -> anyhow::Result<String> {
    let options: PgConnectOptions = url.parse().context("parsing the database URL")?;
    Ok(options.get_username().to_owned())
}

/// Checks that `conn` is a superuser's (`what` names the URL it came from) and returns the
/// directory of the binaries of the server's major version (`pg_dump`, `pg_restore`, ...).
pub async fn superuser_bin_dir(conn: &mut PgConnection, what: &str) -> anyhow::Result<PathBuf> {
    let superuser: String = sqlx::query_scalar("SHOW is_superuser")
        .fetch_one(&mut *conn)
        .await?;
    anyhow::ensure!(superuser == "on", "{what} must connect as a superuser");
    let version: String = sqlx::query_scalar("SHOW server_version_num")
        .fetch_one(&mut *conn)
        .await?;
    server_bin_dir(version.parse::<i32>()? / 10000)
}

/// Waits up to `seconds` for `url` to accept a connection and answer outside recovery.
pub async fn wait_until_accepting(url: &str, seconds: u64) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let last = match connect(url).await {
            Ok(mut conn) => {
                let recovering: Result<bool, _> = sqlx::query_scalar("SELECT pg_is_in_recovery()")
                    .fetch_one(&mut conn)
                    .await;
                let _ = conn.close().await;
                match recovering {
                    Ok(false) => return Ok(()),
                    Ok(true) => anyhow::anyhow!("still in recovery"),
                    Err(err) => err.into(),
                }
            }
            Err(err) => err,
        };
        if std::time::Instant::now() >= deadline {
            return Err(last.context(format!("PostgreSQL not ready after {seconds} s")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// The OS user owning `path`.
pub fn owner_of(path: &Path) -> anyhow::Result<OsUser> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = std::fs::metadata(path)?.uid();
    Ok(OsUser {
        name: user_name(uid)?,
        uid,
    })
}

/// The user this process runs as.
pub fn current_user() -> anyhow::Result<OsUser> {
    owner_of(Path::new("/proc/self"))
}

/// The login name of `uid`, from the password database.
fn user_name(uid: u32) -> anyhow::Result<String> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("reading /etc/passwd")?;
    passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let id = fields.nth(1)?.parse::<u32>().ok()?;
            (id == uid).then(|| name.to_owned())
        })
        .next()
        .with_context(|| format!("no user with id {uid} in /etc/passwd"))
}

/// A command running `program` as `user`: directly when this process is that user, through
/// `runuser` when it is root; any other combination cannot work and says so.
pub fn as_user(user: &OsUser, program: &Path) -> anyhow::Result<Command> {
    let me = current_user()?;
    if me.uid == user.uid {
        return Ok(Command::new(program));
    }
    anyhow::ensure!(
        me.uid == 0,
        "{} must run as {} (the owner of the cluster's files) or as root; this is {}",
        program.display(),
        user.name,
        me.name
    );
    let mut command = Command::new("runuser");
    command.args(["-u", &user.name, "--"]).arg(program);
    Ok(command)
}

/// The binaries of PostgreSQL `major` (Debian's layout, then `pg_config`): the directory with
/// its `pg_dump`, which every installation has, client-only ones included. `pg_ctl` (restart,
/// starting a restored copy) is only in a server installation; a command that needs it says so
/// when it cannot start it.
pub fn server_bin_dir(major: i32) -> anyhow::Result<PathBuf> {
    let debian = PathBuf::from(format!("/usr/lib/postgresql/{major}/bin"));
    if debian.join("pg_dump").is_file() {
        return Ok(debian);
    }
    let output = std::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .context(
            "finding the PostgreSQL binaries (no /usr/lib/postgresql/<major>/bin, no pg_config)",
        )?;
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    anyhow::ensure!(
        dir.join("pg_dump").is_file(),
        "no PostgreSQL {major} binaries found (looked in {} and {})",
        debian.display(),
        dir.display()
    );
    Ok(dir)
}

/// Runs `command` to completion, failing with its standard error when it fails; returns its
/// standard output.
pub async fn run(command: &mut Command, what: &str) -> anyhow::Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| {
            format!(
                "{what}: could not start {:?}",
                command.as_std().get_program()
            )
        })?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        anyhow::bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            tail(&stdout, 20),
            tail(&stderr, 40)
        );
    }
    Ok(stdout)
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].iter().map(|l| format!("{l}\n")).collect()
}
