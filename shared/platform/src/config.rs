//! Configuration pieces every service flattens into its own `clap` struct. Every field reads an
//! environment variable of the same name; a missing or malformed required value stops the
//! process with a message naming the variable.

use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};

/// Database connection settings.
#[derive(Debug, Clone, clap::Args)]
pub struct DatabaseConfig {
    /// Connection URL of the service's runtime role (no ownership, no BYPASSRLS).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: SecretString,
    /// Connection URL of the schema owner role; when set, migrations run at start-up with it.
    #[arg(long, env = "MIGRATION_DATABASE_URL", hide_env_values = true)]
    pub migration_database_url: Option<SecretString>,
    /// Largest number of pooled connections.
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
}

impl DatabaseConfig {
    /// Runs as `database_url` with at most `max_connections`, migrating nothing (tests).
    pub fn for_tests(database_url: &str, max_connections: u32) -> Self {
        Self {
            database_url: SecretString::from(database_url.to_owned()),
            migration_database_url: None,
            database_max_connections: max_connections,
        }
    }
}

/// Where the service serves its Prometheus metrics.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsConfig {
    /// Address of the HTTP listener for `GET /metrics` (e.g. `0.0.0.0:9100`); unset serves none.
    #[arg(long, env = "METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Token verification settings shared by every service.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthConfig {
    /// `iss` of access tokens.
    #[arg(long, env = "JWT_ISSUER", default_value = "logistics-identity")]
    pub jwt_issuer: String,
    /// `aud` of access tokens.
    #[arg(long, env = "JWT_AUDIENCE", default_value = "logistics")]
    pub jwt_audience: String,
    /// Shortest time between two key refetches triggered by unknown `kid`s, in seconds.
    #[arg(long, env = "JWKS_MIN_REFRESH_SECONDS", default_value_t = 5)]
    pub jwks_min_refresh_seconds: u64,
}

impl AuthConfig {
    /// The issuer and audience identity signs with, keys refetched on every unknown `kid`
    /// (tests rotate keys and expect to be believed at once).
    pub fn for_tests() -> Self {
        Self {
            jwt_issuer: "logistics-identity".to_owned(),
            jwt_audience: "logistics".to_owned(),
            jwks_min_refresh_seconds: 0,
        }
    }
}

/// TLS for the service's own listener. Without cert and key the server speaks plaintext; with a
/// client CA as well it requires client certificates signed by it (mutual TLS).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsConfig {
    /// PEM certificate chain of the server.
    #[arg(long, env = "TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the server.
    #[arg(long, env = "TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle that client certificates must chain to; turns on mutual TLS.
    #[arg(long, env = "TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
}

impl TlsConfig {
    /// The tonic TLS settings, or `None` for plaintext.
    pub fn server_tls(&self) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        use anyhow::Context as _;
        use tonic::transport::{Certificate, Identity, ServerTlsConfig};
        let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) else {
            return Ok(None);
        };
        let cert =
            std::fs::read(cert).with_context(|| format!("reading TLS_CERT {}", cert.display()))?;
        let key =
            std::fs::read(key).with_context(|| format!("reading TLS_KEY {}", key.display()))?;
        let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
        if let Some(ca) = &self.tls_client_ca {
            let ca = std::fs::read(ca)
                .with_context(|| format!("reading TLS_CLIENT_CA {}", ca.display()))?;
            tls = tls.client_ca_root(Certificate::from_pem(ca));
        }
        Ok(Some(tls))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line (production).
    Json,
    /// Human-readable lines (local debugging).
    Text,
}

/// A `clap` value parser for secrets: on a bad value it names the flag and its environment
/// variable and says what is wrong, but unlike clap's own parsers never repeats the value.
#[derive(Clone, Copy)]
pub struct SecretValueParser<T>(fn(&str) -> Result<T, String>);

/// Wraps `parse` so that its errors never show the rejected value.
pub fn secret<T>(parse: fn(&str) -> Result<T, String>) -> SecretValueParser<T> {
    SecretValueParser(parse)
}

