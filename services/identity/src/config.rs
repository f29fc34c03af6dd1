//! The identity service's configuration: one typed struct read from the environment at start.

use std::net::SocketAddr;

use logistics_platform::config::{
    AuthConfig, DatabaseConfig, Key32, LogFormat, MetricsConfig, TlsConfig, parse_key32,
    parse_keyring, secret,
};
use logistics_platform::crypto::Keyring;

/// Everything `identity serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50051")]
    pub listen_addr: SocketAddr,
    /// Database settings.
    #[command(flatten)]
    pub database: DatabaseConfig,
    /// Token issuer and audience.
    #[command(flatten)]
    pub auth: AuthConfig,
    /// Listener TLS.
    #[command(flatten)]
    pub tls: TlsConfig,
    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "json")]
    pub log_format: LogFormat,
    /// Keys that seal signing keys at rest: `id:base64key[,id:base64key...]`, the first one
    /// active. Keep old ids listed until every signing key sealed with them has been retired.
    #[arg(long, env = "KEY_ENCRYPTION_KEYS", hide_env_values = true, value_parser = secret(parse_keyring))]
    pub key_encryption_keys: Keyring,
    /// 32-byte key (base64) that signs page tokens; shared by every replica.
    #[arg(long, env = "PAGE_TOKEN_KEY", hide_env_values = true, value_parser = secret(parse_key32))]
    pub page_token_key: Key32,
    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "ACCESS_TOKEN_TTL_SECONDS", default_value_t = 900)]
    pub access_token_ttl_seconds: i64,
    /// Lifetime of a session (its last refresh), in seconds.
    #[arg(long, env = "SESSION_TTL_SECONDS", default_value_t = 30 * 24 * 3600)]
    pub session_ttl_seconds: i64,
    /// Consecutive failed logins that lock an account.
    #[arg(long, env = "LOCKOUT_MAX_FAILURES", default_value_t = 5, value_parser = clap::value_parser!(i32).range(1..))]
    pub lockout_max_failures: i32,
    /// How long a locked account stays locked, in seconds.
    #[arg(long, env = "LOCKOUT_SECONDS", default_value_t = 900)]
    pub lockout_seconds: i64,
    /// Prometheus metrics listener.
    #[command(flatten)]
    pub metrics: MetricsConfig,
    /// How long in-flight calls may run after SIGTERM, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
}

impl Config {
    /// A configuration for tests and throwaway stacks: listens on 127.0.0.1, fresh random
    /// key-encryption and page-token keys, a low lockout threshold (3), default lifetimes.
    pub fn for_tests(database_url: &str) -> Self {
        let mut page_key = [0u8; 32];
        getrandom::fill(&mut page_key).expect("the OS has randomness");
        Self {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: DatabaseConfig::for_tests(database_url, 10),
            auth: AuthConfig::for_tests(),
            tls: TlsConfig::default(),
            log_format: LogFormat::Json,
            key_encryption_keys: Keyring::generate("test1"),
            page_token_key: Key32(page_key),
            access_token_ttl_seconds: 900,
            session_ttl_seconds: 3600,
            lockout_max_failures: 3,
            lockout_seconds: 900,
            metrics: MetricsConfig::default(),
            shutdown_grace_seconds: 10,
        }
    }
}
