//! The public contract as Rust: one module per `proto/logistics/<context>/v1` package, plus the
//! encoded descriptor set that every server hands to gRPC reflection.
//!
//! Nothing here is written by hand except this module tree; change the `.proto` files instead.

/// Serialized `FileDescriptorSet` of every package, for `tonic-reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/logistics_descriptor.bin"));

/// `logistics.type.*`: value types every package shares. Named `r#type` because generated
/// code refers to it by the package name.
pub mod r#type {
    /// `logistics.type.v1`: money, exact decimals, time windows.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("logistics.r#type.v1");
    }
}

/// `logistics.partner.*`
pub mod partner {
    /// `logistics.partner.v1`: partners, roles, profiles, contacts, addresses.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("logistics.partner.v1");
    }
}

/// `logistics.identity.*`
pub mod identity {
    /// `logistics.identity.v1`: tenants, users, roles, sessions and signing keys.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("logistics.identity.v1");
    }
}

/// `logistics.fleet.*`
pub mod fleet {
    /// `logistics.fleet.v1`: trucks, drivers, maintenance records and assignments.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("logistics.fleet.v1");
    }
}

/// `logistics.inventory.*`
pub mod inventory {
    /// `logistics.inventory.v1`: materials, warehouses, stock levels, ledger, reservations,
    /// material suppliers.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("logistics.inventory.v1");
    }
}

/// `logistics.shipment.*`
pub mod shipment {
    /// `logistics.shipment.v1`: shipments, items, stops, tracking events, proof of delivery and
    /// the shipment event stream.
    #[allow(clippy::all, missing_docs)]
    pub mod v1 {
        tonic::include_proto!("logistics.shipment.v1");
    }
}
