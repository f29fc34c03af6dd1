//! The identity service: tenants, users, roles (m:n), sessions with single-use refresh tokens,
//! and the Ed25519 keys that sign every access token of the platform.
//!
//! `main.rs` only parses the command line; [`app::run`] is what tests and the binary both serve.

pub mod api;
pub mod app;
pub mod bootstrap;
pub mod config;
pub mod domain;
pub mod passwords;
pub mod signer;
pub mod store;
