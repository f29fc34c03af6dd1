//! Fleet's types and rules: parsed at the edge, valid by construction. No I/O, no protobuf.

pub mod truck;
pub mod window;
