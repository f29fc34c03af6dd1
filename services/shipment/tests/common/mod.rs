//! `Stack`: all five services as real gRPC servers on ephemeral ports, sharing one fresh
//! database (one schema each, as in production): identity issues the tokens, partner, fleet and
//! inventory own the references, and shipment plans across them. Fixtures build a "world" (a
//! customer with an address, a warehouse with stock, a truck and a driver) and draft shipments;
//! helpers read reservations and bookings back from their owners.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use logistics_harness::{Identity, Server};
use logistics_platform::config::{
    AuthConfig, DatabaseConfig, Key32, KeyConfig, LogFormat, TlsConfig,
};
use logistics_platform::db::SchemaSpec;
use logistics_platform::service::IdentityClientConfig;
use logistics_proto::fleet::v1 as fleetpb;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::inventory::v1 as invpb;
use logistics_proto::partner::v1 as partnerpb;
use logistics_proto::shipment::v1 as pb;
use logistics_proto::r#type::v1 as types;
use pb::shipment_service_client::ShipmentServiceClient;
use shipment::config::{Config, PeerConfig, SagaConfig};
use time::OffsetDateTime;
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;

pub use logistics_harness::authed;
#[allow(unused_imports)] // Each test file uses its own share of the helpers.
pub use logistics_testkit::status::{expect_code, preconditions, violated_fields};

static SERIAL: AtomicU32 = AtomicU32::new(1);

