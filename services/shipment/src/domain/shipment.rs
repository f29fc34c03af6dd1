//! A shipment's own fields: its reference, priority, the address snapshots it keeps, and what a
//! tracking event or an outbox event may be.

use logistics_platform::FieldViolation;
use logistics_platform::fields::{CountryCode, LatLng, Text};
use logistics_platform::stored_names;
use logistics_platform::window::Window;
use uuid::Uuid;

/// A shipment's business reference: 1 to 40 of `A-Z`, `0-9`, `-`, `_`, `/`, starting with a
/// letter or digit; stored as given (upper case required, not folded, so what people type on
/// paperwork is what they find).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference(String);

impl Reference {
    /// Parses the request field `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let ok = (1..=40).contains(&raw.len())
            && raw
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
            && raw.bytes().all(|b| {
                b.is_ascii_uppercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'/')
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldViolation::new(
                field,
                "must be 1 to 40 of A-Z, 0-9, '-', '_', '/', starting with a letter or digit",
            ))
        }
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

stored_names! {
    /// How urgent a shipment is.
    Priority {
        /// Whenever convenient.
        Low => "low",
        /// The default.
        Normal => "normal",
        /// Before normal ones.
        High => "high",
        /// Before everything else.
        Urgent => "urgent",
    }
}

stored_names! {
    /// What happens at a stop.
    StopKind {
        /// Goods are loaded.
        Pickup => "pickup",
        /// Goods are unloaded.
        DropOff => "drop_off",
    }
}

stored_names! {
    /// What a tracking event reports.
    TrackingKind {
        /// A position report; changes nothing.
        Position => "position",
        /// Arrived at a stop.
        Arrived => "arrived",
        /// Left the origin or a stop; the first one puts a dispatched shipment in transit.
        Departed => "departed",
        /// Running late.
        Delayed => "delayed",
        /// Back on the road after an exception.
        Resumed => "resumed",
        /// A note from the road.
        Note => "note",
    }
}

stored_names! {
    /// What an outbox event reports.
    EventType {
        /// Created.
        Created => "created",
        /// Fields, items or stops changed; deleted or restored.
        Updated => "updated",
        /// Planned.
        Planned => "planned",
        /// Dispatched.
        Dispatched => "dispatched",
        /// A tracking event was recorded.
        Tracked => "tracked",
        /// An exception was reported.
        ExceptionReported => "exception_reported",
        /// Delivered.
        Delivered => "delivered",
        /// Cancelled.
        Cancelled => "cancelled",
        /// Planning failed and was undone.
        PlanFailed => "plan_failed",
    }
}

/// A postal address as copied at a point in time.
#[derive(Debug, Clone, PartialEq)]
pub struct AddressSnapshot {
    /// First line, 1 to 200 characters.
    pub line1: Text,
    /// Second line, up to 200.
    pub line2: Text,
    /// City, 1 to 100.
    pub city: Text,
    /// Region, up to 100.
    pub region: Text,
    /// Postal code, up to 20.
    pub postal_code: Text,
    /// Country.
    pub country: CountryCode,
    /// Coordinates, when known.
    pub location: Option<LatLng>,
}

/// Every field of a shipment a caller sets (the customer is set once, at create).
#[derive(Debug, Clone)]
pub struct ShipmentFields {
    /// Business reference.
    pub reference: Reference,
    /// Supplier partner, if any.
    pub supplier_id: Option<Uuid>,
    /// Origin warehouse.
    pub origin_warehouse_id: Uuid,
    /// The partner address the destination is copied from.
    pub destination_address_id: Uuid,
    /// Pickup window.
    pub pickup: Window,
    /// Delivery window; starts no earlier than the pickup window.
    pub delivery: Window,
    /// Priority.
    pub priority: Priority,
    /// Notes, up to 2000 characters.
    pub notes: Text,
}

/// The delivery window must not start before the pickup window.
pub fn check_windows(pickup: &Window, delivery: &Window) -> Result<(), FieldViolation> {
    if delivery.start < pickup.start {
        Err(FieldViolation::new(
            "delivery_window.start_time",
            "must not be earlier than pickup_window.start_time",
        ))
    } else {
        Ok(())
    }
}

/// The window a truck and driver are busy with a shipment: from the start of pickup to the end
/// of delivery.
pub fn booking_window(pickup: &Window, delivery: &Window) -> Window {
    Window {
        start: pickup.start,
        end: delivery.end.max(pickup.end),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn references_are_upper_case_codes_of_up_to_forty_characters() {
        assert!(Reference::parse("r", "SO-2026/0001_A").is_ok());
        for bad in ["", "so-1", "-SO", "SO 1", &"A".repeat(41)] {
            assert_eq!(
                Reference::parse("reference", bad).unwrap_err().field,
                "reference"
            );
        }
    }

    #[test]
    fn delivery_may_not_start_before_pickup_and_the_booking_spans_both() {
        let pickup = Window {
            start: datetime!(2026-12-01 08:00 UTC),
            end: datetime!(2026-12-01 12:00 UTC),
        };
        let early = Window {
            start: datetime!(2026-12-01 07:00 UTC),
            end: datetime!(2026-12-01 18:00 UTC),
        };
        assert_eq!(
            check_windows(&pickup, &early).unwrap_err().field,
            "delivery_window.start_time"
        );
        let delivery = Window {
            start: datetime!(2026-12-01 10:00 UTC),
            end: datetime!(2026-12-02 18:00 UTC),
        };
        assert!(check_windows(&pickup, &delivery).is_ok());
        let booking = booking_window(&pickup, &delivery);
        assert_eq!((booking.start, booking.end), (pickup.start, delivery.end));
    }
}
