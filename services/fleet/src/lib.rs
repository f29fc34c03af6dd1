//! The fleet service: trucks, drivers, their maintenance, and the assignments that book a truck
//! and a driver for a shipment over a time window. Two active assignments of one truck or one
//! driver never overlap: the database refuses it (see `migrations/0001_fleet.sql`); the service
//! checks first only to say every reason at once.
//!
//! `main.rs` only parses the command line; [`app::run`] is what tests and the binary serve.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod rotation;
pub mod schema;
pub mod sealing;
pub mod store;
