//! Authorization: the roles of the platform and the one table that says what each may do.
//!
//! Handlers ask `caller.require(Permission::X)` before any work; row-level security then decides
//! which rows the call may touch. Both `Role::permissions` and `Role::parse` match every variant
//! with no catch-all arm, so a new role or permission forces a decision here.

use std::fmt;

/// A role a user can hold. The names are the ones stored in `identity.roles` and in tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Manages the tenant: users, roles and every resource of every service.
    Admin,
    /// Plans and dispatches shipments; writes partners.
    Dispatcher,
    /// Receives, stores and issues stock.
    WarehouseClerk,
    /// Manages trucks, drivers, maintenance and assignments.
    FleetManager,
    /// Reads everything in the tenant, changes nothing.
    Auditor,
    /// External customer user, scoped to its partner.
    Customer,
    /// External supplier user, scoped to its partner.
    Supplier,
    /// Driver, scoped to its own assignments.
    Driver,
    /// Operates the platform: creates tenants, rotates signing keys.
    PlatformAdmin,
}

impl Role {
    /// Every role, in a stable order.
    pub const ALL: [Role; 9] = [
        Role::Admin,
        Role::Dispatcher,
        Role::WarehouseClerk,
        Role::FleetManager,
        Role::Auditor,
        Role::Customer,
        Role::Supplier,
        Role::Driver,
        Role::PlatformAdmin,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Dispatcher => "dispatcher",
            Role::WarehouseClerk => "warehouse_clerk",
            Role::FleetManager => "fleet_manager",
            Role::Auditor => "auditor",
            Role::Customer => "customer",
            Role::Supplier => "supplier",
            Role::Driver => "driver",
            Role::PlatformAdmin => "platform_admin",
        }
    }

    /// The role with this stored name.
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }

    /// One line on what the role is for; stored with the role.
    pub fn description(self) -> &'static str {
        match self {
            Role::Admin => "Manages the tenant: users, roles and every resource",
            Role::Dispatcher => "Plans and dispatches shipments; writes partners",
            Role::WarehouseClerk => "Receives, stores and issues stock",
            Role::FleetManager => "Manages trucks, drivers, maintenance and assignments",
            Role::Auditor => "Reads everything in the tenant and changes nothing",
            Role::Customer => "External customer user, sees only its own partner",
            Role::Supplier => "External supplier user, sees only its own partner",
            Role::Driver => "Driver, sees only its own assignments",
            Role::PlatformAdmin => "Operates the platform: tenants and signing keys",
        }
    }

    /// Whether a user holding this role must be linked to a partner.
    pub fn needs_partner(self) -> bool {
        matches!(self, Role::Customer | Role::Supplier)
    }

    /// Whether a user holding this role must be linked to a driver.
    pub fn needs_driver(self) -> bool {
        matches!(self, Role::Driver)
    }

    /// What the role may do.
    pub fn permissions(self) -> &'static [Permission] {
        use Permission::*;
        match self {
            Role::Admin => &[
                UsersRead,
                UsersWrite,
                RolesGrant,
                TenantRead,
                PartnersRead,
                PartnersWrite,
                PartnerContactsWrite,
                FleetRead,
                FleetWrite,
                AssignmentsWrite,
                InventoryRead,
                InventoryWrite,
                StockReserve,
                MaterialSuppliersRead,
                ShipmentsRead,
                ShipmentsWrite,
                ShipmentsTrack,
            ],
            Role::Dispatcher => &[
                UsersRead,
                TenantRead,
                PartnersRead,
                PartnersWrite,
                PartnerContactsWrite,
                FleetRead,
                AssignmentsWrite,
                InventoryRead,
                StockReserve,
                MaterialSuppliersRead,
                ShipmentsRead,
                ShipmentsWrite,
                ShipmentsTrack,
            ],
            Role::WarehouseClerk => &[
                TenantRead,
                PartnersRead,
                InventoryRead,
                InventoryWrite,
                MaterialSuppliersRead,
                ShipmentsRead,
            ],
            Role::FleetManager => &[TenantRead, FleetRead, FleetWrite, ShipmentsRead],
            Role::Auditor => &[
                UsersRead,
                TenantRead,
                PartnersRead,
                FleetRead,
                InventoryRead,
                MaterialSuppliersRead,
                ShipmentsRead,
            ],
            // External users: row-level security narrows these to their own partner's rows.
            Role::Customer => &[PartnersRead, PartnerContactsWrite, ShipmentsRead],
            Role::Supplier => &[
                PartnersRead,
                PartnerContactsWrite,
                MaterialSuppliersRead,
                ShipmentsRead,
            ],
            Role::Driver => &[FleetRead, ShipmentsRead, ShipmentsTrack],
            Role::PlatformAdmin => &[TenantsCreate, SigningKeysRotate],
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Something a caller may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read users of the tenant.
    UsersRead,
    /// Create, update, delete and undelete users.
    UsersWrite,
    /// Grant and revoke roles.
    RolesGrant,
    /// Read the caller's tenant.
    TenantRead,
    /// Create tenants (platform operation).
    TenantsCreate,
    /// Rotate the token signing key (platform operation).
    SigningKeysRotate,
    /// Read partners, contacts, addresses.
    PartnersRead,
    /// Write partners, their roles and profiles, contacts and addresses.
    PartnersWrite,
    /// Write contacts and addresses (external users: of their own partner only, by RLS), and
    /// a partner's display name.
    PartnerContactsWrite,
    /// Read trucks, drivers, maintenance, assignments.
    FleetRead,
    /// Write trucks, drivers, maintenance records.
    FleetWrite,
    /// Create and cancel assignments (book trucks and drivers for shipments).
    AssignmentsWrite,
    /// Read materials, warehouses, stock.
    InventoryRead,
    /// Manage materials, warehouses and supplier links; receive, issue, adjust and transfer stock.
    InventoryWrite,
    /// Reserve stock for shipments, release and consume reservations.
    StockReserve,
    /// Read material-supplier links (supplier users: their own only, by RLS).
    MaterialSuppliersRead,
    /// Read shipments and tracking.
    ShipmentsRead,
    /// Create, plan, dispatch and cancel shipments.
    ShipmentsWrite,
    /// Record tracking events, report exceptions and deliver (drivers: their own shipments
    /// only, by RLS).
    ShipmentsTrack,
}

