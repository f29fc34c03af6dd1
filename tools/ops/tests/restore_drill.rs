//! The restore drill: a backup is only as good as a restore that was tried. On a cluster of its
//! own, with archiving set up by `ops setup`, the drill writes through the real identity and
//! inventory servers, takes a full backup, writes more, takes an incremental, writes more, notes
//! a time T, writes again, then restores to T into a second cluster with `ops restore`, starts
//! the services on it and proves through their API that exactly the data as of T is there.
//! It prints how long the backups and the restore took and how big the backups are.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use support::platform::{self, DATABASE, Services};
use support::{PrivateCluster, ops, report};

/// The database clock, so T is on the same clock as the commit times recovery compares it to.
async fn database_now(url: &str) -> time::OffsetDateTime {
    let mut conn = ops::cluster::connect(url).await.unwrap();
    sqlx::query_scalar("SELECT clock_timestamp()")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_point_in_time_restore_holds_exactly_the_data_as_of_that_time() {
    let original = PrivateCluster::start();
    let backup_dir = original.dir.join("backup");
    let admin = original.url(DATABASE);
    let tenant = platform::create(&original).await;
    let setup = ops(&admin, &backup_dir, &["setup", "--restart"]);
    assert!(setup.contains("archiving checked end to end"), "{setup}");

    // Identity and inventory on the original.
    let identity_config = identity::config::Config::for_tests("unused");
    let live = Services::start(original.port, &identity_config, tenant).await;

    // In the full backup: a warehouse, steel with 100 received.
    let warehouse = live.warehouse("DRILL-1").await;
    let steel = live.material("STEEL").await;
    live.receive(&warehouse, &steel, "100").await;
    let full = ops(&admin, &backup_dir, &["backup", "--type", "full"]);

    // In the incremental: copper with 50, 10 steel issued.
    let copper = live.material("COPPER").await;
    live.receive(&warehouse, &copper, "50").await;
    live.issue(&warehouse, &steel, "10").await;
    let incr = ops(&admin, &backup_dir, &["backup", "--type", "incr"]);

    // Only in the WAL, before T: zinc with 7, 5 more steel issued.
    let zinc = live.material("ZINC").await;
    live.receive(&warehouse, &zinc, "7").await;
    live.issue(&warehouse, &steel, "5").await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let t = database_now(&admin).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // After T, and so absent from the restore: tin, 1000 more steel, copper issued and deleted.
    let tin = live.material("TIN").await;
    live.receive(&warehouse, &tin, "3").await;
    live.receive(&warehouse, &steel, "1000").await;
    live.issue(&warehouse, &copper, "50").await;
    live.delete(&live.get(&copper).await).await;
    assert_eq!(live.skus().await, ["STEEL", "TIN", "ZINC"]);
    // The WAL holding the changes after T reaches the repository (recovery needs a commit after
    // T to know where to stop).
    ops(&admin, &backup_dir, &["backup", "check"]);
    live.stop().await;

    let listing = ops(&admin, &backup_dir, &["backup", "list"]);
    let restored_dir = original.dir.join("restored");
    let port = support::port();
    let t_text = t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let restore = ops(
        &admin,
        &backup_dir,
        &[
            "restore",
            "--to",
            restored_dir.to_str().unwrap(),
            "--port",
            &port.to_string(),
            "--time",
            &t_text,
            "--start",
        ],
    );
    report("restore drill:");
    for line in full
        .lines()
        .chain(incr.lines())
        .chain(listing.lines())
        .chain(restore.lines())
    {
        report(&format!("  {line}"));
    }

    let restored = Services::start(port, &identity_config, tenant).await;
    assert_eq!(restored.skus().await, ["COPPER", "STEEL", "ZINC"]);
    assert_eq!(restored.on_hand(&warehouse, &steel).await, 85.0);
    assert_eq!(restored.on_hand(&warehouse, &copper).await, 50.0);
    assert_eq!(restored.on_hand(&warehouse, &zinc).await, 7.0);
    let ledger = restored.ledger().await;
    assert!(ledger.mismatches.is_empty(), "{:?}", ledger.mismatches);
    assert_eq!(ledger.levels_checked, 3);
    restored.stop().await;
    original.stop_data_directory(&restored_dir);
}
