//! Test harness shared by every service's integration tests.
//!
//! - [`TestDatabase`]: a fresh PostgreSQL database per test, provisioned exactly as production
//!   is (schema owner and runtime roles, default privileges) and dropped afterwards;
//! - [`TestPki`]: a throwaway CA with server and client certificates for TLS tests;
//! - [`captured_logs`]: the process's logs in memory, to prove what never appears in them;
//! - [`status`]: assertions on failed calls and their rich error details.
//!
//! The cluster comes from `ADMIN_DATABASE_URL` (a superuser URL; `scripts/test.sh` sets it from
//! `scripts/ensure-postgres.sh`), defaulting to `postgres://postgres@127.0.0.1:5432/postgres`.

pub mod status;

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use anyhow::Context as _;
use logistics_platform::db::{self, RolePasswords, SchemaSpec};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection, PgPool};

/// Where tests find a superuser connection when `ADMIN_DATABASE_URL` is unset.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The superuser URL tests use.
pub fn admin_url() -> String {
    std::env::var("ADMIN_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// A database that exists for one test.
pub struct TestDatabase {
    /// Database name (`t_<uuid>`).
    pub name: String,
    host: String,
    port: u16,
    admin_user: String,
    admin_password: Option<String>,
}

impl TestDatabase {
    /// Creates a fresh, empty database and provisions `spec` in it.
    pub async fn create(spec: &SchemaSpec) -> anyhow::Result<Self> {
        let admin = admin_url();
        let options: PgConnectOptions = admin.parse().context("parsing ADMIN_DATABASE_URL")?;
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let mut conn = PgConnection::connect(&admin).await.with_context(|| {
            "connecting to PostgreSQL with ADMIN_DATABASE_URL (run tests through scripts/test.sh, \
             which starts PostgreSQL when none is running)"
        })?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        conn.close().await?;
        let db = Self {
            name,
            host: options.get_host().to_owned(),
            port: options.get_port(),
            admin_user: options.get_username().to_owned(),
            admin_password: admin_password(&admin),
        };
        db::provision(&db.admin_url(), spec, &RolePasswords::default()).await?;
        Ok(db)
    }

    /// Superuser URL of this database.
    pub fn admin_url(&self) -> String {
        match &self.admin_password {
            Some(password) => self.url_with(&self.admin_user, Some(password)),
            None => self.url_with(&self.admin_user, None),
        }
    }

    /// URL of this database for `role` (trust authentication, as in the local and CI clusters).
    pub fn url_as(&self, role: &str) -> String {
        self.url_with(role, None)
    }

    fn url_with(&self, user: &str, password: Option<&str>) -> String {
        let auth = match password {
            Some(p) => format!("{user}:{p}"),
            None => user.to_owned(),
        };
        format!(
            "postgres://{auth}@{}:{}/{}",
            self.host, self.port, self.name
        )
    }

    /// A superuser pool on this database, for assertions on raw rows.
    pub async fn admin_pool(&self) -> anyhow::Result<PgPool> {
        Ok(PgPool::connect(&self.admin_url()).await?)
    }

    /// A pool connected as `role`, for checks that must run as the service would.
    pub async fn pool_as(&self, role: &str) -> anyhow::Result<PgPool> {
        Ok(PgPool::connect(&self.url_as(role)).await?)
    }
}

fn admin_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let userinfo = rest.split_once('@')?.0;
    userinfo.split_once(':').map(|(_, p)| p.to_owned())
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs outside any runtime guarantee; a short-lived thread with its own runtime
        // removes the database even if the test's runtime is shutting down.
        let name = self.name.clone();
        let admin = admin_url();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async move {
                    if let Ok(mut conn) = PgConnection::connect(&admin).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// A throwaway certificate authority with one server and one client certificate, as PEM files
/// in a temporary directory.
pub struct TestPki {
    /// Directory holding the files.
    pub dir: PathBuf,
    /// CA certificate.
    pub ca_cert: PathBuf,
    /// Server certificate (SAN `localhost`, `127.0.0.1`).
    pub server_cert: PathBuf,
    /// Server key.
    pub server_key: PathBuf,
    /// Client certificate signed by the CA.
    pub client_cert: PathBuf,
    /// Client key.
    pub client_key: PathBuf,
}

impl TestPki {
    /// Generates the CA and certificates.
    pub fn generate() -> anyhow::Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let dir =
            std::env::temp_dir().join(format!("logistics-pki-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir)?;

        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "logistics test CA");
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca_params.self_signed(&ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate()?;
        let server_cert =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?
                .signed_by(&server_key, &issuer)?;
        let client_key = KeyPair::generate()?;
        let mut client_params =
            CertificateParams::new(vec!["shipment.logistics.internal".to_owned()])?;
        client_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "shipment service");
        let client_cert = client_params.signed_by(&client_key, &issuer)?;

        let write = |name: &str, pem: String| -> anyhow::Result<PathBuf> {
            let path = dir.join(name);
            std::fs::write(&path, pem)?;
            Ok(path)
        };
        Ok(Self {
            ca_cert: write("ca.pem", ca_cert.pem())?,
            server_cert: write("server.pem", server_cert.pem())?,
            server_key: write("server.key", server_key.serialize_pem())?,
            client_cert: write("client.pem", client_cert.pem())?,
            client_key: write("client.key", client_key.serialize_pem())?,
            dir,
        })
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Shared in-memory log sink.
#[derive(Clone, Default)]
pub struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl LogBuffer {
    /// Everything logged so far.
    pub fn contents(&self) -> String {
        let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut inner) = self.0.lock() {
            inner.extend_from_slice(buf);
        }
        // Also echo when asked, so failing tests can be read.
        if std::env::var_os("TEST_LOG").is_some() {
            let _ = std::io::stderr().write_all(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogBuffer {
    type Writer = LogBuffer;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs (once per test process) a JSON subscriber at `debug` level that writes into memory,
/// and returns the buffer. Printed to stderr as well when `TEST_LOG` is set.
pub fn captured_logs() -> LogBuffer {
    static BUFFER: OnceLock<LogBuffer> = OnceLock::new();
    BUFFER
        .get_or_init(|| {
            let buffer = LogBuffer::default();
            let subscriber = tracing_subscriber::fmt()
                .json()
                .with_env_filter(tracing_subscriber::EnvFilter::new(
                    "debug,h2=info,hyper=info,tower=info,sqlx=debug",
                ))
                .with_writer(buffer.clone())
                .finish();
            let _ = tracing::subscriber::set_global_default(subscriber);
            buffer
        })
        .clone()
}
