//! `ops status` and `ops slow-queries` against a cluster set up by `ops setup`, with identity
//! and inventory serving it: what runs, what version, what is archived, the last backup, and
//! the statements the services' calls cost.

#![allow(clippy::unwrap_used)]

mod support;

use support::platform::{self, DATABASE, Services};
use support::{PrivateCluster, ops};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_health_versions_archiving_and_the_last_backup_and_slow_queries_the_services_statements()
 {
    let cluster = PrivateCluster::start();
    let backup_dir = cluster.dir.join("backup");
    let url = cluster.url(DATABASE);
    let tenant = platform::create(&cluster).await;
    ops(&url, &backup_dir, &["setup", "--restart"]);
    let services = Services::start(
        cluster.port,
        &identity::config::Config::for_tests("unused"),
        tenant,
    )
    .await;
    let warehouse = services.warehouse("STATUS-1").await;
    let bolts = services.material("BOLTS").await;
    services.receive(&warehouse, &bolts, "12").await;
    ops(&url, &backup_dir, &["backup", "--type", "full"]);

    let inventory = format!(
        "inventory={},{}",
        services.inventory.addr, services.inventory_metrics
    );
    // Nothing listens on port 1: a service that is down is reported, not fatal.
    let status = ops(
        &url,
        &backup_dir,
        &[
            "status",
            "--service",
            &inventory,
            "--service",
            "fleet=127.0.0.1:1",
        ],
    );
    let line = |name: &str| {
        status
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("no {name} line in:\n{status}"))
            .to_owned()
    };
    let inventory_line = line("inventory ");
    assert!(inventory_line.contains("SERVING"), "{status}");
    assert!(
        inventory_line.contains(&format!("version {}", env!("CARGO_PKG_VERSION"))),
        "{status}"
    );
    // The newest of inventory's migrations, whatever its number.
    let newest = inventory::schema::MIGRATOR
        .iter()
        .map(|m| m.version)
        .max()
        .expect("inventory has migrations");
    assert!(
        inventory_line.contains(&format!("migration {newest:04}")),
        "{status}"
    );
    assert!(line("fleet ").contains("UNREACHABLE"), "{status}");
    assert!(
        line("wal archiving:").contains("wal archiving: on"),
        "{status}"
    );
    assert!(
        !line("wal archiving:").contains(" 0 segments archived"),
        "{status}"
    );
    assert!(
        line("last backup:").contains("F (full) finished"),
        "{status}"
    );
    assert!(line("database:").contains("PostgreSQL"), "{status}");
    assert!(status.contains("schema inventory"), "{status}");
    assert!(
        line("oldest unpublished outbox event:").ends_with("none"),
        "{status}"
    );

    let slow = ops(&url, &backup_dir, &["slow-queries", "--limit", "50"]);
    assert!(slow.contains("top statements by total time:"), "{slow}");
    assert!(slow.contains("top statements by mean time:"), "{slow}");
    assert!(slow.contains("INSERT INTO inventory.warehouses"), "{slow}");
    assert!(!slow.to_lowercase().contains("password '"), "{slow}");
    services.stop().await;
}
