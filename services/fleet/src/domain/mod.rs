//! Fleet's types and rules: parsed at the edge, valid by construction. No I/O, no protobuf.

pub mod assignment;
pub mod driver;
pub mod maintenance;
pub mod quantity;
pub mod truck;
pub mod window;
