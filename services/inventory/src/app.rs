//! Wiring: from a configuration and a bound listener to a running inventory server, with the
//! ledger partitions kept ahead (at start and daily).

use std::future::Future;
use std::time::Duration;

use logistics_platform::aip::PageTokens;
use logistics_platform::service::{self, Serving};
use logistics_proto::inventory::v1::inventory_service_server::{
    InventoryServiceServer, SERVICE_NAME,
};
use tokio::net::TcpListener;

use crate::api::{InventoryApi, State};
use crate::config::Config;
use crate::schema::{self, MIGRATOR, SCHEMA};

/// Serves inventory on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = service::database(&config.database, &SCHEMA, &MIGRATOR, "inventory").await?;
    let verifier = service::identity_verifier(&config.auth, &config.identity)?;
    let partitions = tokio::spawn(service::keep_partitions_ahead(
        pool.clone(),
        schema::PARTITION_FUNCTION,
        schema::PARTITION_MONTHS_AHEAD,
    ));
    let state = State {
        pool: pool.clone(),
        page_tokens: PageTokens::new(config.page_token_key.0),
    };
    let serving = Serving {
        service_name: SERVICE_NAME,
        open_methods: &[],
        tls: config.tls.clone(),
        grace: Duration::from_secs(config.shutdown_grace_seconds),
        metrics: config.metrics.clone(),
    };
    let result = service::serve(
        listener,
        pool,
        verifier,
        serving,
        |routes| routes.add_service(InventoryServiceServer::new(InventoryApi::new(state))),
        shutdown,
    )
    .await;
    partitions.abort();
    result
}
