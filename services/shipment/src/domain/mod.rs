//! Shipment's types and rules: parsed at the edge, valid by construction. No I/O, no protobuf.

pub mod status;
