//! The restore drill: a backup is only as good as a restore that was tried. On a cluster of its
//! own, with archiving set up by `ops setup`, the drill writes through the real identity and
//! inventory servers, takes a full backup, writes more, takes an incremental, writes more, notes
//! a time T, writes again, then restores to T into a second cluster with `ops restore`, starts
//! the services on it and proves through their API that exactly the data as of T is there.
//! It prints how long the backups and the restore took and how big the backups are.

#![allow(clippy::unwrap_used)]

mod support;

use std::time::Duration;

use identity::bootstrap::{self, Bootstrap};
use logistics_harness::{Server, authed};
use logistics_platform::config::Key32;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1 as types;
use pb::inventory_service_client::InventoryServiceClient;
use secrecy::SecretString;
use support::{PrivateCluster, ops, report};
use tonic::transport::Channel;
use uuid::Uuid;

const DATABASE: &str = "logistics";
const EMAIL: &str = "admin@drill.test";
const PASSWORD: &str = "drill password 123";

/// Identity and inventory serving one copy of the platform's database.
struct Services {
    identity: Server,
    inventory: Server,
    token: String,
}

impl Services {
    async fn start(
        cluster_port: u16,
        identity_config: &identity::config::Config,
        tenant: Uuid,
    ) -> Self {
        let url = |role: &str| format!("postgres://{role}@127.0.0.1:{cluster_port}/{DATABASE}");
        let mut config = identity_config.clone();
        config.database.database_url = SecretString::from(url("identity_app"));
        let identity = Server::start(|l, s| identity::app::run(config, l, s))
            .await
            .unwrap();
        let inventory_config = inventory_config(&url("inventory_app"), identity.addr);
        let inventory = Server::start(|l, s| inventory::app::run(inventory_config, l, s))
            .await
            .unwrap();
        let token = idpb::identity_service_client::IdentityServiceClient::new(
            identity.channel().await.unwrap(),
        )
        .login(idpb::LoginRequest {
            tenant_id: tenant.to_string(),
            email: EMAIL.to_owned(),
            password: PASSWORD.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap()
        .access_token;
        Self {
            identity,
            inventory,
            token,
        }
    }

    async fn client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.inventory.channel().await.unwrap())
    }

