//! Personal data at rest, for every service: values are sealed with the configured keyring
//! before they reach a store, bound to their tenant, column and row, and opened only on the way
//! out; a keyed-HMAC blind index gives equality lookups without decrypting a table. Stored
//! Create responses that carry personal data (idempotency replays) are sealed the same way.
//!
//! A service names its sealed columns with an enum implementing [`SealedColumn`].

use uuid::Uuid;

use crate::Error;
use crate::crypto::{BlindIndex, Keyring};

/// A sealed column; its name (`partner.contacts.email`) is part of the associated data, so a
/// ciphertext copied to another column does not open.
pub trait SealedColumn: Copy {
    /// Schema-qualified table and column.
    fn name(self) -> &'static str;
}

/// Seals and opens personal data, and computes blind indexes.
#[derive(Clone, Debug)]
pub struct Sealer {
    keyring: Keyring,
    index: BlindIndex,
}

impl Sealer {
    /// A sealer over `keyring` and the blind-index key.
    pub fn new(keyring: Keyring, blind_index_key: [u8; 32]) -> Self {
        Self {
            keyring,
            index: BlindIndex::new(blind_index_key),
        }
    }

    /// The keyring (rotation re-seals with its active key).
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals `plaintext` of `column` in row `row_id` of `tenant_id`.
    pub fn seal(
        &self,
        column: impl SealedColumn,
        tenant_id: Uuid,
        row_id: Uuid,
        plaintext: &str,
    ) -> Vec<u8> {
        self.keyring
            .seal(plaintext.as_bytes(), &aad(column.name(), tenant_id, row_id))
    }

    /// Opens a ciphertext sealed by [`Sealer::seal`] for the same column and row. A ciphertext
    /// that does not open is an internal error: it was tampered with or its key is missing.
    pub fn open(
        &self,
        column: impl SealedColumn,
        tenant_id: Uuid,
        row_id: Uuid,
        ciphertext: &[u8],
    ) -> Result<String, Error> {
        let name = column.name();
        let plain = self
            .keyring
            .open(ciphertext, &aad(name, tenant_id, row_id))
            .map_err(|e| anyhow::anyhow!("opening {name} of row {row_id}: {e}"))?;
        String::from_utf8(plain)
            .map_err(|_| anyhow::anyhow!("{name} of row {row_id} is not UTF-8").into())
    }

    /// Seals binary `plaintext` (an image, a file) of `column` in row `row_id` of `tenant_id`.
    pub fn seal_bytes(
        &self,
        column: impl SealedColumn,
        tenant_id: Uuid,
        row_id: Uuid,
        plaintext: &[u8],
    ) -> Vec<u8> {
        self.keyring
            .seal(plaintext, &aad(column.name(), tenant_id, row_id))
    }

