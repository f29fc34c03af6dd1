//! Fleet's sealed columns: driver licence numbers and phones, sealed with the platform
//! [`Sealer`]; licence numbers also get a blind index so that uniqueness per tenant holds
//! without decrypting anything.

use logistics_platform::sealing::SealedColumn;
pub use logistics_platform::sealing::Sealer;

/// A sealed column: what the associated data names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `fleet.drivers.licence_number_ciphertext`.
    DriverLicenceNumber,
    /// `fleet.drivers.phone_ciphertext`.
    DriverPhone,
}

impl SealedColumn for Column {
    fn name(self) -> &'static str {
        match self {
            Column::DriverLicenceNumber => "fleet.drivers.licence_number",
            Column::DriverPhone => "fleet.drivers.phone",
        }
    }
}

/// The blind index of a normalised licence number.
pub fn licence_index(sealer: &Sealer, normalised_licence_number: &str) -> Vec<u8> {
    sealer.blind_index("fleet.drivers.licence_number", normalised_licence_number)
}
