//! Conversions between protobuf well-known types and the Rust types every service stores:
//! timestamps and enum numbers. Handlers use these at the edge; stores never see protobuf.

use time::OffsetDateTime;

use crate::error::FieldViolation;

/// A protobuf timestamp of `at`.
pub fn timestamp(at: OffsetDateTime) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.unix_timestamp(),
        nanos: i32::try_from(at.nanosecond()).unwrap_or(0),
    }
}

/// A required timestamp of the request field `field`: set, normalised and within the years
/// PostgreSQL's `timestamptz` and this service accept (1970 to 9999).
pub fn parse_timestamp(
    field: &str,
    value: Option<&prost_types::Timestamp>,
) -> Result<OffsetDateTime, FieldViolation> {
    let Some(ts) = value else {
        return Err(FieldViolation::new(field, "is required"));
    };
    let in_range =
        (0..=253_402_300_799).contains(&ts.seconds) && (0..1_000_000_000).contains(&ts.nanos);
    let at = in_range
        .then(|| {
            OffsetDateTime::from_unix_timestamp(ts.seconds)
                .ok()
                .and_then(|at| at.replace_nanosecond(ts.nanos.unsigned_abs()).ok())
        })
        .flatten();
    at.ok_or_else(|| FieldViolation::new(field, "must be a time between 1970 and 9999"))
}

/// A known value of a protobuf enum: numbers the contract does not define are violations of
/// `field`. (UNSPECIFIED is known; callers decide whether it is allowed.)
pub fn known<E: TryFrom<i32>>(field: &str, value: i32) -> Result<E, FieldViolation> {
    E::try_from(value).map_err(|_| FieldViolation::new(field, "is not a known value"))
}

/// Declares `pub fn $fn(field, value) -> Result<Domain, FieldViolation>` for a required wire
/// enum: UNSPECIFIED is "is required", numbers the contract does not define are violations,
/// and each listed wire variant maps to its domain variant.
#[macro_export]
macro_rules! enum_from_proto {
    ($fn:ident, $wire:ty, $domain:ty { $($w:ident => $d:ident),+ $(,)? }) => {
        /// The domain value of a wire value of the request field `field`.
        pub fn $fn(field: &str, value: i32) -> Result<$domain, $crate::FieldViolation> {
            match $crate::wire::known::<$wire>(field, value)? {
                <$wire>::Unspecified => Err($crate::FieldViolation::new(field, "is required")),
                $(<$wire>::$w => Ok(<$domain>::$d)),+
            }
        }
    };
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_and_out_of_range_ones_name_the_field() {
        let at = OffsetDateTime::from_unix_timestamp(1_764_000_000)
            .unwrap()
            .replace_nanosecond(123_456_000)
            .unwrap();
        assert_eq!(parse_timestamp("t", Some(&timestamp(at))).unwrap(), at);
        let missing = parse_timestamp("window.start_time", None).unwrap_err();
        assert_eq!(missing.field, "window.start_time");
        let negative = prost_types::Timestamp {
            seconds: -1,
            nanos: 0,
        };
        assert!(parse_timestamp("t", Some(&negative)).is_err());
        let bad_nanos = prost_types::Timestamp {
            seconds: 0,
            nanos: 1_000_000_000,
        };
        assert!(parse_timestamp("t", Some(&bad_nanos)).is_err());
    }
}
