//! Materials: what the tenant stores and ships.

use logistics_platform::decimal::{DecimalRule, Sign};
use logistics_platform::fields::Text;
use logistics_platform::{FieldViolation, stored_names};
use rust_decimal::Decimal;

stored_names!(
    /// The unit stock is counted in.
    Unit {
        /// Items.
        Piece => "piece",
        /// Kilograms.
        Kilogram => "kilogram",
        /// Tonnes.
        Tonne => "tonne",
        /// Litres.
        Litre => "litre",
        /// Cubic metres.
        CubicMetre => "cubic_metre",
        /// Metres.
        Metre => "metre",
        /// Square metres.
        SquareMetre => "square_metre",
        /// Pallets.
        Pallet => "pallet",
    }
);

stored_names!(
    /// Whether a material is still traded.
    MaterialStatus {
        /// Traded.
        Active => "active",
        /// No longer bought.
        Discontinued => "discontinued",
    }
);

/// UN dangerous-goods classes and divisions.
pub const HAZARD_CLASSES: &[&str] = &[
    "1.1", "1.2", "1.3", "1.4", "1.5", "1.6", "2.1", "2.2", "2.3", "3", "4.1", "4.2", "4.3", "5.1",
    "5.2", "6.1", "6.2", "7", "8", "9",
];

/// A stock-keeping unit: 1 to 64 of `A-Z 0-9 . _ / -`, starting with a letter or digit,
/// upper-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sku(String);

impl Sku {
    /// Parses `raw` for `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let value = raw.trim().to_ascii_uppercase();
        let valid = (1..=64).contains(&value.len())
            && value
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_alphanumeric())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'/' | b'-'));
        if valid {
            Ok(Self(value))
        } else {
            Err(FieldViolation::new(
                field,
                "must be 1 to 64 letters, digits, dots, underscores, slashes or dashes",
            ))
        }
    }

    /// The SKU.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Parses a hazard class for `field`: empty for none, else a UN class or division.
pub fn hazard_class(field: &str, raw: &str) -> Result<Option<&'static str>, FieldViolation> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    HAZARD_CLASSES
        .iter()
        .find(|c| **c == raw)
        .map(|c| Some(*c))
        .ok_or_else(|| {
            FieldViolation::new(
                field,
                "must be a UN dangerous-goods class or division such as 3 or 2.1, or empty",
            )
        })
}

/// Stock quantities: greater than 0, 3 decimals (`numeric(18,3)`).
pub const QUANTITY: DecimalRule = DecimalRule {
    scale: 3,
    integer_digits: 15,
    sign: Sign::Positive,
};

/// Reorder points: 0 or more, 3 decimals.
pub const REORDER_POINT: DecimalRule = DecimalRule {
    sign: Sign::NonNegative,
    ..QUANTITY
};

/// Unit weights in kilograms: 0 or more, 4 decimals (`numeric(14,4)`).
pub const UNIT_WEIGHT: DecimalRule = DecimalRule {
    scale: 4,
    integer_digits: 10,
    sign: Sign::NonNegative,
};

/// Unit volumes in cubic metres: 0 or more, 6 decimals (`numeric(14,6)`).
pub const UNIT_VOLUME: DecimalRule = DecimalRule {
    scale: 6,
    integer_digits: 8,
    sign: Sign::NonNegative,
};

/// Every field of a material, validated.
#[derive(Debug, Clone)]
pub struct MaterialFields {
    /// SKU.
    pub sku: Sku,
    /// Name.
    pub name: Text,
    /// Description.
    pub description: Text,
    /// Unit.
    pub unit: Unit,
    /// Weight of one unit, kg.
    pub unit_weight_kg: Decimal,
    /// Volume of one unit, m³.
    pub unit_volume_m3: Decimal,
    /// UN class, if hazardous.
    pub hazard_class: Option<&'static str>,
    /// Reorder point.
    pub reorder_point: Decimal,
    /// Status.
    pub status: MaterialStatus,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn skus_are_upper_cased_and_limited_to_their_characters() {
        assert_eq!(
            Sku::parse("s", " steel-rod/12.5 ").unwrap().as_str(),
            "STEEL-ROD/12.5"
        );
        assert!(Sku::parse("s", "-LEADING").is_err());
        assert!(Sku::parse("s", "HAS SPACE").is_err());
        assert!(Sku::parse("s", &"A".repeat(65)).is_err());
    }

    #[test]
    fn hazard_classes_are_un_classes_or_empty() {
        assert_eq!(hazard_class("h", "").unwrap(), None);
        assert_eq!(hazard_class("h", "2.1").unwrap(), Some("2.1"));
        assert!(hazard_class("h", "10").is_err());
    }
}
