//! Wiring: from a configuration and a bound listener to a running partner server.

use std::future::Future;
use std::time::Duration;

use logistics_platform::aip::PageTokens;
use logistics_platform::db::SchemaSpec;
use logistics_platform::service::{self, Serving};
use logistics_proto::partner::v1::partner_service_server::{PartnerServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;

use crate::api::{PartnerApi, State};
use crate::config::Config;
use crate::sealing::Sealer;

/// Partner's schema and roles.
pub const SCHEMA: SchemaSpec = SchemaSpec::for_service("partner", "partner_owner", "partner_app");

/// Partner's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Serves partner on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = service::database(&config.database, &SCHEMA, &MIGRATOR, "partner").await?;
    let verifier = service::identity_verifier(&config.auth, &config.identity)?;
    let state = State {
        pool: pool.clone(),
        sealer: Sealer::new(
            config.keys.field_encryption_keys.clone(),
            config.keys.blind_index_key.0,
        ),
        page_tokens: PageTokens::new(config.keys.page_token_key.0),
    };
    let serving = Serving {
        service_name: SERVICE_NAME,
        open_methods: &[],
        tls: config.tls.clone(),
        grace: Duration::from_secs(config.shutdown_grace_seconds),
        metrics: config.metrics.clone(),
    };
    service::serve(
        listener,
        pool,
        verifier,
        serving,
        |routes| routes.add_service(PartnerServiceServer::new(PartnerApi::new(state))),
        shutdown,
    )
    .await
}
