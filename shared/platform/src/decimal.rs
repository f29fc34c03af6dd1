//! Exact decimals from request text: quantities, capacities, weights. Parsed by rules every
//! service states once (how many fraction and integer digits, which sign), never through a
//! binary float, and returned without trailing zeros.

use std::str::FromStr;

use rust_decimal::Decimal;

use crate::error::FieldViolation;

/// The wire form of `value`, without trailing zeros.
pub fn to_proto(value: Decimal) -> logistics_proto::r#type::v1::Decimal {
    logistics_proto::r#type::v1::Decimal {
        value: value.normalize().to_string(),
    }
}

/// Which values a decimal field accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sign {
    /// Greater than zero.
    Positive,
    /// Zero or more.
    NonNegative,
    /// Any but zero (signed changes).
    NonZero,
}

/// The shape of a decimal field: at most `scale` digits after the point, fewer than
/// `integer_digits` before it, and `sign`. Mirrors a `numeric(integer_digits + scale, scale)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecimalRule {
    /// Digits after the point, at most.
    pub scale: u32,
    /// Digits before the point, at most.
    pub integer_digits: u32,
    /// Allowed sign.
    pub sign: Sign,
}

impl DecimalRule {
    /// Parses a required wire decimal of `field`, recording a violation in `v`.
    pub fn parse_proto(
        &self,
        v: &mut crate::error::Violations,
        field: &str,
        value: Option<&logistics_proto::r#type::v1::Decimal>,
    ) -> Option<Decimal> {
        v.check(self.parse(field, value.map_or("", |d| d.value.as_str())))
    }

    /// Parses `raw` (`"12.5"`, `"-3"`) for `field`: an optional `-`, digits, an optional `.`
    /// with digits; no exponent, separators or spaces inside.
    pub fn parse(&self, field: &str, raw: &str) -> Result<Decimal, FieldViolation> {
        let bad = |why: String| FieldViolation::new(field, why);
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(bad("is required".to_owned()));
        }
        let unsigned = raw.strip_prefix('-').unwrap_or(raw);
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((w, f)) => (w, Some(f)),
            None => (unsigned, None),
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(whole) || fraction.is_some_and(|f| !digits(f)) {
            return Err(bad("must be a decimal number like 12.5".to_owned()));
        }
        if fraction.is_some_and(|f| f.len() > self.scale as usize) {
            return Err(bad(format!(
                "must have at most {} digits after the point",
                self.scale
            )));
        }
        let value = Decimal::from_str(raw).map_err(|_| bad("is too large".to_owned()))?;
        let limit = Decimal::from(10_i64.pow(self.integer_digits));
        if value.abs() >= limit {
            return Err(bad(format!("must be less than {limit} in absolute value")));
        }
        let sign_ok = match self.sign {
            Sign::Positive => value > Decimal::ZERO,
            Sign::NonNegative => value >= Decimal::ZERO,
            Sign::NonZero => !value.is_zero(),
        };
        if !sign_ok {
            return Err(bad(match self.sign {
                Sign::Positive => "must be greater than 0",
                Sign::NonNegative => "must not be negative",
                Sign::NonZero => "must not be 0",
            }
            .to_owned()));
        }
        Ok(value.normalize())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const QUANTITY: DecimalRule = DecimalRule {
        scale: 3,
        integer_digits: 9,
        sign: Sign::Positive,
    };

    #[test]
    fn exact_values_come_back_without_trailing_zeros() {
        assert_eq!(QUANTITY.parse("q", "12.500").unwrap().to_string(), "12.5");
        assert_eq!(QUANTITY.parse("q", " 0.001 ").unwrap().to_string(), "0.001");
        assert_eq!(QUANTITY.parse("q", "24000").unwrap().to_string(), "24000");
    }

    #[test]
    fn malformed_too_precise_too_large_and_wrongly_signed_values_name_the_field() {
        for raw in [
            "",
            "0",
            "-1",
            "1e3",
            "1.",
            ".5",
            "1,5",
            "NaN",
            "1.2345",
            "--1",
            "1000000000",
        ] {
            assert_eq!(
                QUANTITY.parse("line.quantity", raw).unwrap_err().field,
                "line.quantity",
                "{raw}"
            );
        }
        let change = DecimalRule {
            sign: Sign::NonZero,
            ..QUANTITY
        };
        assert_eq!(change.parse("c", "-2.5").unwrap().to_string(), "-2.5");
        assert!(change.parse("c", "0.000").is_err());
        let weight = DecimalRule {
            sign: Sign::NonNegative,
            ..QUANTITY
        };
        assert!(weight.parse("w", "0").unwrap().is_zero());
    }
}
