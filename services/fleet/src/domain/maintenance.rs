//! Maintenance of trucks.

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
