//! Wiring: from a configuration and a bound listener to a running shipment server, with the
//! tracking partitions kept ahead, the outbox publisher and the listener for watchers, and saga
//! recovery.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use logistics_platform::aip::PageTokens;
use logistics_platform::service::{self, Serving};
use logistics_proto::shipment::v1::shipment_service_server::{SERVICE_NAME, ShipmentServiceServer};
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::api::{EventFeed, ShipmentApi, State};
use crate::config::Config;
use crate::peers::Peers;
use crate::publisher;
use crate::saga;
use crate::schema::{self, MIGRATOR, SCHEMA};
use crate::sealing::Sealer;

/// Serves shipment on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let pool = service::database(&config.database, &SCHEMA, &MIGRATOR, "shipment").await?;
    let verifier = service::identity_verifier(&config.auth, &config.identity)?;
    let state = Arc::new(State {
        pool: pool.clone(),
        page_tokens: PageTokens::new(config.keys.page_token_key.0),
        sealer: Sealer::new(
            config.keys.field_encryption_keys.clone(),
            config.keys.blind_index_key.0,
        ),
        peers: Peers::new(&config.peers, &config.identity)?,
        saga: config.saga.clone(),
        replica_id: Uuid::now_v7(),
        feed: EventFeed::default(),
    });
    let background = [
        tokio::spawn(service::keep_partitions_ahead(
            pool.clone(),
            schema::PARTITION_FUNCTION,
            schema::PARTITION_MONTHS_AHEAD,
        )),
        tokio::spawn(state.feed.clone().listen(pool.clone())),
        tokio::spawn(publisher::publish_forever(pool.clone())),
        tokio::spawn(saga::recover_forever(Arc::clone(&state))),
    ];
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
        |routes| routes.add_service(ShipmentServiceServer::new(ShipmentApi::new(state))),
        shutdown,
    )
    .await;
    for task in background {
        task.abort();
    }
    result
}
