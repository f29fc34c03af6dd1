//! Trucks: identified by a registration plate and a VIN, both validated here before the
//! database checks them again.

use logistics_platform::stored_names;

use logistics_platform::FieldViolation;
use logistics_platform::fields::Text;

use super::quantity::Quantity;

/// A vehicle identification number (ISO 3779): 17 characters from `0-9` and `A-Z` without
/// `I`, `O` and `Q`, whose ninth character is the check digit of the rest. Stored upper case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vin(String);

/// Transliteration of VIN characters to numbers (ISO 3779 / 49 CFR 565).
fn vin_value(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some(u32::from(c - b'0')),
        b'A' | b'J' => Some(1),
        b'B' | b'K' | b'S' => Some(2),
        b'C' | b'L' | b'T' => Some(3),
        b'D' | b'M' | b'U' => Some(4),
        b'E' | b'N' | b'V' => Some(5),
        b'F' | b'W' => Some(6),
        b'G' | b'P' | b'X' => Some(7),
        b'H' | b'Y' => Some(8),
        b'R' | b'Z' => Some(9),
        _ => None,
    }
}

const VIN_WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];

impl Vin {
    /// Parses `raw` for the request field `field`; surrounding spaces and case are forgiven.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let value = raw.trim().to_ascii_uppercase();
        let bad = |why: &str| FieldViolation::new(field, why);
        if value.is_empty() {
            return Err(bad("is required"));
        }
        if value.len() != 17 {
            return Err(bad("must be 17 characters"));
        }
        let values: Option<Vec<u32>> = value.bytes().map(vin_value).collect();
        let Some(values) = values else {
            return Err(bad(
                "must use only digits and letters other than I, O and Q",
            ));
        };
        let total: u32 = values.iter().zip(VIN_WEIGHTS).map(|(v, w)| v * w).sum();
        let expected = match total % 11 {
            10 => b'X',
            digit => b'0' + u8::try_from(digit).unwrap_or(0),
        };
        if value.as_bytes()[8] != expected {
            return Err(bad("has a wrong check digit (position 9)"));
        }
        Ok(Self(value))
    }

    /// The VIN, upper case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A registration plate: 1 to 15 letters, digits, spaces or dashes, starting with a letter or a
/// digit; stored upper case with single spaces. Two plates are the same when they match
/// without spaces and dashes (`B-XY 123` is `BXY123`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plate(String);

impl Plate {
    /// Parses `raw` for the request field `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let value = raw
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_ascii_uppercase();
        let bad = |why: &str| FieldViolation::new(field, why);
        if value.is_empty() {
            return Err(bad("is required"));
        }
        if value.chars().count() > 15 {
            return Err(bad("must be at most 15 characters"));
        }
        let allowed = value
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == ' ' || c == '-');
        let starts_well = value
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric());
        if !allowed || !starts_well {
            return Err(bad(
                "must be letters, digits, spaces or dashes, starting with a letter or digit",
            ));
        }
        Ok(Self(value))
    }

    /// The plate as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What makes two plates the same: letters and digits only.
    pub fn key(&self) -> String {
        self.0.chars().filter(char::is_ascii_alphanumeric).collect()
    }
}

stored_names!(
    /// Whether a truck can be given work.
    TruckStatus {
        /// In service.
        Active => "active",
        /// In the workshop.
        InMaintenance => "in_maintenance",
        /// Out of service for good.
        Retired => "retired",
    }
);

/// Every field of a truck, validated.
#[derive(Debug, Clone)]
pub struct TruckFields {
    /// Registration plate.
    pub plate: Plate,
    /// Vehicle identification number.
    pub vin: Vin,
    /// Manufacturer.
    pub make: Text,
    /// Model.
    pub model: Text,
    /// Model year.
    pub year: i16,
    /// Payload capacity in kilograms.
    pub payload_kg: Quantity,
    /// Volume capacity in cubic metres.
    pub volume_m3: Quantity,
    /// Whether it can be assigned.
    pub status: TruckStatus,
    /// Odometer in kilometres.
    pub odometer_km: i64,
}

/// Digits before the point of a payload capacity in kilograms (`numeric(12,3)`).
pub const PAYLOAD_DIGITS: u32 = 9;
/// Digits before the point of a volume capacity in cubic metres (`numeric(9,3)`).
pub const VOLUME_DIGITS: u32 = 6;

/// Parses a model year for `field`: 1950 to the year after `this_year`.
pub fn model_year(field: &str, year: i32, this_year: i32) -> Result<i16, FieldViolation> {
    if (1950..=this_year + 1).contains(&year) {
        i16::try_from(year).map_err(|_| FieldViolation::new(field, "is out of range"))
    } else {
        Err(FieldViolation::new(
            field,
            format!("must be between 1950 and {}", this_year + 1),
        ))
    }
}

/// Parses a make or model name for `field`: 1 to 100 characters.
pub fn make_or_model(field: &str, raw: &str) -> Result<Text, FieldViolation> {
    Text::parse(field, raw, 1, 100)
}

/// Parses an odometer reading for `field`: 0 km or more.
pub fn odometer(field: &str, km: i64) -> Result<i64, FieldViolation> {
    if km >= 0 {
        Ok(km)
    } else {
        Err(FieldViolation::new(field, "must be 0 or more"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_vin_with_its_check_digit_is_accepted_in_any_case() {
        assert_eq!(
            Vin::parse("vin", " 1m8gdm9axkp042788 ").unwrap().as_str(),
            "1M8GDM9AXKP042788"
        );
        assert!(Vin::parse("vin", "11111111111111111").is_ok());
    }

    #[test]
    fn a_vin_with_a_wrong_check_digit_is_refused() {
        let err = Vin::parse("truck.vin", "1M8GDM9A1KP042788").unwrap_err();
        assert_eq!(err.field, "truck.vin");
        assert!(
            err.description.contains("check digit"),
            "{}",
            err.description
        );
    }

    #[test]
    fn a_vin_of_the_wrong_length_or_with_i_o_q_is_refused() {
        assert!(Vin::parse("vin", "1M8GDM9AXKP04278").is_err());
        assert!(Vin::parse("vin", "1M8GDM9AXKP0427888").is_err());
        assert!(Vin::parse("vin", "IM8GDM9AXKP042788").is_err());
        assert!(Vin::parse("vin", "").is_err());
    }

    #[test]
    fn plates_are_upper_cased_and_compared_without_separators() {
        let plate = Plate::parse("plate", "  b-xy   123 ").unwrap();
        assert_eq!(plate.as_str(), "B-XY 123");
        assert_eq!(plate.key(), "BXY123");
        assert!(Plate::parse("plate", "-AB").is_err());
        assert!(Plate::parse("plate", "AB_12").is_err());
        assert!(Plate::parse("plate", "ABCDEFGHIJKLMNOP").is_err());
    }
}
