//! Identity's types and rules: what a valid e-mail, name and password are, how refresh tokens
//! look on the wire, when an account locks. No I/O, no protobuf; parse here, then pass the
//! parsed types inward.

pub mod lockout;
pub mod refresh_token;
pub mod user;
