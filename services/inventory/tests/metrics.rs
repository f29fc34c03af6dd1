//! The Prometheus endpoint: real calls counted by method and status code, their latency, and
//! the database pool, read over plain HTTP as a Prometheus server would.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;

use common::*;
use inventory::schema::{MIGRATOR, SCHEMA};
use logistics_harness::{Identity, Server, on_a_free_port};
use logistics_proto::inventory::v1 as pb;
use pb::inventory_service_client::InventoryServiceClient;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;
use uuid::Uuid;

/// `GET path` over HTTP/1.1: the status line and the body.
async fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or("").to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample `name{labels}` in a scrape.
fn sample(scrape: &str, series: &str) -> Option<f64> {
    scrape
        .lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn the_metrics_endpoint_counts_calls_by_method_and_code_and_reports_the_pool() {
    let _ = logistics_testkit::captured_logs();
    let identity = Identity::start(&[&SCHEMA]).await.unwrap();
    logistics_platform::db::migrate(
        &identity.db.url_as(SCHEMA.owner_role),
        SCHEMA.schema,
        &MIGRATOR,
    )
    .await
    .unwrap();
    let (server, metrics_addr) = on_a_free_port(|metrics_addr| {
        let mut config = test_config(&identity);
        config.metrics.metrics_addr = Some(metrics_addr);
        async move {
            let server =
                Server::start(|listener, shutdown| inventory::app::run(config, listener, shutdown))
                    .await?;
            Ok((server, metrics_addr))
        }
    })
    .await
    .unwrap();
    let mut client = InventoryServiceClient::new(server.channel().await.unwrap());
    let token = identity.admin_token.clone();

    client
        .create_warehouse(authed(
            &token,
            pb::CreateWarehouseRequest {
                request_id: Uuid::now_v7().to_string(),
                warehouse: Some(warehouse("MET-1")),
            },
        ))
        .await
        .unwrap();
    for id in [Uuid::now_v7().to_string(), Uuid::now_v7().to_string()] {
        let missing = client
            .get_warehouse(authed(&token, pb::GetWarehouseRequest { id }))
            .await;
        expect_code(missing, Code::NotFound);
    }
    let malformed = client
        .get_warehouse(authed(
            &token,
            pb::GetWarehouseRequest {
                id: "nope".to_owned(),
            },
        ))
        .await;
    expect_code(malformed, Code::InvalidArgument);

    let (status, scrape) = http_get(metrics_addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{scrape}");
    let calls = |method: &str, code: &str| {
        sample(
            &scrape,
            &format!(
                "rpc_calls_total{{service=\"logistics.inventory.v1.InventoryService\",method=\"{method}\",code=\"{code}\"}}"
            ),
        )
    };
    assert_eq!(calls("CreateWarehouse", "Ok"), Some(1.0), "{scrape}");
    assert_eq!(calls("GetWarehouse", "NotFound"), Some(2.0), "{scrape}");
    assert_eq!(
        calls("GetWarehouse", "InvalidArgument"),
        Some(1.0),
        "{scrape}"
    );
    assert_eq!(calls("GetWarehouse", "Ok"), None, "{scrape}");
    assert_eq!(
        sample(
            &scrape,
            "rpc_duration_seconds_count{service=\"logistics.inventory.v1.InventoryService\",method=\"GetWarehouse\"}"
        ),
        Some(3.0),
        "{scrape}"
    );
    assert_eq!(
        sample(&scrape, "db_pool_max_connections{pool=\"inventory\"}"),
        Some(60.0),
        "{scrape}"
    );
    let idle = sample(
        &scrape,
        "db_pool_connections{pool=\"inventory\",state=\"idle\"}",
    );
    assert!(idle.is_some_and(|n| n >= 1.0), "{scrape}");
    // The create and the two lookups that reached the database each waited for a connection.
    let waits = sample(&scrape, "db_pool_acquire_seconds_count{pool=\"inventory\"}");
    assert!(waits.is_some_and(|n| n >= 3.0), "{scrape}");
    // Nothing but /metrics is served there.
    let (status, _) = http_get(metrics_addr, "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}
