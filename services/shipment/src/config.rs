//! The shipment service's configuration: one typed struct read from the environment at start.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use logistics_platform::config::KeyConfig;
use logistics_platform::config::{AuthConfig, DatabaseConfig, LogFormat, MetricsConfig, TlsConfig};
use logistics_platform::service::IdentityClientConfig;

/// Everything `shipment serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50055")]
    pub listen_addr: SocketAddr,
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Token issuer and audience.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// Where identity's public keys come from.
    #[command(flatten)]
    pub identity: IdentityClientConfig,
    /// The services a shipment is planned with.
    #[command(flatten)]
    pub peers: PeerConfig,
    /// How sagas run and recover.
    #[command(flatten)]
    pub saga: SagaConfig,
    /// Listener TLS.
    #[command(flatten)]
    pub tls: TlsConfig,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Keys for personal data (proof of delivery) and page tokens.
    #[command(flatten)]
    pub keys: KeyConfig,
    /// Prometheus metrics listener.
    #[command(flatten)]
    pub metrics: MetricsConfig,
    /// How long in-flight calls may run after SIGTERM, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
}

/// Where partner, inventory and fleet listen, and how to reach them. TLS settings (CA and client
/// certificate) are identity's, shared by every outgoing connection.
#[derive(Debug, Clone, clap::Args)]
pub struct PeerConfig {
    /// URL of the partner service, `http://host:50052` or `https://...`.
    #[arg(long, env = "PARTNER_URL")]
    pub partner_url: String,
    /// URL of the fleet service, `http://host:50053` or `https://...`.
    #[arg(long, env = "FLEET_URL")]
    pub fleet_url: String,
    /// URL of the inventory service, `http://host:50054` or `https://...`.
    #[arg(long, env = "INVENTORY_URL")]
    pub inventory_url: String,
    /// PEM CA that the peers' certificates chain to (for `https`); defaults to IDENTITY_TLS_CA.
    #[arg(long, env = "PEER_TLS_CA")]
    pub peer_tls_ca: Option<PathBuf>,
    /// Deadline of each outgoing call, in milliseconds.
    #[arg(long, env = "PEER_CALL_TIMEOUT_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub call_timeout_ms: u64,
}

/// Saga execution and recovery.
#[derive(Debug, Clone, clap::Args)]
pub struct SagaConfig {
    /// How long a replica owns a saga it works on without renewing, in seconds; after that
    /// another replica (or the next start) takes it over.
    #[arg(long, env = "SAGA_LEASE_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub lease_seconds: u64,
    /// How often to look for sagas whose owner stopped, in milliseconds.
    #[arg(long, env = "SAGA_RECOVERY_INTERVAL_MS", default_value_t = 5000, value_parser = clap::value_parser!(u64).range(50..=600_000))]
    pub recovery_interval_ms: u64,
    /// How many times a step retries a peer that is unavailable before the saga gives up and
    /// undoes what it did.
    #[arg(long, env = "SAGA_STEP_RETRIES", default_value_t = 2, value_parser = clap::value_parser!(u32).range(0..=20))]
    pub step_retries: u32,
}

impl Config {
    /// A configuration for tests: listens on an ephemeral port of 127.0.0.1, runs as
    /// `database_url`, verifies tokens against identity at `identity_url` (plain HTTP/2), calls
    /// the peers at `peers` (partner, fleet, inventory URLs), with fixed keys, default saga
    /// settings, no metrics and no TLS.
    pub fn for_tests(database_url: &str, identity_url: &str, peers: [&str; 3]) -> Self {
        let [partner_url, fleet_url, inventory_url] = peers.map(str::to_owned);
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: DatabaseConfig::for_tests(database_url, 10),
            auth: AuthConfig::for_tests(),
            identity: IdentityClientConfig::plain(identity_url),
            peers: PeerConfig {
                partner_url,
                fleet_url,
                inventory_url,
                peer_tls_ca: None,
                call_timeout_ms: 3000,
            },
            saga: SagaConfig {
                lease_seconds: 30,
                recovery_interval_ms: 5000,
                step_retries: 2,
            },
            tls: TlsConfig::default(),
            log_format: LogFormat::Json,
            keys: KeyConfig::for_tests(),
            metrics: MetricsConfig::default(),
            shutdown_grace_seconds: 5,
        }
    }
}
