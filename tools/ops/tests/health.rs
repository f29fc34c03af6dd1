//! Health follows the database for real: with PostgreSQL itself stopped (not a connection cut),
//! a service reports NOT_SERVING and answers UNAVAILABLE; started again, it reports SERVING and
//! answers as before, with nothing restarted on the service's side.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::{Duration, Instant};

use logistics_harness::authed;
use logistics_proto::inventory::v1 as pb;
use support::PrivateCluster;
use support::platform::{self, Services};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

async fn wait_for(services: &Services, wanted: ServingStatus) {
    let mut health = HealthClient::new(services.inventory.channel().await.unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        if status == wanted {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "inventory still {status:?}, waiting for {wanted:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_not_serving_while_postgresql_is_stopped_and_serving_when_it_is_back() {
    let cluster = PrivateCluster::start();
    let tenant = platform::create(&cluster).await;
    let services = Services::start(
        cluster.port,
        &identity::config::Config::for_tests("unused"),
        tenant,
    )
    .await;
    let steel = services.material("STEEL").await;
    wait_for(&services, ServingStatus::Serving).await;

    cluster.stop();
    wait_for(&services, ServingStatus::NotServing).await;
    let err = services
        .client()
        .await
        .get_material(authed(
            services.token(),
            pb::GetMaterialRequest {
                id: steel.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err:?}");

    cluster.restart_stopped();
    wait_for(&services, ServingStatus::Serving).await;
    assert_eq!(services.get(&steel).await.sku, "STEEL");
    services.stop().await;
}
