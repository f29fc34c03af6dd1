//! `TestApp`: a real fleet server and a real identity server on ephemeral ports, sharing one
//! fresh database (one schema each, as in production), with an admin token, builders for
//! trucks, drivers and windows, and assertions on rich error details.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use fleet::config::Config;
use fleet::schema::{MIGRATOR, SCHEMA};
use logistics_harness::{Identity, Server};
use logistics_proto::fleet::v1 as pb;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::r#type::v1 as types;
use pb::fleet_service_client::FleetServiceClient;
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;

pub use logistics_harness::authed;
#[allow(unused_imports)] // Each test file uses its own share of the helpers.
pub use logistics_testkit::status::{expect_code, preconditions, violated_fields};

/// A fleet server, its identity, and their database.
pub struct TestApp {
    /// Identity, serving tokens and keys.
    pub identity: Identity,
    /// The fleet server.
    pub server: Server,
    /// The admin's access token (admin role).
    pub admin_token: String,
}

impl TestApp {
    /// Identity and fleet on a fresh database.
    pub async fn spawn() -> Self {
        let _ = logistics_testkit::captured_logs();
        let identity = Identity::start(&[&SCHEMA]).await.expect("identity");
        logistics_platform::db::migrate(
            &identity.db.url_as(SCHEMA.owner_role),
            SCHEMA.schema,
            &MIGRATOR,
        )
        .await
        .expect("fleet migrations");
        let config = test_config(&identity);
        let server =
            Server::start(|listener, shutdown| fleet::app::run(config, listener, shutdown))
                .await
                .expect("fleet serving");
        let admin_token = identity.admin_token.clone();
        Self {
            identity,
            server,
            admin_token,
        }
    }

    /// A client of this fleet server.
    pub async fn client(&self) -> FleetServiceClient<Channel> {
        FleetServiceClient::new(self.server.channel().await.unwrap())
    }

    /// A user of the tenant with `roles` (linked to `driver_id` if given), and its token.
    pub async fn token(
        &self,
        email: &str,
        roles: &[idpb::Role],
        driver_id: Option<Uuid>,
    ) -> String {
        self.identity
            .user(email, roles, None, driver_id)
            .await
            .expect("user")
    }

    /// A superuser pool on the test database, for raw-row assertions.
    pub async fn db(&self) -> sqlx::PgPool {
        self.identity.db.admin_pool().await.unwrap()
    }

    /// Creates `truck` as the admin.
    pub async fn create_truck(&self, truck: pb::Truck) -> pb::Truck {
        self.create_truck_as(&self.admin_token, truck)
            .await
            .expect("create truck")
    }

    /// Creates `truck` with `token`.
    pub async fn create_truck_as(
        &self,
        token: &str,
        truck: pb::Truck,
    ) -> Result<pb::Truck, Status> {
        self.client()
            .await
            .create_truck(authed(
                token,
                pb::CreateTruckRequest {
                    request_id: Uuid::now_v7().to_string(),
                    truck: Some(truck),
                },
            ))
            .await
            .map(|r| r.into_inner().truck.unwrap())
    }

    /// Creates `driver` as the admin.
    pub async fn create_driver(&self, driver: pb::Driver) -> pb::Driver {
        self.create_driver_as(&self.admin_token, driver)
            .await
            .expect("create driver")
    }

    /// Creates `driver` with `token`.
    pub async fn create_driver_as(
        &self,
        token: &str,
        driver: pb::Driver,
    ) -> Result<pb::Driver, Status> {
        self.client()
            .await
            .create_driver(authed(
                token,
                pb::CreateDriverRequest {
                    request_id: Uuid::now_v7().to_string(),
                    driver: Some(driver),
                },
            ))
            .await
            .map(|r| r.into_inner().driver.unwrap())
    }

