//! `ops erd`: the committed diagram (docs/erd.md, erd.dot, erd.svg) is the one the current
//! migrations give, and the check that says so does fail when the schema has moved on. Each
//! test works on its own database; the real `ops` binary runs every command.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use logistics_testkit::TestDatabase;

/// The workspace root, where `docs/` lives and `ops erd` is meant to run.
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `ops` with `args` from the workspace root; the scratch database comes from the
/// test's ADMIN_DATABASE_URL, never from a stray ERD_DATABASE_URL.
fn ops(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ops"))
        .args(args)
        .current_dir(workspace_root())
        .env("ADMIN_DATABASE_URL", logistics_testkit::admin_url())
        .env_remove("ERD_DATABASE_URL")
        .output()
        .unwrap()
}

fn described(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A directory that exists for one test.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("ops-erd-{name}"));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database with every service migrated and its partitions created, as a running platform's.
async fn migrated_platform() -> TestDatabase {
    let db = TestDatabase::create(ops::services::ALL[0].schema)
        .await
        .unwrap();
    ops::services::migrate_all(&db.admin_url(), |role| db.url_as(role))
        .await
        .unwrap();
    let pool = db.admin_pool().await.unwrap();
    for partitions in ops::services::ALL.iter().filter_map(|s| s.partitions) {
        logistics_platform::db::ensure_partitions(
            &pool,
            partitions.function,
            partitions.months_ahead,
        )
        .await
        .unwrap();
    }
    pool.close().await;
    db
}

#[test]
fn the_committed_diagram_is_the_one_the_current_migrations_give() {
    let checked = ops(&["erd", "--check"]);
    assert!(checked.status.success(), "{}", described(&checked));
}

#[test]
fn the_committed_diagram_shows_every_service_table_once_and_no_partition() {
    let markdown = std::fs::read_to_string(workspace_root().join("docs/erd.md")).unwrap();
    for table in [
        "identity_users",
        "partner_partners",
        "fleet_assignments",
        "inventory_stock_movements",
        "inventory_reservations",
        "shipment_shipments",
        "shipment_tracking_events",
        "shipment_sagas",
        "shipment_outbox",
    ] {
        assert_eq!(
            markdown.matches(&format!("\n  {table} {{\n")).count(),
            1,
            "{table}"
        );
    }
    assert!(!markdown.contains("_sqlx_migrations"));
    let dot = std::fs::read_to_string(workspace_root().join("docs/erd.dot")).unwrap();
    assert!(dot.contains("subgraph \"cluster_inventory\""));
    assert!(dot.contains("\"inventory.stock_movements\" [label=<"));
}

#[tokio::test]
async fn a_table_the_committed_diagram_lacks_fails_the_check_naming_the_stale_files() {
    let db = migrated_platform().await;
    let pool = db.admin_pool().await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE fleet.depots (tenant_id uuid NOT NULL, id uuid NOT NULL, name text NOT NULL, \
         PRIMARY KEY (tenant_id, id))",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let url = db.admin_url();
    let out = TempDir::new(&db.name);

    let generated = ops(&["erd", "--from", &url, "--out", out.path()]);
    assert!(generated.status.success(), "{}", described(&generated));
    let markdown = std::fs::read_to_string(out.0.join("erd.md")).unwrap();
    assert!(
        markdown.contains(
            "  fleet_depots {\n    uuid tenant_id PK\n    uuid id PK\n    text name\n  }\n"
        ),
        "{markdown}"
    );
    assert!(
        !markdown.contains("stock_movements_2"),
        "a partition is drawn"
    );
    assert!(
        !markdown.contains("tracking_events_2"),
        "a partition is drawn"
    );
    let fresh = ops(&["erd", "--check", "--from", &url, "--out", out.path()]);
    assert!(fresh.status.success(), "{}", described(&fresh));

    let committed_before = std::fs::read(workspace_root().join("docs/erd.md")).unwrap();
    let stale = ops(&["erd", "--check", "--from", &url]);
    assert!(!stale.status.success(), "{}", described(&stale));
    let message = String::from_utf8_lossy(&stale.stderr);
    for named in [
        "docs/erd.md",
        "docs/erd.dot",
        "docs/erd.svg",
        "fleet_depots",
        "ops -- erd",
    ] {
        assert!(message.contains(named), "{named} not in: {message}");
    }
    let committed_after = std::fs::read(workspace_root().join("docs/erd.md")).unwrap();
    assert_eq!(
        committed_before, committed_after,
        "--check wrote docs/erd.md"
    );
}

#[tokio::test]
async fn an_svg_not_drawn_from_the_current_source_fails_the_check() {
    let db = migrated_platform().await;
    let url = db.admin_url();
    let out = TempDir::new(&db.name);
    let generated = ops(&["erd", "--from", &url, "--out", out.path()]);
    assert!(generated.status.success(), "{}", described(&generated));

    // Drawn from the same source by hand, without the source's hash: stale.
    let plain = Command::new("dot")
        .args(["-Tsvg", "-o"])
        .arg(out.0.join("erd.svg"))
        .arg(out.0.join("erd.dot"))
        .output()
        .unwrap();
    assert!(plain.status.success(), "{}", described(&plain));
    let checked = ops(&["erd", "--check", "--from", &url, "--out", out.path()]);
    assert!(!checked.status.success(), "{}", described(&checked));
    let message = String::from_utf8_lossy(&checked.stderr);
    assert!(
        message.contains("erd.svg (not drawn from the current erd.dot)"),
        "{message}"
    );
    assert!(!message.contains("erd.md"), "{message}");
}
