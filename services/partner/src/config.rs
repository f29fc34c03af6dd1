//! The partner service's configuration: one typed struct read from the environment at start.

use std::net::SocketAddr;

use logistics_platform::config::{
    AuthConfig, DatabaseConfig, Key32, LogFormat, TlsConfig, parse_key32, parse_keyring, secret,
};
use logistics_platform::crypto::Keyring;
use logistics_platform::service::IdentityClientConfig;

/// Everything `partner serve` needs.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "0.0.0.0:50052")]
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
    #[command(flatten)]
    /// Keys for personal data.
    pub keys: KeyConfig,
    /// How long in-flight calls may run after SIGTERM, in seconds.
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,
}

/// The keys that protect personal data, shared by `serve` and `rotate-keys`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyConfig {
    /// Keys that seal tax ids, e-mail addresses and phone numbers:
    /// `id:base64key[,id:base64key...]`, the first one sealing new values. To rotate, put a new
    /// key first, deploy, run `partner rotate-keys`, then drop the old key.
    #[arg(long, env = "FIELD_ENCRYPTION_KEYS", hide_env_values = true, value_parser = secret(parse_keyring))]
    pub field_encryption_keys: Keyring,
    /// 32-byte key (base64) of the blind indexes (keyed HMAC) for tax-id lookup.
    #[arg(long, env = "BLIND_INDEX_KEY", hide_env_values = true, value_parser = secret(parse_key32))]
    pub blind_index_key: Key32,
    /// 32-byte key (base64) that signs page tokens; shared by every replica.
    #[arg(long, env = "PAGE_TOKEN_KEY", hide_env_values = true, value_parser = secret(parse_key32))]
    pub page_token_key: Key32,
}
