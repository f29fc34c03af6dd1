//! Value types every service validates the same way: e-mail, names, ISO country and currency
//! codes, E.164 phone numbers, coordinates, money. Each has a `parse` that names the request
//! field in its violation and never repeats the rejected value (it may be personal data).

use crate::error::FieldViolation;

/// An e-mail address, trimmed, at most 254 characters, one `@` with a local part of at most 64
/// and a dotted domain. Stored as given; compared case-insensitively where it is a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses `raw` for the request field `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let value = raw.trim();
        let bad = |why: &str| FieldViolation::new(field, why);
        if value.is_empty() {
            return Err(bad("is required"));
        }
        if value.chars().count() > 254 {
            return Err(bad("must be at most 254 characters"));
        }
        let Some((local, domain)) = value.split_once('@') else {
            return Err(bad("must be an e-mail address like name@example.com"));
        };
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(bad("must be an e-mail address like name@example.com"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Trimmed text of bounded length without control characters: names, titles, address lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

impl Text {
    /// Parses `raw` for `field`: `min` to `max` characters after trimming (`min` 0 allows empty).
    pub fn parse(field: &str, raw: &str, min: usize, max: usize) -> Result<Self, FieldViolation> {
        let value = raw.trim();
        let chars = value.chars().count();
        if chars < min {
            return Err(FieldViolation::new(
                field,
                if min == 1 {
                    "is required".to_owned()
                } else {
                    format!("must be at least {min} characters")
                },
            ));
        }
        if chars > max {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {max} characters"),
            ));
        }
        if value.chars().any(|c| c.is_control() && c != '\n') {
            return Err(FieldViolation::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The text, owned.
    pub fn into_string(self) -> String {
        self.0
    }
}

/// A name shown to people: 1 to 200 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(Text);

impl DisplayName {
    /// Parses `raw` for the request field `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        Text::parse(field, raw, 1, 200).map(Self)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

/// An ISO 3166-1 alpha-2 country code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Parses `raw` (case-insensitive) for `field`; only assigned codes are accepted.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let upper = raw.trim().to_ascii_uppercase();
        let bytes: [u8; 2] = upper.as_bytes().try_into().map_err(|_| {
            FieldViolation::new(field, "must be an ISO 3166-1 alpha-2 code like DE")
        })?;
        celes::Country::from_alpha2(&upper)
            .map_err(|_| FieldViolation::new(field, "is not an ISO 3166-1 alpha-2 country code"))?;
        Ok(Self(bytes))
    }

    /// The code, `"DE"`.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// An active ISO 4217 currency code, upper case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrencyCode(iso_currency::Currency);

impl CurrencyCode {
    /// Parses `raw` (case-insensitive) for `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let upper = raw.trim().to_ascii_uppercase();
        iso_currency::Currency::from_code(&upper)
            .map(Self)
            .ok_or_else(|| FieldViolation::new(field, "is not an ISO 4217 currency code like EUR"))
    }

    /// The code, `"EUR"`.
    pub fn as_str(&self) -> &'static str {
        self.0.code()
    }

    /// Digits after the decimal point (2 for EUR, 0 for JPY).
    pub fn minor_unit_digits(&self) -> u16 {
        self.0.exponent().unwrap_or(0)
    }
}

/// An amount of money: integer minor units and a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money {
    /// Currency.
    pub currency: CurrencyCode,
    /// Amount in minor units.
    pub amount_minor: i64,
}

impl Money {
    /// Parses a non-negative amount for `field` (`field.currency_code`, `field.amount_minor`).
    pub fn parse_non_negative(
        field: &str,
        currency: &str,
        amount_minor: i64,
    ) -> Result<Self, FieldViolation> {
        let currency = CurrencyCode::parse(&format!("{field}.currency_code"), currency)?;
        if amount_minor < 0 {
            return Err(FieldViolation::new(
                format!("{field}.amount_minor"),
                "must not be negative",
            ));
        }
        Ok(Self {
            currency,
            amount_minor,
        })
    }
}

