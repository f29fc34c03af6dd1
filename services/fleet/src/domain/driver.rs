//! Drivers: who may drive what, and until when.

use logistics_platform::stored_names;

use logistics_platform::FieldViolation;

/// A driving licence number, normalised: upper case, without spaces and dashes, 5 to 20
/// letters or digits. Personal data: never logged, never echoed in a violation.
#[derive(Clone, PartialEq, Eq)]
pub struct LicenceNumber(String);

impl std::fmt::Debug for LicenceNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LicenceNumber([REDACTED])")
    }
}

impl LicenceNumber {
    /// Parses `raw` for `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let normalised: String = raw
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let valid = (5..=20).contains(&normalised.len())
            && normalised.bytes().all(|b| b.is_ascii_alphanumeric());
        if valid {
            Ok(Self(normalised))
        } else {
            Err(FieldViolation::new(
                field,
                "must be 5 to 20 letters or digits (spaces and dashes are ignored)",
            ))
        }
    }

    /// The normalised number.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

stored_names!(
    /// A driving licence class (EU) relevant to goods vehicles.
    LicenceClass {
        /// Up to 3.5 t.
        B => "b",
        /// B with a heavy trailer.
        Be => "be",
        /// 3.5 t to 7.5 t.
        C1 => "c1",
        /// C1 with a heavy trailer.
        C1e => "c1e",
        /// Over 3.5 t.
        C => "c",
        /// C with a heavy trailer.
        Ce => "ce",
    }
);

stored_names!(
    /// Whether a driver can be given work.
    DriverStatus {
        /// Assignable.
        Active => "active",
        /// Temporarily not assignable.
        Inactive => "inactive",
        /// Gone; kept for history.
        Terminated => "terminated",
    }
);

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn licence_numbers_compare_without_separators_and_case_and_never_show_in_debug() {
        let a = LicenceNumber::parse("l", "b072 rm-9ab").unwrap();
        assert_eq!(a.as_str(), "B072RM9AB");
        assert_eq!(format!("{a:?}"), "LicenceNumber([REDACTED])");
        let err = LicenceNumber::parse("driver.licence_number", "ab#12345").unwrap_err();
        assert!(!err.description.contains("ab#12345"));
        assert!(LicenceNumber::parse("l", "AB12").is_err());
    }

    #[test]
    fn stored_names_round_trip() {
        for class in LicenceClass::ALL {
            assert_eq!(LicenceClass::parse(class.as_str()), Some(*class));
        }
        for status in DriverStatus::ALL {
            assert_eq!(DriverStatus::parse(status.as_str()), Some(*status));
        }
    }
}
