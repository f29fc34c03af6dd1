//! Wiring: from a configuration and a bound listener to a running identity server.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use logistics_platform::aip::PageTokens;
use logistics_platform::auth::TokenVerifier;
use logistics_platform::db::SchemaSpec;
use logistics_platform::service::{self, Serving};
use logistics_proto::identity::v1::identity_service_server::{IdentityServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;

use crate::api::{IdentityApi, State};
use crate::config::Config;
use crate::domain::lockout::LockoutPolicy;
use crate::passwords::PasswordHasher;
use crate::signer::{DbKeySource, Signer};

/// Identity's schema and roles.
pub const SCHEMA: SchemaSpec =
    SchemaSpec::for_service("identity", "identity_owner", "identity_app");

/// Identity's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Methods that need no access token: how callers get one, and how services get the keys.
pub const OPEN_METHODS: &[&str] = &[
    "/logistics.identity.v1.IdentityService/Login",
    "/logistics.identity.v1.IdentityService/RefreshToken",
    "/logistics.identity.v1.IdentityService/ListPublicKeys",
];

/// Serves identity on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = service::database(&config.database, &SCHEMA, &MIGRATOR, "identity").await?;
    let access_ttl = time::Duration::seconds(config.access_token_ttl_seconds);
    let signer = Arc::new(Signer::new(
        pool.clone(),
        config.key_encryption_keys.clone(),
        access_ttl,
    ));
    if let Err(err) = signer.ensure_key().await {
        // The database may be down at start; the first signature retries.
        tracing::warn!(error = %err, "no signing key loaded yet");
    }
    // Identity verifies its own tokens with keys read straight from its database.
    let verifier = Arc::new(TokenVerifier::new(
        config.auth.jwt_issuer.clone(),
        config.auth.jwt_audience.clone(),
        Arc::new(DbKeySource {
            signer: signer.clone(),
        }),
        Duration::from_secs(config.auth.jwks_min_refresh_seconds),
    ));
    let state = State {
        pool: pool.clone(),
        hasher: PasswordHasher::new()?,
        signer,
        verifier: verifier.clone(),
        page_tokens: PageTokens::new(config.page_token_key.0),
        lockout: LockoutPolicy {
            max_failures: config.lockout_max_failures,
            duration: time::Duration::seconds(config.lockout_seconds),
        },
        access_ttl,
        session_ttl: time::Duration::seconds(config.session_ttl_seconds),
        issuer: config.auth.jwt_issuer.clone(),
        audience: config.auth.jwt_audience.clone(),
    };
    let serving = Serving {
        service_name: SERVICE_NAME,
        open_methods: OPEN_METHODS,
        tls: config.tls.clone(),
        grace: Duration::from_secs(config.shutdown_grace_seconds),
        metrics: config.metrics.clone(),
    };
    service::serve(
        listener,
        pool,
        verifier,
        serving,
        |routes| routes.add_service(IdentityServiceServer::new(IdentityApi::new(state))),
        shutdown,
    )
    .await
}
