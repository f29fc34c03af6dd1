//! Warehouses: places that hold stock.

use logistics_platform::fields::{CountryCode, LatLng, Text};
use logistics_platform::{FieldViolation, stored_names};

stored_names!(
    /// Whether a warehouse takes stock.
    WarehouseStatus {
        /// Receives and ships.
        Active => "active",
        /// No receipts.
        Closed => "closed",
    }
);

/// A warehouse code: 1 to 16 of `A-Z 0-9 -`, starting with a letter or digit, upper-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WarehouseCode(String);

impl WarehouseCode {
    /// Parses `raw` for `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let value = raw.trim().to_ascii_uppercase();
        let valid = (1..=16).contains(&value.len())
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if valid {
            Ok(Self(value))
        } else {
            Err(FieldViolation::new(
                field,
                "must be 1 to 16 letters, digits or dashes",
            ))
        }
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every field of a warehouse, validated.
#[derive(Debug, Clone)]
pub struct WarehouseFields {
    /// Code.
    pub code: WarehouseCode,
    /// Name.
    pub name: Text,
    /// Street and number.
    pub address_line: Text,
    /// City.
    pub city: Text,
    /// Postal code.
    pub postal_code: Text,
    /// Country.
    pub country: CountryCode,
    /// Position.
    pub location: Option<LatLng>,
    /// Status.
    pub status: WarehouseStatus,
}
