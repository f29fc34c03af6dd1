//! Stock movements and reservations: what each kind of ledger entry changes.

use logistics_platform::stored_names;
use rust_decimal::Decimal;

stored_names!(
    /// What a ledger entry records.
    MovementKind {
        /// Goods in.
        Receipt => "receipt",
        /// Goods out without a reservation.
        Issue => "issue",
        /// Count correction.
        Adjustment => "adjustment",
        /// Out to another warehouse.
        TransferOut => "transfer_out",
        /// In from another warehouse.
        TransferIn => "transfer_in",
        /// Set aside for a shipment.
        Reserve => "reserve",
        /// Given back.
        Release => "release",
        /// Shipped from a reservation.
        Consume => "consume",
    }
);

stored_names!(
    /// Where a reservation stands.
    ReservationStatus {
        /// Set aside.
        Held => "held",
        /// Given back.
        Released => "released",
        /// Shipped.
        Consumed => "consumed",
    }
);

impl MovementKind {
    /// The `(on_hand, reserved)` changes of an entry of this kind for `quantity` (> 0; for
    /// adjustments, the signed change itself).
    pub fn changes(self, quantity: Decimal) -> (Decimal, Decimal) {
        match self {
            MovementKind::Receipt | MovementKind::TransferIn | MovementKind::Adjustment => {
                (quantity, Decimal::ZERO)
            }
            MovementKind::Issue | MovementKind::TransferOut => (-quantity, Decimal::ZERO),
            MovementKind::Reserve => (Decimal::ZERO, quantity),
            MovementKind::Release => (Decimal::ZERO, -quantity),
            MovementKind::Consume => (-quantity, -quantity),
        }
    }
}

/// A line that cannot be served: what is asked and what is available.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    /// Index of the line in the request.
    pub line: usize,
    /// Asked.
    pub requested: Decimal,
    /// Available (on hand minus reserved).
    pub available: Decimal,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_moves_what_it_says() {
        let q = Decimal::from(5);
        assert_eq!(MovementKind::Receipt.changes(q), (q, Decimal::ZERO));
        assert_eq!(MovementKind::Issue.changes(q), (-q, Decimal::ZERO));
        assert_eq!(MovementKind::Reserve.changes(q), (Decimal::ZERO, q));
        assert_eq!(MovementKind::Release.changes(q), (Decimal::ZERO, -q));
        assert_eq!(MovementKind::Consume.changes(q), (-q, -q));
        assert_eq!(MovementKind::Adjustment.changes(-q), (-q, Decimal::ZERO));
    }
}
