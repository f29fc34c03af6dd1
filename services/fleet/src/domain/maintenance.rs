//! Maintenance of trucks.

use logistics_platform::stored_names;

stored_names!(
    /// What kind of work.
    MaintenanceKind {
        /// Statutory inspection.
        Inspection => "inspection",
        /// Scheduled service.
        Service => "service",
        /// Repair.
        Repair => "repair",
        /// Tyres.
        Tyres => "tyres",
    }
);
