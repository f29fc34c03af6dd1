//! Supplier and customer terms.

use logistics_platform::FieldViolation;
use logistics_platform::fields::{Money, Text};

/// Days of payment terms or lead time: 0 to 365.
pub fn days(field: &str, value: i32) -> Result<i32, FieldViolation> {
    if (0..=365).contains(&value) {
        Ok(value)
    } else {
        Err(FieldViolation::new(field, "must be between 0 and 365 days"))
    }
}

/// A rating: 1 to 5, or 0 for "not rated".
pub fn rating(field: &str, value: i32) -> Result<Option<i16>, FieldViolation> {
    match value {
        0 => Ok(None),
        1..=5 => Ok(i16::try_from(value).ok()),
        _ => Err(FieldViolation::new(
            field,
            "must be 1 to 5, or 0 for not rated",
        )),
    }
}

/// Free-text notes, up to 2000 characters.
pub fn notes(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 0, 2000)
}

/// An optional non-negative credit limit.
pub fn credit_limit(
    field: &str,
    currency: Option<(&str, i64)>,
) -> Result<Option<Money>, FieldViolation> {
    currency
        .map(|(code, amount)| Money::parse_non_negative(field, code, amount))
        .transpose()
}

/// Terms to write: `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct TermsChanges {
    /// Payment terms in days.
    pub payment_terms_days: Option<i32>,
    /// Lead time in days (suppliers only).
    pub lead_time_days: Option<i32>,
    /// Credit limit (`Some(None)` clears it).
    pub credit_limit: Option<Option<Money>>,
    /// Rating (`Some(None)` clears it).
    pub rating: Option<Option<i16>>,
    /// Notes.
    pub notes: Option<Text>,
}
