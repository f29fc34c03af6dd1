//! `TestApp`: a real partner server and a real identity server on ephemeral ports, sharing one
//! fresh database (one schema each, as in production), with an admin token and builders.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use logistics_harness::{Identity, Server};
use logistics_platform::config::{AuthConfig, DatabaseConfig, LogFormat, TlsConfig};
use logistics_platform::crypto::Keyring;
use logistics_platform::service::IdentityClientConfig;
use logistics_proto::identity::v1 as idpb;
use logistics_proto::partner::v1 as pb;
use partner::app::{self, MIGRATOR, SCHEMA};
use partner::config::{Config, KeyConfig};
use pb::partner_service_client::PartnerServiceClient;
use tonic::Status;
use tonic::transport::Channel;
use uuid::Uuid;

pub use logistics_harness::authed;
#[allow(unused_imports)] // Each test file uses its own share of the helpers.
pub use logistics_testkit::status::{expect_code, preconditions, violated_fields};

/// A field-encryption key list with one key, `k1`.
pub const KEYS_K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
/// The same with a new active key `k2` in front of `k1`, as during a rotation.
pub const KEYS_K2_K1: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=,k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

/// A partner server, its identity, and their database.
pub struct TestApp {
    /// Identity, serving tokens and keys.
    pub identity: Identity,
    /// Where partner listens.
    pub addr: SocketAddr,
    /// The configuration partner runs with.
    pub config: Config,
    /// The admin's access token (admin role).
    pub admin_token: String,
    server: Server,
    /// Replicas started by `spawn_replica`; they stop with the app.
    replicas: Vec<Server>,
}

impl TestApp {
    /// Identity and partner on a fresh database, partner's keys `k1`.
    pub async fn spawn() -> Self {
        let _ = logistics_testkit::captured_logs();
        let identity = Identity::start(&[&SCHEMA]).await.expect("identity");
        logistics_platform::db::migrate(
            &identity.db.url_as(SCHEMA.owner_role),
            SCHEMA.schema,
            &MIGRATOR,
        )
        .await
        .expect("partner migrations");
        let config = test_config(&identity, KEYS_K1);
        let server = start(config.clone()).await;
        let admin_token = identity.admin_token.clone();
        Self {
            identity,
            addr: server.addr,
            config,
            admin_token,
            server,
            replicas: Vec::new(),
        }
    }

    /// A client of this partner server.
    pub async fn client(&self) -> PartnerServiceClient<Channel> {
        client_at(self.addr).await
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

    /// Creates a partner as the admin; panics on failure.
    pub async fn create_partner(
        &self,
        partner: pb::Partner,
        roles: &[pb::PartnerRole],
    ) -> pb::Partner {
        self.create_partner_as(&self.admin_token, partner, roles)
            .await
            .expect("create partner")
    }

    /// Creates a partner with `token`.
    pub async fn create_partner_as(
        &self,
        token: &str,
        partner: pb::Partner,
        roles: &[pb::PartnerRole],
    ) -> Result<pb::Partner, Status> {
        self.client()
            .await
            .create_partner(authed(
                token,
                pb::CreatePartnerRequest {
                    request_id: Uuid::now_v7().to_string(),
                    partner: Some(partner),
                    roles: roles.iter().map(|r| *r as i32).collect(),
                },
            ))
            .await
            .map(|r| r.into_inner().partner.unwrap())
    }

    /// Creates a contact of `partner_id` with `token`.
    pub async fn create_contact_as(
        &self,
        token: &str,
        contact: pb::Contact,
    ) -> Result<pb::Contact, Status> {
        self.client()
            .await
            .create_contact(authed(
                token,
                pb::CreateContactRequest {
                    request_id: Uuid::now_v7().to_string(),
                    contact: Some(contact),
                },
            ))
            .await
            .map(|r| r.into_inner().contact.unwrap())
    }

    /// Creates an address with `token`.
    pub async fn create_address_as(
        &self,
        token: &str,
        address: pb::Address,
    ) -> Result<pb::Address, Status> {
        self.client()
            .await
            .create_address(authed(
                token,
                pb::CreateAddressRequest {
                    request_id: Uuid::now_v7().to_string(),
                    address: Some(address),
                },
            ))
            .await
            .map(|r| r.into_inner().address.unwrap())
    }

    /// A second partner server on the same database with another key list, as a new
    /// deployment during a key rotation would be. Returns its address; it stops with the test.
    pub async fn spawn_replica(&mut self, field_encryption_keys: &str) -> SocketAddr {
        let mut config = self.config.clone();
        config.keys.field_encryption_keys = Keyring::parse(field_encryption_keys).unwrap();
        let replica = start(config).await;
        let addr = replica.addr;
        self.replicas.push(replica);
        addr
    }

    /// A superuser pool on the test database, for raw-row assertions.
    pub async fn db(&self) -> sqlx::PgPool {
        self.identity.db.admin_pool().await.unwrap()
    }
}

/// A client of the partner server at `addr`.
pub async fn client_at(addr: SocketAddr) -> PartnerServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    PartnerServiceClient::new(channel)
}

/// The configuration partner tests run with.
pub fn test_config(identity: &Identity, field_encryption_keys: &str) -> Config {
    Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        database: DatabaseConfig::for_tests(&identity.db.url_as(SCHEMA.app_role), 10),
        auth: AuthConfig::for_tests(),
        identity: IdentityClientConfig::plain(&identity.url()),
        tls: TlsConfig::default(),
        log_format: LogFormat::Json,
        keys: KeyConfig {
            field_encryption_keys: Keyring::parse(field_encryption_keys).unwrap(),
            ..KeyConfig::for_tests()
        },
        metrics: logistics_platform::config::MetricsConfig::default(),
        shutdown_grace_seconds: 5,
    }
}

/// A partner server with `config`, serving.
async fn start(config: Config) -> Server {
    Server::start(|listener, shutdown| app::run(config, listener, shutdown))
        .await
        .expect("partner serving")
}

/// A valid organisation in Germany with a tax id, for `create_partner`.
pub fn acme(name: &str, tax_id: &str) -> pb::Partner {
    pb::Partner {
        kind: pb::PartnerKind::Organization as i32,
        legal_name: format!("{name} GmbH"),
        display_name: name.to_owned(),
        tax_id: tax_id.to_owned(),
        country_code: "DE".to_owned(),
        default_currency_code: "EUR".to_owned(),
        ..Default::default()
    }
}