impl Permission {
    /// The name reported in PERMISSION_DENIED answers.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::UsersRead => "identity.users.read",
            Permission::UsersWrite => "identity.users.write",
            Permission::RolesGrant => "identity.roles.grant",
            Permission::TenantRead => "identity.tenant.read",
            Permission::TenantsCreate => "identity.tenants.create",
            Permission::SigningKeysRotate => "identity.signing_keys.rotate",
            Permission::PartnersRead => "partner.partners.read",
            Permission::PartnersWrite => "partner.partners.write",
            Permission::PartnerContactsWrite => "partner.contacts.write",
            Permission::FleetRead => "fleet.read",
            Permission::FleetWrite => "fleet.write",
            Permission::AssignmentsWrite => "fleet.assignments.write",
            Permission::InventoryRead => "inventory.read",
            Permission::InventoryWrite => "inventory.write",
            Permission::StockReserve => "inventory.stock.reserve",
            Permission::MaterialSuppliersRead => "inventory.material_suppliers.read",
            Permission::ShipmentsRead => "shipment.shipments.read",
            Permission::ShipmentsWrite => "shipment.shipments.write",
            Permission::ShipmentsTrack => "shipment.shipments.track",
        }
    }
}

/// Whether any of `roles` grants `permission`.
pub fn allows(roles: &[Role], permission: Permission) -> bool {
    roles.iter().any(|r| r.permissions().contains(&permission))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn auditor_reads_but_never_writes() {
        let writes = [
            Permission::UsersWrite,
            Permission::RolesGrant,
            Permission::PartnersWrite,
            Permission::PartnerContactsWrite,
            Permission::FleetWrite,
            Permission::AssignmentsWrite,
            Permission::InventoryWrite,
            Permission::StockReserve,
            Permission::ShipmentsWrite,
            Permission::TenantsCreate,
            Permission::SigningKeysRotate,
        ];
        for p in writes {
            assert!(!allows(&[Role::Auditor], p), "auditor must not have {p:?}");
        }
        assert!(allows(&[Role::Auditor], Permission::UsersRead));
    }

    #[test]
    fn fleet_managers_manage_the_fleet_and_dispatchers_book_it() {
        assert!(allows(&[Role::FleetManager], Permission::FleetWrite));
        assert!(!allows(&[Role::FleetManager], Permission::AssignmentsWrite));
        assert!(allows(&[Role::Dispatcher], Permission::AssignmentsWrite));
        assert!(!allows(&[Role::Dispatcher], Permission::FleetWrite));
        assert!(!allows(&[Role::Driver], Permission::AssignmentsWrite));
    }

    #[test]
    fn only_platform_admins_create_tenants() {
        for role in Role::ALL {
            assert_eq!(
                allows(&[role], Permission::TenantsCreate),
                role == Role::PlatformAdmin
            );
        }
    }
}
