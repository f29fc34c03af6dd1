//! The token signer: keeps the active Ed25519 signing key (sealed at rest with the configured
//! key-encryption keyring), signs access tokens with it, rotates it, and serves the public keys
//! to the service's own verifier and to `ListPublicKeys`.
//!
//! Another replica's rotation is picked up within `RELOAD_AFTER`: tokens it signs with the old
//! key stay valid, because retired keys remain published until their last token has expired.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use jsonwebtoken::{EncodingKey, Header};
use logistics_platform::Error;
use logistics_platform::auth::{ALGORITHM, Claims, KeySource, VerifyingKey};
use logistics_platform::context::{DbContext, Tx};
use logistics_platform::crypto::Keyring;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::RwLock;

use crate::store::signing_keys::{self, KeyRow, NewKey};

/// How long a replica trusts its cached active key before re-reading it.
const RELOAD_AFTER: Duration = Duration::from_secs(60);

/// PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410): the 32-byte seed follows.
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

struct ActiveKey {
    kid: String,
    encoding: EncodingKey,
    loaded_at: Instant,
}

/// Signs access tokens with the active key.
pub struct Signer {
    pool: PgPool,
    keyring: Keyring,
    /// How long retired keys stay published: the access-token lifetime plus clock skew.
    publish_retired_for: time::Duration,
    active: RwLock<Option<ActiveKey>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer over `pool`, sealing private keys with `keyring`.
    pub fn new(pool: PgPool, keyring: Keyring, access_token_ttl: time::Duration) -> Self {
        Self {
            pool,
            keyring,
            publish_retired_for: access_token_ttl + time::Duration::minutes(1),
            active: RwLock::new(None),
        }
    }

    /// Makes sure an active key exists (creating the first one) and loads it.
    pub async fn ensure_key(&self) -> Result<(), Error> {
        let mut tx = DbContext::system(None).begin(&self.pool).await?;
        let row = match signing_keys::active(&mut tx).await? {
            Some(row) => row,
            None => {
                let new = self.new_key();
                match signing_keys::insert(&mut tx, &new).await {
                    Ok(row) => row,
                    // Another replica created the first key at the same moment: use it.
                    Err(_) => {
                        drop(tx);
                        tx = DbContext::system(None).begin(&self.pool).await?;
                        signing_keys::active(&mut tx)
                            .await?
                            .ok_or_else(|| anyhow::anyhow!("no active signing key after a race"))?
                    }
                }
            }
        };
        tx.commit().await?;
        self.install(&row).await
    }

    /// Retires the active key and makes a new one active, in the caller's transaction.
    /// The caller commits, then calls [`Signer::install`] with the returned row.
    pub async fn rotate(&self, tx: &mut Tx) -> Result<KeyRow, Error> {
        let new = self.new_key();
        signing_keys::rotate(tx, &new).await
    }

    /// Uses `row` as the active key from now on.
    pub async fn install(&self, row: &KeyRow) -> Result<(), Error> {
        let encoding = self.encoding_key(row)?;
        *self.active.write().await = Some(ActiveKey {
            kid: row.kid.clone(),
            encoding,
            loaded_at: Instant::now(),
        });
        Ok(())
    }

    /// Signs `claims` with the active key.
    pub async fn sign(&self, claims: &Claims) -> Result<String, Error> {
        let stale = self
            .active
            .read()
            .await
            .as_ref()
            .is_none_or(|k| k.loaded_at.elapsed() > RELOAD_AFTER);
        if stale {
            self.ensure_key().await?;
        }
        let guard = self.active.read().await;
        let key = guard
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("no signing key loaded"))?;
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| Error::Internal(anyhow::anyhow!("signing a token: {e}")))
    }

    /// Every key whose tokens may still be valid, the active key first.
    pub async fn public_keys(&self, tx: &mut Tx) -> Result<Vec<KeyRow>, Error> {
        signing_keys::verifiable(tx, OffsetDateTime::now_utc() - self.publish_retired_for).await
    }

    fn new_key(&self) -> NewKey {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).expect("the OS has randomness");
        let public_key = ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes();
        let mut kid_bytes = [0u8; 12];
        getrandom::fill(&mut kid_bytes).expect("the OS has randomness");
        let kid = URL_SAFE_NO_PAD.encode(kid_bytes);
        let private_key_ciphertext = self.keyring.seal(&seed, &aad(&kid));
        seed.fill(0);
        NewKey {
            kid,
            public_key,
            private_key_ciphertext,
        }
    }

    fn encoding_key(&self, row: &KeyRow) -> Result<EncodingKey, Error> {
        let mut seed = self
            .keyring
            .open(&row.private_key_ciphertext, &aad(&row.kid))
            .map_err(|e| {
                Error::Internal(anyhow::anyhow!("opening signing key {}: {e}", row.kid))
            })?;
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&PKCS8_ED25519_PREFIX);
        der.extend_from_slice(&seed);
        seed.fill(0);
        let key = EncodingKey::from_ed_der(&der);
        der.fill(0);
        Ok(key)
    }
}

/// Associated data binding a sealed seed to its key id.
fn aad(kid: &str) -> Vec<u8> {
    format!("identity.signing_keys.private_key_ciphertext|{kid}").into_bytes()
}

/// The public half of a stored key.
pub fn verifying_key(row: &KeyRow) -> Result<VerifyingKey, Error> {
    let public_key: [u8; 32] = row
        .public_key
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("stored public key is not 32 bytes"))?;
    Ok(VerifyingKey {
        kid: row.kid.clone(),
        public_key,
    })
}

/// Identity's own verifier reads the keys straight from its database.
pub struct DbKeySource {
    /// The signer whose keys to publish.
    pub signer: Arc<Signer>,
}

impl KeySource for DbKeySource {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Vec<VerifyingKey>>> {
        Box::pin(async move {
            let mut tx = DbContext::default().begin(&self.signer.pool).await?;
            let rows = self.signer.public_keys(&mut tx).await?;
            tx.commit().await?;
            Ok(rows.iter().map(verifying_key).collect::<Result<_, _>>()?)
        })
    }
}
