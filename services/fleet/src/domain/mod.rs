//! Fleet's types and rules: parsed at the edge, valid by construction. No I/O, no protobuf.

/// Declares an enum whose values are stored as fixed lower-case names (a CHECK in the schema
/// lists the same names), with `ALL`, `as_str` and `parse`.
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

pub mod assignment;
pub mod driver;
pub mod maintenance;
pub mod quantity;
pub mod truck;
pub mod window;
