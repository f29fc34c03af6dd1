//! Partner's types and rules: what a valid partner, tax id, contact, address and profile are.
//! No I/O, no protobuf; the API parses requests into these, collecting every violation.

pub mod address;
pub mod contact;
pub mod partner;
pub mod profile;
