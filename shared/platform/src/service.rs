//! What every service's `app::run` repeats: migrate and open the runtime pool, build a token
//! verifier that fetches identity's keys, and serve the routes with health watching the
//! database. A service's own `app.rs` only builds its state and routes.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tonic::service::Routes;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::auth::{AuthLayer, IdentityKeySource, TokenVerifier};
use crate::config::{AuthConfig, DatabaseConfig, TlsConfig, expose};
use crate::db::{self, SchemaSpec};
use crate::server::{self, ServeOptions};

/// How a service that is not identity reaches identity (for its public keys).
#[derive(Debug, Clone, clap::Args)]
pub struct IdentityClientConfig {
    /// URL of the identity service, `http://host:50051` or `https://...`.
    #[arg(long, env = "IDENTITY_URL")]
    pub identity_url: String,
    /// PEM CA that identity's certificate chains to (for `https`).
    #[arg(long, env = "IDENTITY_TLS_CA")]
    pub identity_tls_ca: Option<PathBuf>,
    /// PEM client certificate presented to identity (mutual TLS).
    #[arg(long, env = "CLIENT_TLS_CERT", requires = "client_tls_key")]
    pub client_tls_cert: Option<PathBuf>,
    /// PEM key of the client certificate.
    #[arg(long, env = "CLIENT_TLS_KEY", requires = "client_tls_cert")]
    pub client_tls_key: Option<PathBuf>,
}

impl IdentityClientConfig {
    /// Identity at `identity_url` over plain HTTP/2, no client certificate (tests).
    pub fn plain(identity_url: &str) -> Self {
        Self {
            identity_url: identity_url.to_owned(),
            identity_tls_ca: None,
            client_tls_cert: None,
            client_tls_key: None,
        }
    }

    /// A lazily connected channel to identity, with TLS when configured.
    pub fn channel(&self) -> anyhow::Result<Channel> {
        self.channel_to(&self.identity_url, self.identity_tls_ca.as_deref())
    }

    /// A lazily connected channel to another service at `url` with this configuration's client
    /// certificate, trusting `ca` (and the system roots) for `https`.
    pub fn channel_to(&self, url: &str, ca: Option<&std::path::Path>) -> anyhow::Result<Channel> {
        let mut endpoint = Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("{url:?} is not a URL"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10));
        if url.starts_with("https://") || ca.is_some() {
            let mut tls = ClientTlsConfig::new().with_native_roots();
            if let Some(ca) = ca {
                let pem = std::fs::read(ca)
                    .with_context(|| format!("reading the CA certificate {}", ca.display()))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let (Some(cert), Some(key)) = (&self.client_tls_cert, &self.client_tls_key) {
                let cert = std::fs::read(cert)
                    .with_context(|| format!("reading CLIENT_TLS_CERT {}", cert.display()))?;
                let key = std::fs::read(key)
                    .with_context(|| format!("reading CLIENT_TLS_KEY {}", key.display()))?;
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            endpoint = endpoint.tls_config(tls)?;
        }
        Ok(endpoint.connect_lazy())
    }
}

/// A verifier of access tokens whose keys come from identity's `ListPublicKeys`.
pub fn identity_verifier(
    auth: &AuthConfig,
    identity: &IdentityClientConfig,
) -> anyhow::Result<Arc<TokenVerifier>> {
    Ok(Arc::new(TokenVerifier::new(
        auth.jwt_issuer.clone(),
        auth.jwt_audience.clone(),
        Arc::new(IdentityKeySource::new(identity.channel()?)),
        Duration::from_secs(auth.jwks_min_refresh_seconds),
    )))
}

/// Runs `migrator` as the owner when a migration URL is configured, then opens the runtime pool.
pub async fn database(
    config: &DatabaseConfig,
    schema: &SchemaSpec,
    migrator: &sqlx::migrate::Migrator,
    application_name: &str,
) -> anyhow::Result<PgPool> {
    if let Some(url) = &config.migration_database_url {
        db::migrate(expose(url), schema.schema, migrator).await?;
        tracing::info!(schema = schema.schema, "migrations applied");
    }
    db::pool(
        expose(&config.database_url),
        config.database_max_connections,
        application_name,
    )
}

/// The schema subcommands every service binary offers, flattened into its own command enum.
#[derive(Debug, clap::Subcommand)]
pub enum SchemaCommand {
    /// Apply migrations as the schema owner.
    Migrate {
        /// Owner role connection URL.
        #[arg(long, env = "MIGRATION_DATABASE_URL", hide_env_values = true)]
        migration_database_url: secrecy::SecretString,
    },
    /// Create the schema and its owner and runtime roles (needs a superuser or CREATEROLE URL).
    Provision {
        /// Administrator connection URL to the target database.
        #[arg(long, env = "ADMIN_DATABASE_URL", hide_env_values = true)]
        admin_database_url: secrecy::SecretString,
        /// Password to set for the owner role.
        #[arg(long, env = "OWNER_PASSWORD", hide_env_values = true)]
        owner_password: Option<secrecy::SecretString>,
        /// Password to set for the runtime role.
        #[arg(long, env = "APP_PASSWORD", hide_env_values = true)]
        app_password: Option<secrecy::SecretString>,
    },
}

impl SchemaCommand {
    /// Runs the command for `schema` with `migrator`.
    pub async fn run(
        self,
        schema: &SchemaSpec,
        migrator: &sqlx::migrate::Migrator,
    ) -> anyhow::Result<()> {
        match self {
            SchemaCommand::Migrate {
                migration_database_url,
            } => db::migrate(expose(&migration_database_url), schema.schema, migrator).await,
            SchemaCommand::Provision {
                admin_database_url,
                owner_password,
                app_password,
            } => {
                let passwords = db::RolePasswords {
                    owner: owner_password,
                    app: app_password,
                };
                db::provision(expose(&admin_database_url), schema, &passwords).await
            }
        }
    }
}

/// One service's serving parameters.
pub struct Serving {
    /// The fully qualified gRPC service name, for health.
    pub service_name: &'static str,
    /// Methods that need no token besides health and reflection.
    pub open_methods: &'static [&'static str],
    /// Listener TLS.
    pub tls: TlsConfig,
    /// In-flight calls' grace period at shutdown.
    pub grace: Duration,
    /// Where to serve `GET /metrics`, if anywhere.
    pub metrics: crate::config::MetricsConfig,
}

