//! The platform's benchmark: loads the data set ([`load`] straight into PostgreSQL, [`populate`]
//! through the services for what they seal), then drives the scenarios over gRPC and against
//! their database-only and bare-gRPC bounds ([`run`]). `tests/explain.rs` uses the same data set
//! to prove the hot queries use indexes.

pub mod call;
pub mod cpu;
pub mod drive;
pub mod explain;
pub mod inventory;
pub mod load;
pub mod login;
pub mod memory;
pub mod partner;
pub mod populate;
pub mod run;
pub mod shipment;
