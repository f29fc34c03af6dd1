//! The platform's benchmark. Today it loads the data set ([`load`]), which `tests/explain.rs`
//! uses to prove the hot queries use indexes; the gRPC scenarios and
//! their database-only and bare-gRPC bounds build on it (issue 9).

pub mod drive;
pub mod inventory;
pub mod load;
pub mod memory;
pub mod run;
