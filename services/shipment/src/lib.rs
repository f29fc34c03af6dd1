//! The shipment service: shipments with their items and stops, tracking events and proof of
//! delivery, and the sagas that plan (reserve stock with inventory, book a truck and a driver
//! with fleet), dispatch and cancel them, persisted step by step so that a crash finishes or
//! undoes them. Events go to an outbox in the transaction of each change and are streamed to
//! watchers.
//!
//! `main.rs` only parses the command line; [`app::run`] is what tests and the binary serve.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod peers;
pub mod publisher;
pub mod saga;
pub mod schema;
pub mod sealing;
pub mod store;
