//! Partners: kinds, statuses, roles, tax ids.

use logistics_platform::FieldViolation;
use logistics_platform::fields::{CountryCode, CurrencyCode, DisplayName, Text};

/// Company or person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerKind {
    /// A company.
    Organization,
    /// A natural person.
    Person,
}

/// Whether business is allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartnerStatus {
    /// Business as usual.
    Active,
    /// Kept for history.
    Inactive,
    /// No business allowed.
    Blocked,
}

/// A role a partner plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartnerRole {
    /// Sells to the tenant.
    Supplier,
    /// Buys from the tenant.
    Customer,
    /// Moves goods.
    Carrier,
}

macro_rules! stored_names {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// The name stored in the database.
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),+ }
            }

            /// The value with this stored name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some($ty::$variant),)+ _ => None }
            }
        }
    };
}

stored_names!(PartnerKind { Organization => "organization", Person => "person" });
stored_names!(PartnerStatus { Active => "active", Inactive => "inactive", Blocked => "blocked" });
stored_names!(PartnerRole { Supplier => "supplier", Customer => "customer", Carrier => "carrier" });

/// A tax or VAT id, normalised: upper case, without spaces, dots and dashes; 2 to 32 of
/// `A-Z 0-9 /`. Personal data: never logged, never echoed in a violation.
#[derive(Clone, PartialEq, Eq)]
pub struct TaxId(String);

impl std::fmt::Debug for TaxId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaxId([REDACTED])")
    }
}

impl TaxId {
    /// Parses `raw` for `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let normalised: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '.' | '-'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let valid = (2..=32).contains(&normalised.len())
            && normalised
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'/');
        if valid {
            Ok(Self(normalised))
        } else {
            Err(FieldViolation::new(
                field,
                "must be 2 to 32 letters, digits or slashes (spaces, dots and dashes are ignored)",
            ))
        }
    }

    /// A tax id opened from storage, where only normalised ids are ever sealed.
    pub fn from_stored(normalised: String) -> Self {
        Self(normalised)
    }

    /// The normalised id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A partner to create, fully validated.
#[derive(Debug, Clone)]
pub struct NewPartner {
    /// Company or person.
    pub kind: PartnerKind,
    /// Legal name, 1 to 300 characters.
    pub legal_name: Text,
    /// Shown name.
    pub display_name: DisplayName,
    /// Tax id, if given.
    pub tax_id: Option<TaxId>,
    /// Country of registration.
    pub country: CountryCode,
    /// Default invoicing currency.
    pub currency: CurrencyCode,
    /// Status (active unless given).
    pub status: PartnerStatus,
    /// Roles to add at once.
    pub roles: Vec<PartnerRole>,
}

/// Parses a legal name for `field`.
pub fn legal_name(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 1, 300)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_ids_compare_without_separators_and_case() {
        let a = TaxId::parse("t", "de 123.456-789").expect("valid");
        let b = TaxId::parse("t", "DE123456789").expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "DE123456789");
    }

    #[test]
    fn tax_id_violations_never_echo_the_value_and_debug_hides_it() {
        let err = TaxId::parse("t", "DE#123").expect_err("bad character");
        assert!(!err.description.contains("DE#123"));
        assert!(TaxId::parse("t", "1").is_err());
        assert!(TaxId::parse("t", &"1".repeat(33)).is_err());
        let id = TaxId::parse("t", "DE123456789").expect("valid");
        assert!(!format!("{id:?}").contains("123"));
    }

    #[test]
    fn stored_names_round_trip() {
        for role in [
            PartnerRole::Supplier,
            PartnerRole::Customer,
            PartnerRole::Carrier,
        ] {
            assert_eq!(PartnerRole::parse(role.as_str()), Some(role));
        }
        assert_eq!(PartnerStatus::parse("deleted"), None);
    }
}
