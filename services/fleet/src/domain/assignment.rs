//! Assignments: a truck and a driver booked for a shipment over a window.

use logistics_platform::stored_names;

stored_names!(
    /// Where an assignment stands.
    AssignmentStatus {
        /// Booked.
        Active => "active",
        /// Cancelled; truck and driver are free again.
        Cancelled => "cancelled",
    }
);
