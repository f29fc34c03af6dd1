//! Exact positive quantities with a unit: payload in kilograms, volume in cubic metres. Parsed
//! from decimal text, never through a binary float.

use std::str::FromStr;

use logistics_platform::FieldViolation;
use rust_decimal::Decimal;

/// A positive decimal with at most three fraction digits and below `10^integer_digits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quantity(Decimal);

impl Quantity {
    /// Parses `raw` (`"12.5"`) for `field`: digits with an optional `.` fraction of at most 3
    /// digits, greater than zero and with at most `integer_digits` digits before the point.
    pub fn parse(field: &str, raw: &str, integer_digits: u32) -> Result<Self, FieldViolation> {
        let bad = |why: String| FieldViolation::new(field, why);
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(bad("is required".to_owned()));
        }
        let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty()
            || !digits(whole)
            || !digits(fraction)
            || (raw.contains('.') && fraction.is_empty())
        {
            return Err(bad("must be a decimal number like 12.5".to_owned()));
        }
        if fraction.len() > 3 {
            return Err(bad("must have at most 3 digits after the point".to_owned()));
        }
        let value = Decimal::from_str(raw).map_err(|_| bad("is too large".to_owned()))?;
        if value <= Decimal::ZERO {
            return Err(bad("must be greater than 0".to_owned()));
        }
        if value >= Decimal::from(10_i64.pow(integer_digits)) {
            return Err(bad(format!("must be less than 10^{integer_digits}")));
        }
        Ok(Self(value.normalize()))
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
