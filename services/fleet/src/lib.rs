//! The fleet service: trucks, drivers, their maintenance, and the assignments that book a truck
//! and a driver for a shipment over a time window. Two active assignments of one truck or one
//! driver never overlap: the database refuses it (see `migrations/0001_fleet.sql`).
//!
//! Built so far: the schema with its constraints, triggers and row-level security, and the
//! domain types that validate trucks and windows. The gRPC API (`logistics.fleet.v1`) comes
//! next, on the same layout as partner.

pub mod domain;
pub mod schema;
