//! Inventory's scenarios, each over two paths: gRPC to the running service, and the service's
//! own handler called in-process on a pool of the same size (the same SQL transaction, no gRPC,
//! no token check: the database-only bound).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use inventory::api::InventoryApi;
use logistics_platform::auth::Caller;
use logistics_platform::authz::Role;
use logistics_proto::inventory::v1 as pb;
use logistics_proto::r#type::v1::Decimal;
use pb::inventory_service_client::InventoryServiceClient;
use pb::inventory_service_server::InventoryService as _;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::call::{authed, grpc, local};

/// What the scenarios work on, read once from the loaded tenant.
#[derive(Clone)]
pub struct Fixture {
    /// Levels (warehouse id, material id) with stock.
    pub levels: Arc<Vec<(Uuid, Uuid)>>,
    /// Page token of a page deep in ListStockLevels.
    pub deep_page_token: String,
}

/// One target: a client of the running service and the in-process handlers.
#[derive(Clone)]
pub struct Target {
    /// Client of the running service.
    pub client: InventoryServiceClient<Channel>,
    /// An access token of the tenant's admin.
    pub token: String,
    /// The service's handlers over its own pool, called in-process: the database-only path.
    pub api: Arc<InventoryApi>,
    /// The same admin as a verified caller, for the database-only path.
    pub caller: Arc<Caller>,
    /// The data.
    pub fixture: Fixture,
    next: Arc<AtomicU64>,
}

/// The paths a scenario runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Over gRPC to the running service.
    Grpc,
    /// The handler in-process.
    Database,
}

impl Target {
    /// A target for the tenant's admin `user_id` with `token`.
    pub fn new(
        client: InventoryServiceClient<Channel>,
        token: String,
        state: inventory::api::State,
        tenant_id: Uuid,
        user_id: Uuid,
        fixture: Fixture,
    ) -> Self {
        Self {
            client,
            token,
            api: Arc::new(InventoryApi::new(state)),
            caller: Arc::new(Caller {
                user_id,
                tenant_id,
                roles: vec![Role::Admin],
                session_id: Uuid::nil(),
                partner_id: None,
                driver_id: None,
            }),
            fixture,
            next: Arc::new(AtomicU64::new(0)),
        }
    }

    /// A level to work on: every call takes the next, so concurrent callers rarely share one.
    fn level(&self) -> (Uuid, Uuid) {
        let n = self.next.fetch_add(7919, Ordering::Relaxed) as usize;
        self.fixture.levels[n % self.fixture.levels.len()]
    }

    fn local<T>(&self, message: T) -> tonic::Request<T> {
        local(&self.caller, message)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        authed(&self.token, message)
    }

    /// GetMaterial of a loaded material.
    pub async fn get_material(&self, path: Path) -> Result<(), String> {
        let request = pb::GetMaterialRequest {
            id: self.level().1.to_string(),
        };
        match path {
            Path::Grpc => grpc(
                self.client
                    .clone()
                    .get_material(self.request(request))
                    .await,
            ),
            Path::Database => grpc(self.api.get_material(self.local(request)).await),
        }
    }

    /// ListStockLevels, first page (`deep` false) or a page deep in the list.
    pub async fn list_stock_levels(&self, path: Path, deep: bool) -> Result<(), String> {
        let request = pb::ListStockLevelsRequest {
            page_size: 50,
            page_token: if deep {
                self.fixture.deep_page_token.clone()
            } else {
                String::new()
            },
            ..Default::default()
        };
        match path {
            Path::Grpc => grpc(
                self.client
                    .clone()
                    .list_stock_levels(self.request(request))
                    .await,
            ),
            Path::Database => grpc(self.api.list_stock_levels(self.local(request)).await),
        }
    }

    /// ReserveStock of one unit of a level for a new shipment, then ReleaseReservation: the
    /// level ends where it started.
    pub async fn reserve_and_release(&self, path: Path) -> Result<(), String> {
        let (warehouse_id, material_id) = self.level();
        let shipment_id = Uuid::now_v7().to_string();
        let reserve = pb::ReserveStockRequest {
            idempotency_key: Uuid::now_v7().to_string(),
            shipment_id: shipment_id.clone(),
            lines: vec![pb::ReservationLine {
                warehouse_id: warehouse_id.to_string(),
                material_id: material_id.to_string(),
                quantity: Some(Decimal {
                    value: "1".to_owned(),
                }),
            }],
        };
        let release = pb::ReleaseReservationRequest {
            idempotency_key: Uuid::now_v7().to_string(),
            shipment_id,
            ..Default::default()
        };
        match path {
            Path::Grpc => {
                let mut client = self.client.clone();
                grpc(client.reserve_stock(self.request(reserve)).await)?;
                grpc(client.release_reservation(self.request(release)).await)
            }
            Path::Database => {
                grpc(self.api.reserve_stock(self.local(reserve)).await)?;
                grpc(self.api.release_reservation(self.local(release)).await)
            }
        }
    }
}
