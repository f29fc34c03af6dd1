//! Exact positive quantities with a unit: payload in kilograms, volume in cubic metres. Parsed
//! from decimal text, never through a binary float.

use logistics_platform::FieldViolation;
use logistics_platform::decimal::{DecimalRule, Sign};
use rust_decimal::Decimal;

/// A positive decimal with at most three fraction digits and below `10^integer_digits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(Decimal);

impl Quantity {
    /// Parses `raw` (`"12.5"`) for `field`: greater than zero, at most 3 digits after the point
    /// and `integer_digits` before it.
    pub fn parse(field: &str, raw: &str, integer_digits: u32) -> Result<Self, FieldViolation> {
        DecimalRule {
            scale: 3,
            integer_digits,
            sign: Sign::Positive,
        }
        .parse(field, raw)
        .map(Self)
    }

    /// A quantity read back from the database (already checked there).
    pub fn from_stored(value: Decimal) -> Self {
        Self(value.normalize())
    }

    /// The value.
    pub fn value(self) -> Decimal {
        self.0
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn quantities_keep_their_exact_value_without_trailing_zeros() {
        assert_eq!(
            Quantity::parse("q", "12.500", 9).unwrap().to_string(),
            "12.5"
        );
        assert_eq!(
            Quantity::parse("q", " 0.001 ", 9).unwrap().to_string(),
            "0.001"
        );
        assert_eq!(
            Quantity::parse("q", "24000", 9).unwrap().to_string(),
            "24000"
        );
    }

    #[test]
    fn zero_negative_malformed_too_precise_and_too_large_are_refused() {
        for raw in [
            "", "0", "0.000", "-1", "1e3", "1.", ".5", "1,5", "NaN", "1.2345",
        ] {
            let err = Quantity::parse("truck.payload_capacity_kg", raw, 9).unwrap_err();
            assert_eq!(err.field, "truck.payload_capacity_kg", "{raw}");
        }
        assert!(Quantity::parse("q", "999999999.999", 9).is_ok());
        assert!(Quantity::parse("q", "1000000000", 9).is_err());
    }
}
