//! `TestApp`: a real inventory server and a real identity server on ephemeral ports, sharing
//! one fresh database (one schema each, as in production), with an admin token, builders for
//! materials, warehouses and stock operations, and assertions on rich error details.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use inventory::config::Config;
use inventory::schema::{MIGRATOR, SCHEMA};
use logistics_harness::{Identity, Server};
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1 as types;
use pb::inventory_service_client::InventoryServiceClient;
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;

pub use logistics_harness::authed;
#[allow(unused_imports)] // Each test file uses its own share of the helpers.
pub use logistics_testkit::status::{expect_code, preconditions, violated_fields};

/// An inventory server, its identity, and their database.
pub struct TestApp {
    /// Identity, serving tokens and keys.
    pub identity: Identity,
    /// The inventory server.
    pub server: Server,
    /// The admin's access token (admin role).
    pub admin_token: String,
}

impl TestApp {
    /// Identity and inventory on a fresh database.
    pub async fn spawn() -> Self {
        let _ = logistics_testkit::captured_logs();
        let identity = Identity::start(&[&SCHEMA]).await.expect("identity");
        logistics_platform::db::migrate(
            &identity.db.url_as(SCHEMA.owner_role),
            SCHEMA.schema,
            &MIGRATOR,
        )
        .await
        .expect("inventory migrations");
        let config = test_config(&identity);
        let server =
            Server::start(|listener, shutdown| inventory::app::run(config, listener, shutdown))
                .await
                .expect("inventory serving");
        let admin_token = identity.admin_token.clone();
        Self {
            identity,
            server,
            admin_token,
        }
    }

    /// A client of this inventory server.
    pub async fn client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(self.server.channel().await.unwrap())
    }

    /// A user of the tenant with `roles` (linked to `partner_id` if given), and its token.
    pub async fn token(
        &self,
        email: &str,
        roles: &[idpb::Role],
        partner_id: Option<Uuid>,
    ) -> String {
        self.identity
            .user(email, roles, partner_id, None)
            .await
            .expect("user")
    }

    /// A superuser pool on the test database, for raw-row assertions.
    pub async fn db(&self) -> sqlx::PgPool {
        self.identity.db.admin_pool().await.unwrap()
    }

    /// Creates a material with `sku` (reorder point 10) as the admin.
    pub async fn material(&self, sku: &str) -> pb::Material {
        self.client()
            .await
            .create_material(authed(
                &self.admin_token,
                pb::CreateMaterialRequest {
                    request_id: Uuid::now_v7().to_string(),
                    material: Some(material(sku)),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .material
            .unwrap()
    }

    /// Creates a warehouse with `code` as the admin.
    pub async fn warehouse(&self, code: &str) -> pb::Warehouse {
        self.client()
            .await
            .create_warehouse(authed(
                &self.admin_token,
                pb::CreateWarehouseRequest {
                    request_id: Uuid::now_v7().to_string(),
                    warehouse: Some(warehouse(code)),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .warehouse
            .unwrap()
    }

    /// Receives `quantity` of `material` into `warehouse` as the admin.
    pub async fn receive(
        &self,
        warehouse: &pb::Warehouse,
        material: &pb::Material,
        quantity: &str,
    ) -> pb::ReceiveStockResponse {
        self.client()
            .await
            .receive_stock(authed(
                &self.admin_token,
                pb::ReceiveStockRequest {
                    idempotency_key: Uuid::now_v7().to_string(),
                    warehouse_id: warehouse.id.clone(),
                    material_id: material.id.clone(),
                    quantity: decimal(quantity),
                    reference: None,
                    reason: String::new(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
    }

    /// Reserves `lines` (warehouse, material, quantity) for `shipment_id` as the admin.
    pub async fn reserve(
        &self,
        shipment_id: Uuid,
        lines: &[(&pb::Warehouse, &pb::Material, &str)],
    ) -> Result<pb::ReserveStockResponse, Status> {
        self.client()
            .await
            .reserve_stock(authed(
                &self.admin_token,
                reserve_request(shipment_id, lines),
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// The level of `material` in `warehouse`: (on hand, reserved, available).
    pub async fn level(
        &self,
        warehouse: &pb::Warehouse,
        material: &pb::Material,
    ) -> (String, String, String) {
        let level = self
            .client()
            .await
            .get_stock_level(authed(
                &self.admin_token,
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
        (
            level.on_hand.unwrap().value,
            level.reserved.unwrap().value,
            level.available.unwrap().value,
        )
    }

    /// A transaction as the runtime role (`inventory_app`) with this tenant in its context,
    /// for tests that write around the API to prove what the database itself refuses.
    pub async fn runtime_tx(&self) -> sqlx::Transaction<'static, sqlx::Postgres> {
        let runtime = self.identity.db.pool_as(SCHEMA.app_role).await.unwrap();
        let mut tx = runtime.begin().await.unwrap();
        sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
            .bind(self.identity.tenant_id.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
        tx
    }

    /// CheckStockLedger as the admin: (levels checked, mismatches).
    pub async fn check_ledger(&self) -> (i64, usize) {
        let done = self
            .client()
            .await
            .check_stock_ledger(authed(&self.admin_token, pb::CheckStockLedgerRequest {}))
            .await
            .unwrap()
            .into_inner();
        (done.levels_checked, done.mismatches.len())
    }
}

/// A ReserveStock request with a fresh idempotency key.
pub fn reserve_request(
    shipment_id: Uuid,
    lines: &[(&pb::Warehouse, &pb::Material, &str)],
) -> pb::ReserveStockRequest {
    pb::ReserveStockRequest {
        idempotency_key: Uuid::now_v7().to_string(),
        shipment_id: shipment_id.to_string(),
        lines: lines
            .iter()
            .map(|(w, m, q)| pb::ReservationLine {
                warehouse_id: w.id.clone(),
                material_id: m.id.clone(),
                quantity: decimal(q),
            })
            .collect(),
    }
}

/// The configuration inventory tests run with.
pub fn test_config(identity: &Identity) -> Config {
    let mut config = Config::for_tests(&identity.db.url_as(SCHEMA.app_role), &identity.url());
    // Room for the concurrency tests: every racing call holds a connection.
    config.database.database_max_connections = 60;
    config
}

static SERIAL: AtomicU32 = AtomicU32::new(1);

/// An exact decimal.
pub fn decimal(value: &str) -> Option<types::Decimal> {
    Some(types::Decimal {
        value: value.to_owned(),
    })
}

/// A valid material with `sku`, counted in pieces, reorder point 10.
pub fn material(sku: &str) -> pb::Material {
    pb::Material {
        sku: sku.to_owned(),
        name: format!("Material {sku}"),
        unit: pb::UnitOfMeasure::Piece as i32,
        unit_weight_kg: decimal("1.5"),
        unit_volume_m3: decimal("0.002"),
        reorder_point: decimal("10"),
        ..Default::default()
    }
}

/// A valid warehouse with `code` in Hamburg.
pub fn warehouse(code: &str) -> pb::Warehouse {
    pb::Warehouse {
        code: code.to_owned(),
        name: format!(
            "Warehouse {code} {}",
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ),
        address_line: "Am Hafen 1".to_owned(),
        city: "Hamburg".to_owned(),
        postal_code: "20457".to_owned(),
        country_code: "DE".to_owned(),
        ..Default::default()
    }
}
