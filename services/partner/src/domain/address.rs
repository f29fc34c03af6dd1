//! Addresses: where to bill, deliver to or collect from.

use logistics_platform::FieldViolation;
use logistics_platform::fields::{CountryCode, LatLng, Text};

/// What an address is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressKind {
    /// Invoices.
    Billing,
    /// Deliveries.
    Shipping,
    /// Collections.
    Pickup,
}

impl AddressKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            AddressKind::Billing => "billing",
            AddressKind::Shipping => "shipping",
            AddressKind::Pickup => "pickup",
        }
    }

    /// The kind with this stored name.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "billing" => Some(AddressKind::Billing),
            "shipping" => Some(AddressKind::Shipping),
            "pickup" => Some(AddressKind::Pickup),
            _ => None,
        }
    }
}

/// An address's fields, validated.
#[derive(Debug, Clone)]
pub struct AddressFields {
    /// Kind.
    pub kind: AddressKind,
    /// Street and number.
    pub line1: Text,
    /// Extra line.
    pub line2: Text,
    /// City.
    pub city: Text,
    /// Region.
    pub region: Text,
    /// Postal code.
    pub postal_code: Text,
    /// Country.
    pub country: CountryCode,
    /// Position, if known.
    pub location: Option<LatLng>,
    /// Default of its kind for the partner.
    pub default: bool,
}

/// Parses an address line, city, region or postal code for `field` with its bounds.
pub fn line1(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 1, 200)
}

/// Optional second line.
pub fn line2(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 0, 200)
}

/// City.
pub fn city(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 1, 100)
}

/// Region.
pub fn region(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 0, 100)
}

/// Postal code.
pub fn postal_code(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 0, 20)
}
