//! The platform crate: what every service of the logistics platform repeats, in one place.
//!
//! - [`server`]: health, reflection, TLS, layers and graceful shutdown around a service's routes;
//! - [`telemetry`]: JSON logs and a request id per call;
//! - [`otel`]: OpenTelemetry traces over OTLP, when a collector is configured;
//! - [`metrics`]: Prometheus metrics of calls and database pools on `GET /metrics`;
//! - [`error`]: the one error type and its mapping to gRPC status with rich details;
//! - [`auth`] and [`authz`]: access-token verification and the role → permission table;
//! - [`context`]: the row-level-security context every transaction starts with;
//! - [`aip`]: page tokens, filters, order_by, etags, field masks, idempotency;
//! - [`crypto`]: field encryption with rotating keys and blind indexes;
//! - [`sealing`]: personal data sealed per tenant, column and row, and sealed idempotent replies;
//! - [`decimal`]: exact decimals parsed from request text by a stated rule;
//! - [`fields`]: e-mail, names, country and currency codes, phone numbers, coordinates, money;
//! - [`config`] and [`db`]: configuration pieces, provisioning, migrations, pools;
//! - [`service`]: the start-up every service's `app::run` shares;
//! - [`wire`]: protobuf timestamps and enum numbers to and from Rust types;
//! - [`window`]: half-open time windows.

pub mod aip;
pub mod auth;
pub mod authz;
pub mod config;
pub mod context;
pub mod crypto;
pub mod db;
pub mod decimal;
pub mod error;
pub mod fields;
pub mod metrics;
pub mod otel;
pub mod sealing;
pub mod server;
pub mod service;
pub mod telemetry;
pub mod window;
pub mod wire;

pub use error::{Error, FieldViolation, Result};

/// Declares an enum whose values are stored as fixed lower-case names (a CHECK in the schema
/// lists the same names), with `ALL`, `as_str` and `parse`.
#[macro_export]
macro_rules! stored_names {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The value with this stored name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}
