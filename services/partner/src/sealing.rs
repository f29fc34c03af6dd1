//! Partner's sealed columns: tax ids, contact e-mail addresses and phone numbers, sealed with
//! the platform [`Sealer`] (bound to tenant, column and row). Tax ids also get a blind index
//! (keyed HMAC of the normalised value, per country) so equality lookups never decrypt a table.

use logistics_platform::sealing::SealedColumn;
pub use logistics_platform::sealing::Sealer;

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

impl SealedColumn for Column {
    fn name(self) -> &'static str {
        match self {
            Column::PartnerTaxId => "partner.partners.tax_id",
            Column::ContactEmail => "partner.contacts.email",
            Column::ContactPhone => "partner.contacts.phone",
        }
    }
}

/// The blind index of a normalised tax id in `country`.
pub fn tax_id_index(sealer: &Sealer, country: &str, normalised_tax_id: &str) -> Vec<u8> {
    sealer.blind_index(
        "partner.partners.tax_id",
        &format!("{country}:{normalised_tax_id}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use logistics_platform::crypto::Keyring;

    #[test]
    fn tax_id_indexes_differ_per_country() {
        let sealer = Sealer::new(Keyring::generate("k1"), [1; 32]);
        assert_eq!(
            tax_id_index(&sealer, "DE", "123"),
            tax_id_index(&sealer, "DE", "123")
        );
        assert_ne!(
            tax_id_index(&sealer, "DE", "123"),
            tax_id_index(&sealer, "AT", "123")
        );
    }
}