    async fn material(&self, sku: &str) -> pb::Material {
        self.client()
            .await
            .create_material(authed(
                &self.token,
                pb::CreateMaterialRequest {
                    request_id: Uuid::now_v7().to_string(),
                    material: Some(pb::Material {
                        sku: sku.to_owned(),
                        name: format!("Material {sku}"),
                        unit: pb::UnitOfMeasure::Piece as i32,
                        unit_weight_kg: decimal("2"),
                        reorder_point: decimal("5"),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .material
            .unwrap()
    }

    async fn warehouse(&self, code: &str) -> pb::Warehouse {
        self.client()
            .await
            .create_warehouse(authed(
                &self.token,
                pb::CreateWarehouseRequest {
                    request_id: Uuid::now_v7().to_string(),
                    warehouse: Some(pb::Warehouse {
                        code: code.to_owned(),
                        name: format!("Warehouse {code}"),
                        address_line: "Lagerweg 1".to_owned(),
                        city: "Berlin".to_owned(),
                        postal_code: "10115".to_owned(),
                        country_code: "DE".to_owned(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .warehouse
            .unwrap()
    }

    async fn receive(&self, warehouse: &pb::Warehouse, material: &pb::Material, quantity: &str) {
        self.client()
            .await
            .receive_stock(authed(
                &self.token,
                pb::ReceiveStockRequest {
                    idempotency_key: Uuid::now_v7().to_string(),
                    warehouse_id: warehouse.id.clone(),
                    material_id: material.id.clone(),
                    quantity: decimal(quantity),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }

    async fn issue(&self, warehouse: &pb::Warehouse, material: &pb::Material, quantity: &str) {
        self.client()
            .await
            .issue_stock(authed(
                &self.token,
                pb::IssueStockRequest {
                    idempotency_key: Uuid::now_v7().to_string(),
                    warehouse_id: warehouse.id.clone(),
                    material_id: material.id.clone(),
                    quantity: decimal(quantity),
                    reason: "drill".to_owned(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
    }

    async fn delete(&self, material: &pb::Material) {
        self.client()
            .await
            .delete_material(authed(
                &self.token,
                pb::DeleteMaterialRequest {
                    id: material.id.clone(),
                    etag: material.etag.clone(),
                },
            ))
            .await
            .unwrap();
    }

    /// `material` as it is now (its current etag).
    async fn get(&self, material: &pb::Material) -> pb::Material {
        self.client()
            .await
            .get_material(authed(
                &self.token,
                pb::GetMaterialRequest {
                    id: material.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .material
            .unwrap()
    }

    /// The SKUs of the live materials, sorted.
    async fn skus(&self) -> Vec<String> {
        let materials = self
            .client()
            .await
            .list_materials(authed(
                &self.token,
                pb::ListMaterialsRequest {
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .materials;
        let mut skus: Vec<String> = materials.into_iter().map(|m| m.sku).collect();
        skus.sort();
        skus
    }

    /// On hand of `material` in `warehouse`.
    async fn on_hand(&self, warehouse: &pb::Warehouse, material: &pb::Material) -> f64 {
        let level = self
            .client()
            .await
            .get_stock_level(authed(
                &self.token,
                pb::GetStockLevelRequest {
                    warehouse_id: warehouse.id.clone(),
                    material_id: material.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .level
            .unwrap();
        level.on_hand.unwrap().value.parse().unwrap()
    }

    async fn ledger(&self) -> pb::CheckStockLedgerResponse {
        self.client()
            .await
            .check_stock_ledger(authed(&self.token, pb::CheckStockLedgerRequest {}))
            .await
            .unwrap()
            .into_inner()
    }

    async fn stop(self) {
        self.inventory.stop().await;
        self.identity.stop().await;
    }
}

fn decimal(value: &str) -> Option<types::Decimal> {
    Some(types::Decimal {
        value: value.to_owned(),
    })
}

fn inventory_config(
    database_url: &str,
    identity: std::net::SocketAddr,
) -> inventory::config::Config {
    use logistics_platform::config::{AuthConfig, DatabaseConfig, LogFormat, TlsConfig};
    inventory::config::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database: DatabaseConfig {
            database_url: SecretString::from(database_url.to_owned()),
            migration_database_url: None,
            database_max_connections: 5,
        },
        auth: AuthConfig {
            jwt_issuer: "logistics-identity".to_owned(),
            jwt_audience: "logistics".to_owned(),
            jwks_min_refresh_seconds: 0,
        },
        identity: logistics_platform::service::IdentityClientConfig {
            identity_url: format!("http://{identity}"),
            identity_tls_ca: None,
            client_tls_cert: None,
            client_tls_key: None,
        },
        tls: TlsConfig::default(),
        log_format: LogFormat::Json,
        page_token_key: Key32([7; 32]),
        metrics: logistics_platform::config::MetricsConfig::default(),
        shutdown_grace_seconds: 5,
    }
}

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
    {
        let mut conn = ops::cluster::connect(&original.url("postgres"))
            .await
            .unwrap();
        sqlx::raw_sql("CREATE DATABASE logistics")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    ops::services::migrate_all(&admin, |role| original.url_as(role, DATABASE))
        .await
        .unwrap();
    let setup = ops(&admin, &backup_dir, &["setup", "--restart"]);
    assert!(setup.contains("archiving checked end to end"), "{setup}");

    // The tenant and its admin, then identity and inventory on the original.
    let pool = logistics_platform::db::pool(&original.url_as("identity_app", DATABASE), 1, "drill")
        .unwrap();
    let tenant = bootstrap::run(
        &pool,
        &Bootstrap {
            tenant_id: Uuid::now_v7(),
            tenant_name: "Drill tenant".to_owned(),
            admin_email: EMAIL.to_owned(),
            admin_password: SecretString::from(PASSWORD),
        },
    )
    .await
    .unwrap()
    .tenant_id;
    pool.close().await;
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