impl<T: Clone + Send + Sync + 'static> clap::builder::TypedValueParser for SecretValueParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let flag = arg
            .and_then(|a| a.get_long())
            .map(|long| format!("--{long}"))
            .unwrap_or_else(|| "value".to_owned());
        let env = arg
            .and_then(|a| a.get_env())
            .map(|e| format!(" ({})", e.to_string_lossy()))
            .unwrap_or_default();
        let fail = |reason: &str| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid {flag}{env}: {reason} (the value is not shown)\n"),
            )
            .with_cmd(cmd)
        };
        let value = value.to_str().ok_or_else(|| fail("is not UTF-8"))?;
        (self.0)(value).map_err(|reason| fail(&reason))
    }
}

/// A key list `id:base64key[,id:base64key...]`, the first key active (use with [`secret`]).
pub fn parse_keyring(raw: &str) -> Result<crate::crypto::Keyring, String> {
    crate::crypto::Keyring::parse(raw).map_err(|e| e.to_string())
}

/// A 32-byte secret given as standard base64 (use with [`secret`]).
pub fn parse_key32(raw: &str) -> Result<Key32, String> {
    let bytes = STANDARD
        .decode(raw.trim())
        .map_err(|_| "must be 32 bytes in standard base64".to_owned())?;
    let key: [u8; 32] = bytes
        .try_into()
        .map_err(|_| "must be 32 bytes in standard base64".to_owned())?;
    Ok(Key32(key))
}

/// A 32-byte secret; `Debug` never shows it.
#[derive(Clone)]
pub struct Key32(pub [u8; 32]);

impl std::fmt::Debug for Key32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key32([REDACTED])")
    }
}

/// A fresh random 32-byte key in standard base64 (what the stack script puts in the env).
pub fn generate_key32() -> String {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the OS has randomness");
    STANDARD.encode(key)
}

/// Exposes a secret URL for connecting; the only place configuration secrets are read.
pub fn expose(secret: &SecretString) -> &str {
    secret.expose_secret()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(parse_key32(&generate_key32()).is_ok());
        assert!(parse_key32("c2hvcnQ=").is_err());
        assert!(parse_key32("not base64!").is_err());
        assert_eq!(
            format!("{:?}", parse_key32(&generate_key32()).ok()),
            "Some(Key32([REDACTED]))"
        );
    }
}

/// The keys that protect a service's personal data, shared by `serve` and `rotate-keys`.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyConfig {
    /// Keys that seal personal data (tax ids, e-mail addresses, phone and licence numbers,
    /// recipients' names and signatures): `id:base64key[,id:base64key...]`, the first one
    /// sealing new values. To rotate, put a new key first, deploy, run the service's
    /// `rotate-keys`, then drop the old key.
    #[arg(long, env = "FIELD_ENCRYPTION_KEYS", hide_env_values = true, value_parser = secret(parse_keyring))]
    pub field_encryption_keys: crate::crypto::Keyring,
    /// 32-byte key (base64) of the blind indexes (keyed HMAC) for equality lookups and of the
    /// keyed fingerprints of idempotent requests.
    #[arg(long, env = "BLIND_INDEX_KEY", hide_env_values = true, value_parser = secret(parse_key32))]
    pub blind_index_key: Key32,
    /// 32-byte key (base64) that signs page tokens; shared by every replica.
    #[arg(long, env = "PAGE_TOKEN_KEY", hide_env_values = true, value_parser = secret(parse_key32))]
    pub page_token_key: Key32,
}

/// The sealing keyring of [`KeyConfig::for_tests`], as `FIELD_ENCRYPTION_KEYS` would give it
/// (for tests that start a service binary).
pub const TEST_FIELD_ENCRYPTION_KEYS: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";

impl KeyConfig {
    /// Fixed keys for tests: one sealing key `k1`, and constant blind-index and page-token keys.
    pub fn for_tests() -> Self {
        Self {
            field_encryption_keys: crate::crypto::Keyring::parse(TEST_FIELD_ENCRYPTION_KEYS)
                .expect("a valid test keyring"),
            blind_index_key: Key32([7; 32]),
            page_token_key: Key32([9; 32]),
        }
    }
}
