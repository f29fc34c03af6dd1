//! The platform's benchmark. Today it loads the data set ([`load`]); the gRPC scenarios and
//! their database-only and bare-gRPC bounds build on it (issue 9).

pub mod load;
