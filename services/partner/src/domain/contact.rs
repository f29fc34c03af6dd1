//! Contacts: someone to reach at a partner, by e-mail or phone.

use logistics_platform::FieldViolation;
use logistics_platform::fields::{Email, PhoneE164, Text};

/// A contact's fields, validated.
#[derive(Debug, Clone)]
pub struct ContactFields {
    /// Full name, 1 to 200 characters.
    pub name: Text,
    /// Job title, up to 100 characters.
    pub job_title: Text,
    /// E-mail, if any.
    pub email: Option<Email>,
    /// Phone in E.164, if any.
    pub phone: Option<PhoneE164>,
    /// Primary contact of the partner.
    pub primary: bool,
}

/// Parses a contact name for `field`.
pub fn name(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 1, 200)
}

/// Parses a job title for `field`.
pub fn job_title(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 0, 100)
}

/// An optional e-mail: empty means none.
pub fn optional_email(field: &str, raw: &str) -> Result<Option<Email>, FieldViolation> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        Email::parse(field, raw).map(Some)
    }
}

/// An optional phone: empty means none.
pub fn optional_phone(field: &str, raw: &str) -> Result<Option<PhoneE164>, FieldViolation> {
    if raw.trim().is_empty() {
        Ok(None)
    } else {
        PhoneE164::parse(field, raw).map(Some)
    }
}

/// A contact must be reachable: an e-mail or a phone.
pub fn check_reachable(
    prefix: &str,
    email: Option<&Email>,
    phone: Option<&PhoneE164>,
) -> Option<FieldViolation> {
    (email.is_none() && phone.is_none())
        .then(|| FieldViolation::new(format!("{prefix}email"), "an e-mail or a phone is required"))
}
