//! The inventory service's configuration: one typed struct read from the environment at start.

use std::net::SocketAddr;

use logistics_platform::config::{
    AuthConfig, DatabaseConfig, Key32, LogFormat, MetricsConfig, TlsConfig, parse_key32, secret,
};
use logistics_platform::service::IdentityClientConfig;

/// Everything `inventory serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50054")]
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
    /// Listener TLS.
    #[command(flatten)]
    pub tls: TlsConfig,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// 32-byte key (base64) that signs page tokens; shared by every replica.
    #[arg(long, env = "PAGE_TOKEN_KEY", hide_env_values = true, value_parser = secret(parse_key32))]
    pub page_token_key: Key32,
    /// Prometheus metrics listener.
    #[command(flatten)]
    pub metrics: MetricsConfig,
    /// How long in-flight calls may run after SIGTERM, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
}

impl Config {
    /// A configuration for tests: listens on an ephemeral port of 127.0.0.1, runs as
    /// `database_url`, verifies tokens against identity at `identity_url` (plain HTTP/2), with
    /// a fixed page-token key, no metrics and no TLS.
    pub fn for_tests(database_url: &str, identity_url: &str) -> Self {
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: DatabaseConfig::for_tests(database_url, 10),
            auth: AuthConfig::for_tests(),
            identity: IdentityClientConfig::plain(identity_url),
            tls: TlsConfig::default(),
            log_format: LogFormat::Json,
            page_token_key: Key32([9; 32]),
            metrics: MetricsConfig::default(),
            shutdown_grace_seconds: 5,
        }
    }
}
