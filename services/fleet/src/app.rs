//! Wiring: from a configuration and a bound listener to a running fleet server.

use std::future::Future;
use std::time::Duration;

use logistics_platform::aip::PageTokens;
use logistics_platform::service::{self, Serving};
use logistics_proto::fleet::v1::fleet_service_server::{FleetServiceServer, SERVICE_NAME};
use tokio::net::TcpListener;

use crate::api::{FleetApi, State};
use crate::config::Config;
use crate::schema::{MIGRATOR, SCHEMA};
use crate::sealing::Sealer;

/// Serves fleet on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = service::database(&config.database, &SCHEMA, &MIGRATOR, "fleet").await?;
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
        |routes| routes.add_service(FleetServiceServer::new(FleetApi::new(state))),
        shutdown,
    )
    .await
}
