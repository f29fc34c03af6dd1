//! The inventory service: materials, warehouses, stock levels with their append-only ledger,
//! reservations for shipments, and which suppliers sell which material. The database keeps the
//! books honest on its own (see `migrations/0001_inventory.sql`): levels change only together
//! with their ledger entry, never below zero, and reserved always equals the held reservations.
//!
//! `main.rs` only parses the command line; [`app::run`] is what tests and the binary serve.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod schema;
pub mod store;