    /// Books `truck` and `driver` for a new shipment over `window`, as the admin.
    pub async fn assign(
        &self,
        truck: &pb::Truck,
        driver: &pb::Driver,
        window: types::TimeWindow,
    ) -> Result<pb::Assignment, Status> {
        self.assign_as(&self.admin_token, &truck.id, &driver.id, window)
            .await
    }

    /// Books with `token`.
    pub async fn assign_as(
        &self,
        token: &str,
        truck_id: &str,
        driver_id: &str,
        window: types::TimeWindow,
    ) -> Result<pb::Assignment, Status> {
        self.client()
            .await
            .create_assignment(authed(
                token,
                pb::CreateAssignmentRequest {
                    request_id: Uuid::now_v7().to_string(),
                    truck_id: truck_id.to_owned(),
                    driver_id: driver_id.to_owned(),
                    shipment_id: Uuid::now_v7().to_string(),
                    window: Some(window),
                },
            ))
            .await
            .map(|r| r.into_inner().assignment.unwrap())
    }
}

/// The configuration fleet tests run with.
pub fn test_config(identity: &Identity) -> Config {
    let mut config = Config::for_tests(&identity.db.url_as(SCHEMA.app_role), &identity.url());
    // Room for the concurrency tests: every racing call holds a connection.
    config.database.database_max_connections = 30;
    config
}

/// A valid VIN with serial number `serial` (its check digit found by trying).
pub fn vin(serial: u32) -> String {
    "0123456789X"
        .chars()
        .map(|check| format!("1M8GDM9A{check}KP{:06}", serial % 1_000_000))
        .find(|candidate| fleet::domain::truck::Vin::parse("vin", candidate).is_ok())
        .unwrap()
}

static SERIAL: AtomicU32 = AtomicU32::new(1);

/// An exact decimal.
pub fn decimal(value: &str) -> Option<types::Decimal> {
    Some(types::Decimal {
        value: value.to_owned(),
    })
}

/// A valid 40 t articulated lorry with `plate` (a fresh VIN each time).
pub fn lorry(plate: &str) -> pb::Truck {
    pb::Truck {
        plate: plate.to_owned(),
        vin: vin(SERIAL.fetch_add(1, Ordering::Relaxed)),
        make: "Volvo".to_owned(),
        model: "FH16".to_owned(),
        year: 2024,
        payload_capacity_kg: decimal("24000"),
        volume_capacity_m3: decimal("90"),
        ..Default::default()
    }
}

/// Midnight UTC of 2026-12-01 plus `hours`, as a protobuf timestamp.
pub fn at(hours: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: 1_796_083_200 + hours * 3600,
        nanos: 0,
    }
}

/// `[at(from), at(to))`.
pub fn window(from: i64, to: i64) -> types::TimeWindow {
    types::TimeWindow {
        start_time: Some(at(from)),
        end_time: Some(at(to)),
    }
}

/// A window `from` to `to` hours after the current hour: for rules about assignments that have
/// not ended yet, which depend on the time the test runs.
pub fn hours_from_now(from: i64, to: i64) -> types::TimeWindow {
    let hour = time::OffsetDateTime::now_utc().unix_timestamp() / 3600 * 3600;
    let at = |h: i64| prost_types::Timestamp {
        seconds: hour + h * 3600,
        nanos: 0,
    };
    types::TimeWindow {
        start_time: Some(at(from)),
        end_time: Some(at(to)),
    }
}

/// A valid driver named `name` with a CE licence valid until 2030 and a fresh licence number.
pub fn driver(name: &str) -> pb::Driver {
    pb::Driver {
        name: name.to_owned(),
        licence_number: format!("DL{:08}", SERIAL.fetch_add(1, Ordering::Relaxed)),
        licence_classes: vec![pb::LicenceClass::C as i32, pb::LicenceClass::Ce as i32],
        licence_expire_time: Some(at(24 * 365 * 3)),
        phone: "+49 151 2345 6789".to_owned(),
        ..Default::default()
    }
}