    /// Opens a ciphertext sealed by [`Sealer::seal_bytes`] for the same column and row.
    pub fn open_bytes(
        &self,
        column: impl SealedColumn,
        tenant_id: Uuid,
        row_id: Uuid,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, Error> {
        let name = column.name();
        Ok(self
            .keyring
            .open(ciphertext, &aad(name, tenant_id, row_id))
            .map_err(|e| anyhow::anyhow!("opening {name} of row {row_id}: {e}"))?)
    }

    /// Opens an optional ciphertext; `None` stays empty.
    pub fn open_optional(
        &self,
        column: impl SealedColumn,
        tenant_id: Uuid,
        row_id: Uuid,
        ciphertext: Option<&[u8]>,
    ) -> Result<String, Error> {
        ciphertext
            .map(|c| self.open(column, tenant_id, row_id, c))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Re-seals a ciphertext with the active key, if another key sealed it. `None` if it is
    /// already current.
    pub fn reseal(
        &self,
        column: impl SealedColumn,
        tenant_id: Uuid,
        row_id: Uuid,
        ciphertext: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        let current = Keyring::key_id_of(ciphertext).map_err(|e| anyhow::anyhow!("{e}"))?;
        if current == self.keyring.active_key_id() {
            return Ok(None);
        }
        let plain = self.open(column, tenant_id, row_id, ciphertext)?;
        Ok(Some(self.seal(column, tenant_id, row_id, &plain)))
    }

    /// The blind index of an already normalised `value` in `domain` (a column name, plus
    /// whatever scopes the value, such as a country).
    pub fn blind_index(&self, domain: &str, value: &str) -> Vec<u8> {
        self.index.compute(domain, value)
    }

    /// The fingerprint of an encoded Create request for its idempotency record: keyed, so that
    /// a request holding personal data can be compared in full without storing a guessable
    /// hash of it.
    pub fn request_fingerprint(&self, method: &str, encoded_request: &[u8]) -> Vec<u8> {
        self.index.compute_bytes(
            &format!("idempotency_keys.request_hash|{method}"),
            encoded_request,
        )
    }

    /// Seals the encoded response of a Create call for its idempotency record, bound to the
    /// tenant, the method and the request id.
    pub fn seal_response(
        &self,
        tenant_id: Uuid,
        method: &str,
        request_id: Uuid,
        encoded: &[u8],
    ) -> Vec<u8> {
        self.keyring
            .seal(encoded, &response_aad(tenant_id, method, request_id))
    }

    /// Opens a response sealed by [`Sealer::seal_response`].
    pub fn open_response(
        &self,
        tenant_id: Uuid,
        method: &str,
        request_id: Uuid,
        sealed: &[u8],
    ) -> Result<Vec<u8>, Error> {
        self.keyring
            .open(sealed, &response_aad(tenant_id, method, request_id))
            .map_err(|e| anyhow::anyhow!("opening the stored {method} response: {e}").into())
    }

    /// Re-seals a stored response with the active key, if another key sealed it. `None` if it
    /// is already current.
    pub fn reseal_response(
        &self,
        tenant_id: Uuid,
        method: &str,
        request_id: Uuid,
        sealed: &[u8],
    ) -> Result<Option<Vec<u8>>, Error> {
        let current = Keyring::key_id_of(sealed).map_err(|e| anyhow::anyhow!("{e}"))?;
        if current == self.keyring.active_key_id() {
            return Ok(None);
        }
        let encoded = self.open_response(tenant_id, method, request_id, sealed)?;
        Ok(Some(
            self.seal_response(tenant_id, method, request_id, &encoded),
        ))
    }
}

/// Runs `batch` (each call one transaction of at most `size` rows, returning how many it
/// handled) until a call handles fewer than `size`; returns the total. What key rotations of
/// every service share.
pub async fn in_batches<F, Fut>(size: i64, mut batch: F) -> Result<u64, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<usize, Error>>,
{
    let mut total = 0;
    loop {
        let handled = batch().await?;
        total += handled as u64;
        if (handled as i64) < size {
            return Ok(total);
        }
    }
}

fn aad(column: &str, tenant_id: Uuid, row_id: Uuid) -> Vec<u8> {
    format!("{tenant_id}|{column}|{row_id}").into_bytes()
}

fn response_aad(tenant_id: Uuid, method: &str, request_id: Uuid) -> Vec<u8> {
    format!("{tenant_id}|idempotency_keys.response|{method}|{request_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Copy)]
    enum Column {
        Email,
        Phone,
    }

    impl SealedColumn for Column {
        fn name(self) -> &'static str {
            match self {
                Column::Email => "test.contacts.email",
                Column::Phone => "test.contacts.phone",
            }
        }
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_own_tenant_row_and_column() {
        let sealer = Sealer::new(Keyring::generate("k1"), [1; 32]);
        let (tenant, row) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = sealer.seal(Column::Email, tenant, row, "ada@example.com");
        assert_eq!(
            sealer
                .open(Column::Email, tenant, row, &sealed)
                .ok()
                .as_deref(),
            Some("ada@example.com")
        );
        assert!(sealer.open(Column::Phone, tenant, row, &sealed).is_err());
        assert!(
            sealer
                .open(Column::Email, tenant, Uuid::now_v7(), &sealed)
                .is_err()
        );
        assert!(
            sealer
                .open(Column::Email, Uuid::now_v7(), row, &sealed)
                .is_err()
        );
    }

    #[test]
    fn a_sealed_response_opens_only_for_its_tenant_method_and_request() {
        let sealer = Sealer::new(Keyring::generate("k1"), [1; 32]);
        let (tenant, request) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = sealer.seal_response(tenant, "CreateContact", request, b"response");
        assert_eq!(
            sealer
                .open_response(tenant, "CreateContact", request, &sealed)
                .ok()
                .as_deref(),
            Some(&b"response"[..])
        );
        assert!(
            sealer
                .open_response(tenant, "CreateAddress", request, &sealed)
                .is_err()
        );
        assert!(
            sealer
                .open_response(tenant, "CreateContact", Uuid::now_v7(), &sealed)
                .is_err()
        );
        assert!(
            sealer
                .open_response(Uuid::now_v7(), "CreateContact", request, &sealed)
                .is_err()
        );
    }
}
