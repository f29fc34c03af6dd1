//! Personal data at rest: tax ids, e-mail addresses and phone numbers are sealed with the
//! configured keyring before they reach the store, bound to their tenant, table, column and row,
//! and opened only on the way out. Tax ids also get a blind index (keyed HMAC of the normalised
//! value, per country) so equality lookups never decrypt a table.

use logistics_platform::Error;
use logistics_platform::crypto::{BlindIndex, Keyring};
use uuid::Uuid;

/// A sealed column: what the associated data names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `partner.partners.tax_id_ciphertext`.
    PartnerTaxId,
    /// `partner.contacts.email_ciphertext`.
    ContactEmail,
    /// `partner.contacts.phone_ciphertext`.
    ContactPhone,
}

impl Column {
    fn name(self) -> &'static str {
        match self {
            Column::PartnerTaxId => "partner.partners.tax_id",
            Column::ContactEmail => "partner.contacts.email",
            Column::ContactPhone => "partner.contacts.phone",
        }
    }
}

/// Seals and opens personal data.
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
    pub fn seal(&self, column: Column, tenant_id: Uuid, row_id: Uuid, plaintext: &str) -> Vec<u8> {
        self.keyring
            .seal(plaintext.as_bytes(), &aad(column, tenant_id, row_id))
    }

    /// Opens a ciphertext sealed by [`Sealer::seal`] for the same column and row. A ciphertext
    /// that does not open is an internal error: it was tampered with or its key is missing.
    pub fn open(
        &self,
        column: Column,
        tenant_id: Uuid,
        row_id: Uuid,
        ciphertext: &[u8],
    ) -> Result<String, Error> {
        let plain = self
            .keyring
            .open(ciphertext, &aad(column, tenant_id, row_id))
            .map_err(|e| anyhow::anyhow!("opening {} of row {row_id}: {e}", column.name()))?;
        String::from_utf8(plain)
            .map_err(|_| anyhow::anyhow!("{} of row {row_id} is not UTF-8", column.name()).into())
    }

    /// Opens an optional ciphertext; `None` stays empty.
    pub fn open_optional(
        &self,
        column: Column,
        tenant_id: Uuid,
        row_id: Uuid,
        ciphertext: Option<&[u8]>,
    ) -> Result<String, Error> {
        ciphertext
            .map(|c| self.open(column, tenant_id, row_id, c))
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The blind index of a normalised tax id in `country`.
    pub fn tax_id_index(&self, country: &str, normalised_tax_id: &str) -> Vec<u8> {
        self.index.compute(
            "partner.partners.tax_id",
            &format!("{country}:{normalised_tax_id}"),
        )
    }

    /// Re-seals a ciphertext with the active key, if another key sealed it. `None` if it is
    /// already current.
    pub fn reseal(
        &self,
        column: Column,
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
}

fn aad(column: Column, tenant_id: Uuid, row_id: Uuid) -> Vec<u8> {
    format!("{tenant_id}|{}|{row_id}", column.name()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_in_its_own_row_and_column() {
        let sealer = Sealer::new(Keyring::generate("k1"), [1; 32]);
        let (tenant, row) = (Uuid::now_v7(), Uuid::now_v7());
        let sealed = sealer.seal(Column::ContactEmail, tenant, row, "ada@example.com");
        assert_eq!(
            sealer
                .open(Column::ContactEmail, tenant, row, &sealed)
                .ok()
                .as_deref(),
            Some("ada@example.com")
        );
        assert!(
            sealer
                .open(Column::ContactPhone, tenant, row, &sealed)
                .is_err()
        );
        assert!(
            sealer
                .open(Column::ContactEmail, tenant, Uuid::now_v7(), &sealed)
                .is_err()
        );
        assert!(
            sealer
                .open(Column::ContactEmail, Uuid::now_v7(), row, &sealed)
                .is_err()
        );
    }

    #[test]
    fn tax_id_indexes_differ_per_country() {
        let sealer = Sealer::new(Keyring::generate("k1"), [1; 32]);
        assert_eq!(
            sealer.tax_id_index("DE", "123"),
            sealer.tax_id_index("DE", "123")
        );
        assert_ne!(
            sealer.tax_id_index("DE", "123"),
            sealer.tax_id_index("AT", "123")
        );
    }
}
