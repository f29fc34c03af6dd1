//! Time windows: half-open `[start, end)` spans, so back-to-back bookings do not overlap; stored
//! as `tstzrange '[start, end)'`, sent as `logistics.type.v1.TimeWindow`.

use std::ops::Bound;

use logistics_proto::r#type::v1 as types;
use sqlx::postgres::types::PgRange;
use time::OffsetDateTime;

use crate::FieldViolation;
use crate::error::Violations;
use crate::wire::{parse_timestamp, timestamp};

/// A non-empty `[start, end)` window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// First instant inside.
    pub start: OffsetDateTime,
    /// First instant after.
    pub end: OffsetDateTime,
}

impl Window {
    /// A window from `start` to `end`, for the request field `field` (its `start_time` and
    /// `end_time` are named in violations).
    pub fn new(
        field: &str,
        start: Option<OffsetDateTime>,
        end: Option<OffsetDateTime>,
    ) -> Result<Self, Vec<FieldViolation>> {
        match (start, end) {
            (Some(start), Some(end)) if start < end => Ok(Self { start, end }),
            (Some(_), Some(_)) => Err(vec![FieldViolation::new(
                format!("{field}.end_time"),
                "must be later than start_time",
            )]),
            (start, end) => Err([("start_time", start), ("end_time", end)]
                .into_iter()
                .filter(|(_, at)| at.is_none())
                .map(|(name, _)| FieldViolation::new(format!("{field}.{name}"), "is required"))
                .collect()),
        }
    }

    /// Whether the two windows share an instant.
    pub fn overlaps(&self, other: &Window) -> bool {
        self.start < other.end && other.start < self.end
    }

    /// The window as a `tstzrange` `[start, end)`.
    pub fn range(&self) -> PgRange<OffsetDateTime> {
        PgRange {
            start: Bound::Included(self.start),
            end: Bound::Excluded(self.end),
        }
    }

    /// A stored `[start, end)` range as a window (schemas allow no other shape).
    pub fn from_range(range: &PgRange<OffsetDateTime>) -> Option<Window> {
        match (range.start, range.end) {
            (Bound::Included(start), Bound::Excluded(end)) => Some(Window { start, end }),
            _ => None,
        }
    }

    /// The wire window.
    pub fn to_proto(&self) -> types::TimeWindow {
        types::TimeWindow {
            start_time: Some(timestamp(self.start)),
            end_time: Some(timestamp(self.end)),
        }
    }

    /// Parses a required window of the request field `field`, recording violations in `v`.
    pub fn parse_proto(
        v: &mut Violations,
        field: &str,
        w: Option<&types::TimeWindow>,
    ) -> Option<Window> {
        let Some(w) = w else {
            v.push(FieldViolation::new(field, "is required"));
            return None;
        };
        let start = v.check(parse_timestamp(
            &format!("{field}.start_time"),
            w.start_time.as_ref(),
        ));
        let end = v.check(parse_timestamp(
            &format!("{field}.end_time"),
            w.end_time.as_ref(),
        ));
        if start.is_none() || end.is_none() {
            return None;
        }
        match Window::new(field, start, end) {
            Ok(w) => Some(w),
            Err(violations) => {
                violations.into_iter().for_each(|x| v.push(x));
                None
            }
        }
    }

    /// A stored range as a wire window; a range that is not `[start, end)` is a bug.
    pub fn stored_proto(
        range: &PgRange<OffsetDateTime>,
    ) -> Result<types::TimeWindow, crate::Error> {
        Window::from_range(range)
            .map(|w| w.to_proto())
            .ok_or_else(|| anyhow::anyhow!("stored window is not [start, end)").into())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn back_to_back_windows_do_not_overlap() {
        let morning = Window::new(
            "w",
            Some(datetime!(2026-11-25 08:00 UTC)),
            Some(datetime!(2026-11-25 12:00 UTC)),
        )
        .unwrap();
        let afternoon = Window::new(
            "w",
            Some(datetime!(2026-11-25 12:00 UTC)),
            Some(datetime!(2026-11-25 16:00 UTC)),
        )
        .unwrap();
        let lunch = Window::new(
            "w",
            Some(datetime!(2026-11-25 11:00 UTC)),
            Some(datetime!(2026-11-25 13:00 UTC)),
        )
        .unwrap();
        assert!(!morning.overlaps(&afternoon));
        assert!(morning.overlaps(&lunch) && lunch.overlaps(&afternoon));
    }

    #[test]
    fn an_empty_or_reversed_window_names_the_end_and_a_missing_bound_is_required() {
        let at = Some(datetime!(2026-11-25 08:00 UTC));
        let err = Window::new("window", at, at).unwrap_err();
        assert_eq!(err[0].field, "window.end_time");
        let fields: Vec<_> = Window::new("window", None, None)
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect();
        assert_eq!(fields, ["window.start_time", "window.end_time"]);
    }
}
