//! Shipment's types and rules: parsed at the edge, valid by construction. No I/O, no protobuf.

pub mod shipment;
pub mod status;
