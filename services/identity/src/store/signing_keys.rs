//! Token signing keys: the public half readable by anyone, the private half sealed.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use time::OffsetDateTime;
use uuid::Uuid;

/// A signing key as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct KeyRow {
    /// Row id.
    pub id: Uuid,
    /// Key id named in token headers.
    pub kid: String,
    /// Raw Ed25519 public key.
    pub public_key: Vec<u8>,
    /// The sealed seed.
    pub private_key_ciphertext: Vec<u8>,
    /// Created.
    pub created_at: OffsetDateTime,
    /// Retired (no longer signs), if so.
    pub retired_at: Option<OffsetDateTime>,
}

const COLUMNS: &str = "id, kid, public_key, private_key_ciphertext, created_at, retired_at";

/// The key that signs new tokens.
pub async fn active(tx: &mut Tx) -> Result<Option<KeyRow>, Error> {
    let sql = format!("SELECT {COLUMNS} FROM identity.signing_keys WHERE retired_at IS NULL");
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_optional(&mut **tx)
        .await?)
}

/// Keys that may still have valid tokens: the active one and those retired after `since`,
/// newest first.
pub async fn verifiable(tx: &mut Tx, since: OffsetDateTime) -> Result<Vec<KeyRow>, Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM identity.signing_keys \
         WHERE retired_at IS NULL OR retired_at > $1 ORDER BY retired_at DESC NULLS FIRST, created_at DESC"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(since)
        .fetch_all(&mut **tx)
        .await?)
}

/// Retires the active key and inserts `new` as the active one, in the caller's transaction.
pub async fn rotate(tx: &mut Tx, new: &NewKey) -> Result<KeyRow, Error> {
    sqlx::query("UPDATE identity.signing_keys SET retired_at = now() WHERE retired_at IS NULL")
        .execute(&mut **tx)
        .await?;
    insert(tx, new).await
}

/// A key to store.
#[derive(Debug)]
pub struct NewKey {
    /// Key id.
    pub kid: String,
    /// Raw public key.
    pub public_key: [u8; 32],
    /// Sealed seed.
    pub private_key_ciphertext: Vec<u8>,
}

/// Inserts `new` as the active key; fails on the one-active-key index if another is active.
pub async fn insert(tx: &mut Tx, new: &NewKey) -> Result<KeyRow, Error> {
    let sql = format!(
        "INSERT INTO identity.signing_keys (id, kid, algorithm, public_key, private_key_ciphertext) \
         VALUES ($1, $2, 'EdDSA', $3, $4) RETURNING {COLUMNS}"
    );
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(&new.kid)
        .bind(&new.public_key[..])
        .bind(&new.private_key_ciphertext)
        .fetch_one(&mut **tx)
        .await?)
}