/// A phone number in E.164 form: `+`, a country code not starting with 0, at most 15 digits in
/// all. Spaces, dashes, dots and parentheses in the input are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneE164(String);

impl PhoneE164 {
    /// Parses `raw` for `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let compact: String = raw
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
            .collect();
        let bad = || {
            FieldViolation::new(
                field,
                "must be a phone number in E.164 form like +4930123456",
            )
        };
        let digits = compact.strip_prefix('+').ok_or_else(bad)?;
        let valid = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if valid { Ok(Self(compact)) } else { Err(bad()) }
    }

    /// The number, `+4930123456`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A WGS 84 position.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatLng {
    /// Degrees north, -90 to 90.
    pub latitude: f64,
    /// Degrees east, -180 to 180.
    pub longitude: f64,
}

impl LatLng {
    /// Parses a position for `field` (`field.latitude`, `field.longitude`); every violation.
    pub fn parse(field: &str, latitude: f64, longitude: f64) -> Result<Self, Vec<FieldViolation>> {
        let mut violations = Vec::new();
        if !(latitude.is_finite() && (-90.0..=90.0).contains(&latitude)) {
            violations.push(FieldViolation::new(
                format!("{field}.latitude"),
                "must be between -90 and 90",
            ));
        }
        if !(longitude.is_finite() && (-180.0..=180.0).contains(&longitude)) {
            violations.push(FieldViolation::new(
                format!("{field}.longitude"),
                "must be between -180 and 180",
            ));
        }
        if violations.is_empty() {
            Ok(Self {
                latitude,
                longitude,
            })
        } else {
            Err(violations)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_needs_a_local_part_and_a_dotted_domain() {
        assert!(Email::parse("email", " Ada@Example.com ").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.d",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn country_codes_must_be_assigned() {
        assert_eq!(
            CountryCode::parse("c", "de").map(|c| c.as_str().to_owned()),
            Ok("DE".into())
        );
        for bad in ["", "D", "DEU", "XX", "12"] {
            assert!(CountryCode::parse("c", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn currency_codes_must_exist_and_know_their_minor_unit() {
        let eur = CurrencyCode::parse("c", "eur").expect("EUR");
        assert_eq!((eur.as_str(), eur.minor_unit_digits()), ("EUR", 2));
        assert_eq!(
            CurrencyCode::parse("c", "JPY").map(|c| c.minor_unit_digits()),
            Ok(0)
        );
        assert!(CurrencyCode::parse("c", "EURO").is_err());
        assert!(CurrencyCode::parse("c", "XYZ").is_err());
    }

    #[test]
    fn phones_are_normalised_to_e164() {
        assert_eq!(
            PhoneE164::parse("p", "+49 (30) 123-456").map(|p| p.0),
            Ok("+4930123456".into())
        );
        for bad in [
            "030123456",
            "+0301234567",
            "+49",
            "+49301234567890123",
            "+49abc12345",
        ] {
            assert!(PhoneE164::parse("p", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn coordinates_must_be_on_the_earth() {
        assert!(LatLng::parse("l", 52.52, 13.40).is_ok());
        let both = LatLng::parse("l", 91.0, -181.0).expect_err("out of range");
        let fields: Vec<_> = both.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["l.latitude", "l.longitude"]);
        assert!(LatLng::parse("l", f64::NAN, 0.0).is_err());
    }

    #[test]
    fn text_is_trimmed_and_bounded_and_violations_never_echo_the_value() {
        assert_eq!(
            Text::parse("t", "  x ", 1, 5).map(Text::into_string),
            Ok("x".into())
        );
        let err = Text::parse("t", "secret-value-too-long", 1, 5).expect_err("too long");
        assert!(!err.description.contains("secret"));
        assert!(Text::parse("t", "", 0, 5).is_ok());
        assert!(Text::parse("t", " ", 1, 5).is_err());
    }
}
