//! The partner service: suppliers, customers and carriers of a tenant, their roles, supplier
//! and customer profiles, contacts and addresses. Tax ids, e-mail addresses and phone numbers
//! are sealed with application-side AEAD before they reach the database.
//!
//! `main.rs` only parses the command line; [`app::run`] is what tests and the binary serve.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod rotation;
pub mod sealing;
pub mod store;