/// Serves the routes `add` puts next to health on `listener` until `shutdown`, with health
/// following the database and every call authenticated by `verifier`. Closes `pool` at the end.
pub async fn serve(
    listener: TcpListener,
    pool: PgPool,
    verifier: Arc<TokenVerifier>,
    serving: Serving,
    add: impl FnOnce(Routes) -> Routes,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (health, health_routes) = server::health().await;
    let watcher = tokio::spawn(db::watch_health(
        pool.clone(),
        health.clone(),
        vec![serving.service_name],
        Duration::from_secs(2),
    ));
    let metrics = match serving.metrics.metrics_addr {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding METRICS_ADDR {addr}"))?;
            tracing::info!(addr = %listener.local_addr()?, "metrics on /metrics");
            Some(tokio::spawn(crate::metrics::serve(
                listener,
                vec![pool.clone()],
            )))
        }
        None => None,
    };
    let options = ServeOptions {
        tls: serving.tls.server_tls()?,
        auth: AuthLayer::new(verifier, serving.open_methods),
        health,
        services: vec![serving.service_name],
        grace: serving.grace,
    };
    tracing::info!(addr = %listener.local_addr()?, service = serving.service_name, "listening");
    let result = server::serve(listener, add(health_routes), options, shutdown).await;
    watcher.abort();
    if let Some(metrics) = metrics {
        metrics.abort();
    }
    pool.close().await;
    result
}

/// Calls the schema's partition function `function` (e.g. `inventory.ensure_movement_partitions`,
/// an owner's `SECURITY DEFINER` function taking the months to keep ahead) now and then once a
/// day, so a write never finds its month missing. A failure is logged and retried an hour later.
pub async fn keep_partitions_ahead(pool: PgPool, function: &'static str, months_ahead: i32) {
    loop {
        let wait = match db::ensure_partitions(&pool, function, months_ahead).await {
            Ok(created) => {
                if created > 0 {
                    tracing::info!(created, function, "partitions created");
                }
                Duration::from_secs(24 * 3600)
            }
            Err(err) => {
                tracing::warn!(error = %err, function, "could not create partitions");
                Duration::from_secs(3600)
            }
        };
        tokio::time::sleep(wait).await;
    }
}
