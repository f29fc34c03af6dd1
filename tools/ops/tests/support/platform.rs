//! The platform as the ops tests drive it: the platform's database on a private cluster with
//! its tenant and admin, and identity and inventory serving it, with the calls the tests make.

#![allow(dead_code, clippy::unwrap_used)]

use identity::bootstrap::{self, Bootstrap};
use logistics_harness::{Server, authed, on_a_free_port};
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1 as types;
use pb::inventory_service_client::InventoryServiceClient;
use secrecy::SecretString;
use tonic::transport::Channel;
use uuid::Uuid;

use super::PrivateCluster;

pub const DATABASE: &str = "logistics";
const EMAIL: &str = "admin@drill.test";
const PASSWORD: &str = "drill password 123";

/// Identity and inventory serving one copy of the platform's database.
pub struct Services {
    pub identity: Server,
    pub inventory: Server,
    /// Where inventory serves its metrics.
    pub inventory_metrics: std::net::SocketAddr,
    token: String,
}

impl Services {
    pub async fn start(
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
        let (inventory, inventory_metrics) = on_a_free_port(|metrics_addr| {
            let mut config = inventory::config::Config::for_tests(
                &url("inventory_app"),
                &format!("http://{}", identity.addr),
            );
            config.metrics.metrics_addr = Some(metrics_addr);
            async move {
                let server = Server::start(|l, s| inventory::app::run(config, l, s)).await?;
                Ok((server, metrics_addr))
            }
        })
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
            inventory_metrics,
            token,
        }
    }

    /// The admin's access token.
    pub fn token(&self) -> &str {
        &self.token
    }

    pub async fn client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.inventory.channel().await.unwrap())
    }

    pub async fn material(&self, sku: &str) -> pb::Material {
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

    pub async fn warehouse(&self, code: &str) -> pb::Warehouse {
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

    pub async fn receive(
        &self,
        warehouse: &pb::Warehouse,
        material: &pb::Material,
        quantity: &str,
    ) {
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

    pub async fn issue(&self, warehouse: &pb::Warehouse, material: &pb::Material, quantity: &str) {
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

    pub async fn delete(&self, material: &pb::Material) {
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
    pub async fn get(&self, material: &pb::Material) -> pb::Material {
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
    pub async fn skus(&self) -> Vec<String> {
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
    pub async fn on_hand(&self, warehouse: &pb::Warehouse, material: &pb::Material) -> f64 {
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

    pub async fn ledger(&self) -> pb::CheckStockLedgerResponse {
        self.client()
            .await
            .check_stock_ledger(authed(&self.token, pb::CheckStockLedgerRequest {}))
            .await
            .unwrap()
            .into_inner()
    }

    pub async fn stop(self) {
        self.inventory.stop().await;
        self.identity.stop().await;
    }
}

pub fn decimal(value: &str) -> Option<types::Decimal> {
    Some(types::Decimal {
        value: value.to_owned(),
    })
}

/// Creates the platform's database on `cluster` with the five schemas migrated, bootstraps a
/// tenant and its admin; returns the tenant.
pub async fn create(cluster: &PrivateCluster) -> Uuid {
    {
        let mut conn = ops::cluster::connect(&cluster.url("postgres"))
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {DATABASE}")))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    ops::services::migrate_all(&cluster.url(DATABASE), |role| {
        cluster.url_as(role, DATABASE)
    })
    .await
    .unwrap();
    let pool =
        logistics_platform::db::pool(&cluster.url_as("identity_app", DATABASE), 1, "ops-test")
            .unwrap();
    let tenant = bootstrap::run(
        &pool,
        &Bootstrap {
            tenant_id: Uuid::now_v7(),
            tenant_name: "Ops tenant".to_owned(),
            admin_email: EMAIL.to_owned(),
            admin_password: SecretString::from(PASSWORD),
        },
    )
    .await
    .unwrap()
    .tenant_id;
    pool.close().await;
    tenant
}