/// A number no other call of this test process got.
pub fn serial() -> u32 {
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// Field encryption keys of every service under test.
pub const FIELD_KEYS: &str = logistics_platform::config::TEST_FIELD_ENCRYPTION_KEYS;

/// The five services and their database.
pub struct Stack {
    /// Identity, serving tokens and keys (and owning the test database).
    pub identity: Identity,
    /// Partner.
    pub partner: Server,
    /// Fleet; `None` while stopped.
    pub fleet: Option<Server>,
    /// Inventory; `None` while stopped.
    pub inventory: Option<Server>,
    /// Shipment; `None` while stopped.
    pub shipment: Option<Server>,
    /// Where fleet listens (also while stopped).
    pub fleet_addr: SocketAddr,
    /// Where inventory listens (also while stopped).
    pub inventory_addr: SocketAddr,
    /// Where shipment listens (also while stopped).
    pub shipment_addr: SocketAddr,
    /// The tenant admin's access token.
    pub admin_token: String,
    /// Saga settings shipment runs with.
    pub saga: SagaConfig,
}

fn database(identity: &Identity, spec: &SchemaSpec, connections: u32) -> DatabaseConfig {
    DatabaseConfig::for_tests(&identity.db.url_as(spec.app_role), connections)
}

/// Saga settings for tests: short leases and a quick recovery loop, one retry.
pub fn quick_sagas() -> SagaConfig {
    SagaConfig {
        lease_seconds: 2,
        recovery_interval_ms: 200,
        step_retries: 1,
    }
}

impl Stack {
    /// All five services on a fresh database, with [`quick_sagas`].
    pub async fn spawn() -> Self {
        Self::spawn_with(quick_sagas()).await
    }

    /// All five services on a fresh database, shipment with `saga`.
    pub async fn spawn_with(saga: SagaConfig) -> Self {
        let _ = logistics_testkit::captured_logs();
        let specs = [
            &partner::app::SCHEMA,
            &fleet::schema::SCHEMA,
            &inventory::schema::SCHEMA,
            &shipment::schema::SCHEMA,
        ];
        let identity = Identity::start(&specs).await.expect("identity");
        let migrate = |spec: &'static SchemaSpec, migrator: &'static sqlx::migrate::Migrator| {
            let url = identity.db.url_as(spec.owner_role);
            async move {
                logistics_platform::db::migrate(&url, spec.schema, migrator)
                    .await
                    .expect("migrations")
            }
        };
        migrate(&partner::app::SCHEMA, &partner::app::MIGRATOR).await;
        migrate(&fleet::schema::SCHEMA, &fleet::schema::MIGRATOR).await;
        migrate(&inventory::schema::SCHEMA, &inventory::schema::MIGRATOR).await;
        migrate(&shipment::schema::SCHEMA, &shipment::schema::MIGRATOR).await;

        let partner_config = partner::config::Config {
            listen_addr: "127.0.0.1:0".parse().unwrap(),
            database: database(&identity, &partner::app::SCHEMA, 10),
            auth: AuthConfig::for_tests(),
            identity: IdentityClientConfig::plain(&identity.url()),
            tls: TlsConfig::default(),
            log_format: LogFormat::Json,
            keys: KeyConfig::for_tests(),
            metrics: logistics_platform::config::MetricsConfig::default(),
            shutdown_grace_seconds: 5,
        };
        let partner = Server::start(|l, s| partner::app::run(partner_config, l, s))
            .await
            .expect("partner serving");
        let admin_token = identity.admin_token.clone();
        let mut stack = Self {
            partner,
            fleet: None,
            inventory: None,
            shipment: None,
            fleet_addr: "127.0.0.1:0".parse().unwrap(),
            inventory_addr: "127.0.0.1:0".parse().unwrap(),
            shipment_addr: "127.0.0.1:0".parse().unwrap(),
            admin_token,
            saga,
            identity,
        };
        stack.start_fleet().await;
        stack.start_inventory().await;
        stack.start_shipment().await;
        stack
    }

    /// Starts fleet (again, on its address).
    pub async fn start_fleet(&mut self) {
        let config = fleet::config::Config {
            listen_addr: self.fleet_addr,
            database: database(&self.identity, &fleet::schema::SCHEMA, 20),
            auth: AuthConfig::for_tests(),
            identity: IdentityClientConfig::plain(&self.identity.url()),
            tls: TlsConfig::default(),
            log_format: LogFormat::Json,
            keys: KeyConfig::for_tests(),
            metrics: logistics_platform::config::MetricsConfig::default(),
            shutdown_grace_seconds: 5,
        };
        let server = Server::start_at(self.fleet_addr, |l, s| fleet::app::run(config, l, s))
            .await
            .expect("fleet serving");
        self.fleet_addr = server.addr;
        self.fleet = Some(server);
    }

    /// Stops fleet; its address stays reserved for [`Stack::start_fleet`].
    pub async fn stop_fleet(&mut self) {
        if let Some(server) = self.fleet.take() {
            server.stop().await;
        }
    }

    /// Starts inventory (again, on its address).
    pub async fn start_inventory(&mut self) {
        let config = inventory::config::Config {
            listen_addr: self.inventory_addr,
            database: database(&self.identity, &inventory::schema::SCHEMA, 20),
            auth: AuthConfig::for_tests(),
            identity: IdentityClientConfig::plain(&self.identity.url()),
            tls: TlsConfig::default(),
            log_format: LogFormat::Json,
            page_token_key: Key32([9; 32]),
            metrics: logistics_platform::config::MetricsConfig::default(),
            shutdown_grace_seconds: 5,
        };
        let server = Server::start_at(self.inventory_addr, |l, s| {
            inventory::app::run(config, l, s)
        })
        .await
        .expect("inventory serving");
        self.inventory_addr = server.addr;
        self.inventory = Some(server);
    }

    /// Stops inventory; its address stays reserved for [`Stack::start_inventory`].
    pub async fn stop_inventory(&mut self) {
        if let Some(server) = self.inventory.take() {
            server.stop().await;
        }
    }

    /// The configuration shipment runs with in this stack.
    pub fn shipment_config(&self) -> Config {
        Config {
            listen_addr: self.shipment_addr,
            database: database(&self.identity, &shipment::schema::SCHEMA, 20),
            auth: AuthConfig::for_tests(),
            identity: IdentityClientConfig::plain(&self.identity.url()),
            peers: PeerConfig {
                partner_url: format!("http://{}", self.partner.addr),
                fleet_url: format!("http://{}", self.fleet_addr),
                inventory_url: format!("http://{}", self.inventory_addr),
                peer_tls_ca: None,
                call_timeout_ms: 3000,
            },
            saga: self.saga.clone(),
            tls: TlsConfig::default(),
            log_format: LogFormat::Json,
            keys: KeyConfig::for_tests(),
            metrics: logistics_platform::config::MetricsConfig::default(),
            shutdown_grace_seconds: 5,
        }
    }

    /// Starts shipment (again, on its address).
    pub async fn start_shipment(&mut self) {
        let config = self.shipment_config();
        let server = Server::start_at(self.shipment_addr, |l, s| shipment::app::run(config, l, s))
            .await
            .expect("shipment serving");
        self.shipment_addr = server.addr;
        self.shipment = Some(server);
    }

    /// Stops shipment; its address stays reserved for [`Stack::start_shipment`].
    pub async fn stop_shipment(&mut self) {
        if let Some(server) = self.shipment.take() {
            server.stop().await;
        }
    }

    async fn channel(addr: SocketAddr) -> Channel {
        Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_lazy()
    }

    /// A client of shipment.
    pub async fn client(&self) -> ShipmentServiceClient<Channel> {
        ShipmentServiceClient::new(Self::channel(self.shipment_addr).await)
    }

    /// A client of partner.
    pub async fn partner_client(
        &self,
    ) -> partnerpb::partner_service_client::PartnerServiceClient<Channel> {
        partnerpb::partner_service_client::PartnerServiceClient::new(
            Self::channel(self.partner.addr).await,
        )
    }

    /// A client of fleet.
    pub async fn fleet_client(&self) -> fleetpb::fleet_service_client::FleetServiceClient<Channel> {
        fleetpb::fleet_service_client::FleetServiceClient::new(Self::channel(self.fleet_addr).await)
    }

    /// A client of inventory.
    pub async fn inventory_client(
        &self,
    ) -> invpb::inventory_service_client::InventoryServiceClient<Channel> {
        invpb::inventory_service_client::InventoryServiceClient::new(
            Self::channel(self.inventory_addr).await,
        )
    }

    /// A user of the tenant with `roles` (linked to a partner or driver if given), and its
    /// token.
    pub async fn token(
        &self,
        roles: &[idpb::Role],
        partner_id: Option<&str>,
        driver_id: Option<&str>,
    ) -> String {
        let email = format!("user{}@stack.test", serial());
        self.identity
            .user(
                &email,
                roles,
                partner_id.map(|p| p.parse().unwrap()),
                driver_id.map(|d| d.parse().unwrap()),
            )
            .await
            .expect("user")
    }

    /// A superuser pool on the test database, for raw-row assertions.
    pub async fn db(&self) -> sqlx::PgPool {
        self.identity.db.admin_pool().await.unwrap()
    }

    /// A pool of shipment's runtime role, as the service connects (row-level security applies).
    pub async fn runtime_pool(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.identity.db.url_as("shipment_app"))
            .await
            .unwrap()
    }

    /// A customer partner (active, customer role) with a shipping address, as the admin.
    pub async fn customer(&self, name: &str) -> (partnerpb::Partner, partnerpb::Address) {
        let mut partners = self.partner_client().await;
        let partner = partners
            .create_partner(authed(
                &self.admin_token,
                partnerpb::CreatePartnerRequest {
                    request_id: Uuid::now_v7().to_string(),
                    partner: Some(partnerpb::Partner {
                        kind: partnerpb::PartnerKind::Organization as i32,
                        legal_name: format!("{name} GmbH"),
                        display_name: name.to_owned(),
                        country_code: "DE".to_owned(),
                        default_currency_code: "EUR".to_owned(),
                        ..Default::default()
                    }),
                    roles: vec![partnerpb::PartnerRole::Customer as i32],
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .partner
            .unwrap();
        let address = partners
            .create_address(authed(
                &self.admin_token,
                partnerpb::CreateAddressRequest {
                    request_id: Uuid::now_v7().to_string(),
                    address: Some(partnerpb::Address {
                        partner_id: partner.id.clone(),
                        kind: partnerpb::AddressKind::Shipping as i32,
                        line1: "Hafenstraße 7".to_owned(),
                        city: "Hamburg".to_owned(),
                        postal_code: "20457".to_owned(),
                        country_code: "DE".to_owned(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .address
            .unwrap();
        (partner, address)
    }

    /// A warehouse, as the admin.
    pub async fn warehouse(&self) -> invpb::Warehouse {
        let code = format!("WH-{}", serial());
        self.inventory_client()
            .await
            .create_warehouse(authed(
                &self.admin_token,
                invpb::CreateWarehouseRequest {
                    request_id: Uuid::now_v7().to_string(),
                    warehouse: Some(invpb::Warehouse {
                        code,
                        name: "Central".to_owned(),
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

    /// A material weighing `kg` per piece (0.01 m³), with `on_hand` received into `warehouse`.
    pub async fn material(
        &self,
        warehouse: &invpb::Warehouse,
        kg: &str,
        on_hand: &str,
    ) -> invpb::Material {
        let mut inventory = self.inventory_client().await;
        let sku = format!("SKU-{}", serial());
        let material = inventory
            .create_material(authed(
                &self.admin_token,
                invpb::CreateMaterialRequest {
                    request_id: Uuid::now_v7().to_string(),
                    material: Some(invpb::Material {
                        sku: sku.clone(),
                        name: format!("Material {sku}"),
                        unit: invpb::UnitOfMeasure::Piece as i32,
                        unit_weight_kg: decimal(kg),
                        unit_volume_m3: decimal("0.01"),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .material
            .unwrap();
        if on_hand != "0" {
            inventory
                .receive_stock(authed(
                    &self.admin_token,
                    invpb::ReceiveStockRequest {
                        idempotency_key: Uuid::now_v7().to_string(),
                        warehouse_id: warehouse.id.clone(),
                        material_id: material.id.clone(),
                        quantity: decimal(on_hand),
                        reference: None,
                        reason: String::new(),
                    },
                ))
                .await
                .unwrap();
        }
        material
    }

    /// A truck carrying `payload_kg`, as the admin.
    pub async fn truck(&self, payload_kg: &str) -> fleetpb::Truck {
        let n = serial();
        let vin = "0123456789X"
            .chars()
            .map(|check| format!("1M8GDM9A{check}KP{:06}", n % 1_000_000))
            .find(|candidate| fleet::domain::truck::Vin::parse("vin", candidate).is_ok())
            .unwrap();
        self.fleet_client()
            .await
            .create_truck(authed(
                &self.admin_token,
                fleetpb::CreateTruckRequest {
                    request_id: Uuid::now_v7().to_string(),
                    truck: Some(fleetpb::Truck {
                        plate: format!("B-LG {}", 1000 + n % 9000),
                        vin,
                        make: "Volvo".to_owned(),
                        model: "FH16".to_owned(),
                        year: 2024,
                        payload_capacity_kg: decimal(payload_kg),
                        volume_capacity_m3: decimal("90"),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .truck
            .unwrap()
    }

    /// A driver licensed for three years, as the admin.
    pub async fn driver(&self) -> fleetpb::Driver {
        self.fleet_client()
            .await
            .create_driver(authed(
                &self.admin_token,
                fleetpb::CreateDriverRequest {
                    request_id: Uuid::now_v7().to_string(),
                    driver: Some(fleetpb::Driver {
                        name: format!("Driver {}", serial()),
                        licence_number: format!("DL{:08}", serial()),
                        licence_classes: vec![fleetpb::LicenceClass::Ce as i32],
                        licence_expire_time: Some(days_from_now(3 * 365)),
                        phone: "+49 151 2345 6789".to_owned(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .driver
            .unwrap()
    }

    /// A customer, a warehouse with two materials (100 pieces each, 2.5 kg and 4 kg), a 24 t
    /// truck and a driver.
    pub async fn world(&self) -> World {
        let (customer, address) = self.customer(&format!("Customer {}", serial())).await;
        let warehouse = self.warehouse().await;
        let bolts = self.material(&warehouse, "2.5", "100").await;
        let nuts = self.material(&warehouse, "4", "100").await;
        let truck = self.truck("24000").await;
        let driver = self.driver().await;
        World {
            customer,
            address,
            warehouse,
            bolts,
            nuts,
            truck,
            driver,
        }
    }

    /// A draft shipment of `items` (material, quantity) for the world's customer, as `token`.
    pub async fn draft_as(
        &self,
        token: &str,
        world: &World,
        items: &[(&invpb::Material, &str)],
    ) -> pb::Shipment {
        let mut client = self.client().await;
        let shipment = client
            .create_shipment(authed(
                token,
                pb::CreateShipmentRequest {
                    request_id: Uuid::now_v7().to_string(),
                    shipment: Some(new_shipment(world)),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .shipment
            .unwrap();
        for (material, quantity) in items {
            self.add_item(token, &shipment.id, material, quantity).await;
        }
        self.get(&shipment.id).await
    }

    /// CreateShipmentItem: `quantity` of `material` on the shipment `shipment_id`, as `token`.
    pub async fn add_item(
        &self,
        token: &str,
        shipment_id: &str,
        material: &invpb::Material,
        quantity: &str,
    ) -> pb::ShipmentItem {
        self.client()
            .await
            .create_shipment_item(authed(
                token,
                pb::CreateShipmentItemRequest {
                    request_id: Uuid::now_v7().to_string(),
                    shipment_item: Some(pb::ShipmentItem {
                        shipment_id: shipment_id.to_owned(),
                        material_id: material.id.clone(),
                        quantity: decimal(quantity),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .shipment_item
            .unwrap()
    }

    /// [`Stack::draft_as`] as the admin.
    pub async fn draft(&self, world: &World, items: &[(&invpb::Material, &str)]) -> pb::Shipment {
        self.draft_as(&self.admin_token, world, items).await
    }

    /// GetShipment as the admin.
    pub async fn get(&self, id: &str) -> pb::Shipment {
        self.client()
            .await
            .get_shipment(authed(
                &self.admin_token,
                pb::GetShipmentRequest { id: id.to_owned() },
            ))
            .await
            .unwrap()
            .into_inner()
            .shipment
            .unwrap()
    }

    /// PlanShipment as `token`.
    pub async fn plan_as(&self, token: &str, id: &str) -> Result<pb::Shipment, Status> {
        self.client()
            .await
            .plan_shipment(authed(
                token,
                pb::PlanShipmentRequest {
                    id: id.to_owned(),
                    etag: String::new(),
                    request_id: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().shipment.unwrap())
    }

    /// PlanShipment as the admin.
    pub async fn plan(&self, id: &str) -> Result<pb::Shipment, Status> {
        self.plan_as(&self.admin_token, id).await
    }

    /// DispatchShipment as the admin.
    pub async fn dispatch(&self, id: &str) -> Result<pb::Shipment, Status> {
        self.client()
            .await
            .dispatch_shipment(authed(
                &self.admin_token,
                pb::DispatchShipmentRequest {
                    id: id.to_owned(),
                    etag: String::new(),
                },
            ))
            .await
            .map(|r| r.into_inner().shipment.unwrap())
    }

    /// CancelShipment as the admin.
    pub async fn cancel(&self, id: &str) -> Result<pb::Shipment, Status> {
        self.client()
            .await
            .cancel_shipment(authed(
                &self.admin_token,
                pb::CancelShipmentRequest {
                    id: id.to_owned(),
                    etag: String::new(),
                    reason: "customer changed their mind".to_owned(),
                },
            ))
            .await
            .map(|r| r.into_inner().shipment.unwrap())
    }

    /// RecordTrackingEvent of `kind` now, as `token`.
    pub async fn track_as(
        &self,
        token: &str,
        id: &str,
        kind: pb::TrackingEventKind,
    ) -> Result<pb::RecordTrackingEventResponse, Status> {
        self.client()
            .await
            .record_tracking_event(authed(
                token,
                pb::RecordTrackingEventRequest {
                    tracking_event: Some(pb::TrackingEvent {
                        shipment_id: id.to_owned(),
                        client_event_id: Uuid::now_v7().to_string(),
                        kind: kind as i32,
                        event_time: Some(minutes_from_now(0)),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// DeliverShipment with a small PNG signature, as `token`.
    pub async fn deliver_as(
        &self,
        token: &str,
        id: &str,
    ) -> Result<pb::DeliverShipmentResponse, Status> {
        self.client()
            .await
            .deliver_shipment(authed(
                token,
                pb::DeliverShipmentRequest {
                    id: id.to_owned(),
                    proof_of_delivery: Some(pb::ProofOfDelivery {
                        recipient_name: "Erika Mustermann".to_owned(),
                        deliver_time: Some(minutes_from_now(0)),
                        content: b"\x89PNG\r\n\x1a\nsignature".to_vec(),
                        content_type: "image/png".to_owned(),
                        ..Default::default()
                    }),
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// The shipment's reservations as inventory has them: (status, quantity) per line.
    pub async fn reservations(&self, shipment_id: &str) -> Vec<(invpb::ReservationStatus, String)> {
        let mut out: Vec<_> = self
            .inventory_client()
            .await
            .list_reservations(authed(
                &self.admin_token,
                invpb::ListReservationsRequest {
                    shipment_id: shipment_id.to_owned(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .reservations
            .into_iter()
            .map(|r| {
                (
                    invpb::ReservationStatus::try_from(r.status).unwrap(),
                    r.quantity.unwrap().value,
                )
            })
            .collect();
        out.sort_by(|a, b| a.1.cmp(&b.1));
        out
    }

    /// The shipment's bookings as fleet has them (cancelled ones included).
    pub async fn assignments(&self, shipment_id: &str) -> Vec<fleetpb::Assignment> {
        self.fleet_client()
            .await
            .list_assignments(authed(
                &self.admin_token,
                fleetpb::ListAssignmentsRequest {
                    shipment_id: shipment_id.to_owned(),
                    show_cancelled: true,
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .assignments
    }

    /// The shipment's active bookings.
    pub async fn active_assignments(&self, shipment_id: &str) -> Vec<fleetpb::Assignment> {
        self.assignments(shipment_id)
            .await
            .into_iter()
            .filter(|a| a.status == fleetpb::AssignmentStatus::Active as i32)
            .collect()
    }

    /// (on hand, reserved) of `material` in `warehouse`.
    pub async fn level(
        &self,
        warehouse: &invpb::Warehouse,
        material: &invpb::Material,
    ) -> (String, String) {
        let level = self
            .inventory_client()
            .await
            .get_stock_level(authed(
                &self.admin_token,
                invpb::GetStockLevelRequest {
                    warehouse_id: warehouse.id.clone(),
                    material_id: material.id.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .level
            .unwrap();
        (level.on_hand.unwrap().value, level.reserved.unwrap().value)
    }

    /// The kinds of the ledger entries of `material` in `warehouse`, oldest first.
    pub async fn ledger(
        &self,
        warehouse: &invpb::Warehouse,
        material: &invpb::Material,
    ) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .inventory_client()
            .await
            .list_stock_movements(authed(
                &self.admin_token,
                invpb::ListStockMovementsRequest {
                    warehouse_id: warehouse.id.clone(),
                    material_id: material.id.clone(),
                    page_size: 100,
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner()
            .movements
            .into_iter()
            .map(|m| {
                invpb::MovementKind::try_from(m.kind)
                    .unwrap()
                    .as_str_name()
                    .trim_start_matches("MOVEMENT_KIND_")
                    .to_lowercase()
            })
            .collect();
        kinds.reverse();
        kinds
    }

    /// The shipment's saga rows: (kind, state, step).
    pub async fn sagas(&self, shipment_id: &str) -> Vec<(String, String, String)> {
        sqlx::query_as(
            "SELECT kind, state, step FROM shipment.sagas WHERE shipment_id = $1 ORDER BY created_at",
        )
        .bind(Uuid::parse_str(shipment_id).unwrap())
        .fetch_all(&self.db().await)
        .await
        .unwrap()
    }
}

/// What most tests plan with.
pub struct World {
    /// A customer partner.
    pub customer: partnerpb::Partner,
    /// Its shipping address.
    pub address: partnerpb::Address,
    /// A warehouse.
    pub warehouse: invpb::Warehouse,
    /// 100 pieces of 2.5 kg.
    pub bolts: invpb::Material,
    /// 100 pieces of 4 kg.
    pub nuts: invpb::Material,
    /// A 24 t truck.
    pub truck: fleetpb::Truck,
    /// A driver.
    pub driver: fleetpb::Driver,
}

/// A valid new shipment of the world's customer: pickup in 2 days for 4 hours, delivery the day
/// after.
pub fn new_shipment(world: &World) -> pb::Shipment {
    let day = i64::from(serial() % 300) + 2;
    pb::Shipment {
        reference: format!("SO-{}", serial()),
        customer_id: world.customer.id.clone(),
        origin_warehouse_id: world.warehouse.id.clone(),
        destination_address_id: world.address.id.clone(),
        pickup_window: Some(window_hours(day * 24, day * 24 + 4)),
        delivery_window: Some(window_hours(day * 24 + 20, day * 24 + 30)),
        ..Default::default()
    }
}

/// An exact decimal.
pub fn decimal(value: &str) -> Option<types::Decimal> {
    Some(types::Decimal {
        value: value.to_owned(),
    })
}

/// Now plus `minutes`, as a protobuf timestamp.
pub fn minutes_from_now(minutes: i64) -> prost_types::Timestamp {
    logistics_platform::wire::timestamp(
        OffsetDateTime::now_utc() + time::Duration::minutes(minutes),
    )
}

/// Now plus `days`, as a protobuf timestamp.
pub fn days_from_now(days: i64) -> prost_types::Timestamp {
    minutes_from_now(days * 24 * 60)
}

/// A window from `from` to `to` hours after the next midnight UTC.
pub fn window_hours(from: i64, to: i64) -> types::TimeWindow {
    let midnight =
        OffsetDateTime::now_utc().replace_time(time::Time::MIDNIGHT) + time::Duration::days(1);
    types::TimeWindow {
        start_time: Some(logistics_platform::wire::timestamp(
            midnight + time::Duration::hours(from),
        )),
        end_time: Some(logistics_platform::wire::timestamp(
            midnight + time::Duration::hours(to),
        )),
    }
}

/// The wire status of a shipment.
pub fn status_of(s: &pb::Shipment) -> pb::ShipmentStatus {
    pb::ShipmentStatus::try_from(s.status).unwrap()
}
