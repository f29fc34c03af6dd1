//! The shipment service: shipments with their items and stops, tracking events and proof of
//! delivery, and the planning saga that reserves stock (inventory) and books a truck and driver
//! (fleet) for a shipment, persisted step by step so that a crash finishes or undoes it.
//!
//! `main.rs` only parses the command line; [`app::run`] is what tests and the binary serve.

pub mod domain;
