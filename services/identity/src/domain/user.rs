//! A user's attributes as types that can only be valid.

use logistics_platform::FieldViolation;
use logistics_platform::authz::Role;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

pub use logistics_platform::fields::{DisplayName, Email};

/// A new password: 12 to 128 characters (NIST 800-63B length rules; no composition rules).
/// Wrapped so that `Debug` and logs never show it.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Longest accepted password, in characters (bounds hashing work).
pub const MAX_PASSWORD_CHARS: usize = 128;

impl Password {
    /// Parses `raw` for the request field `field`. The message never repeats the value.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let chars = raw.chars().count();
        if chars < MIN_PASSWORD_CHARS {
            return Err(FieldViolation::new(
                field,
                format!("must be at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if chars > MAX_PASSWORD_CHARS {
            return Err(FieldViolation::new(
                field,
                format!("must be at most {MAX_PASSWORD_CHARS} characters"),
            ));
        }
        Ok(Self(SecretString::from(raw.to_owned())))
    }

    /// The secret, for hashing only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

/// The links a user's roles need: customers and suppliers act for a partner, drivers are a
/// driver. Returns the violations of a user holding `roles` with these links.
pub fn check_role_links(
    roles: &[Role],
    partner_id: Option<Uuid>,
    driver_id: Option<Uuid>,
) -> Vec<(&'static str, String)> {
    let mut missing = Vec::new();
    for role in roles {
        if role.needs_partner() && partner_id.is_none() {
            missing.push(("partner_id", format!("is required for the {role} role")));
        }
        if role.needs_driver() && driver_id.is_none() {
            missing.push(("driver_id", format!("is required for the {role} role")));
        }
    }
    missing
}

/// A user to create, fully validated.
#[derive(Debug)]
pub struct NewUser {
    /// Login e-mail.
    pub email: Email,
    /// Shown name.
    pub display_name: DisplayName,
    /// Initial password (hashed before it goes anywhere).
    pub password: Password,
    /// Roles granted at once.
    pub roles: Vec<Role>,
    /// Partner link.
    pub partner_id: Option<Uuid>,
    /// Driver link.
    pub driver_id: Option<Uuid>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_violation_never_repeats_the_password() {
        let err = Password::parse("password", "hunter2").expect_err("too short");
        assert!(!err.description.contains("hunter2"));
        assert!(Password::parse("password", &"x".repeat(129)).is_err());
        assert!(Password::parse("password", "correct horse battery").is_ok());
    }

    #[test]
    fn customers_need_a_partner_and_drivers_a_driver() {
        assert_eq!(
            check_role_links(&[Role::Customer], None, None)[0].0,
            "partner_id"
        );
        assert_eq!(
            check_role_links(&[Role::Driver], None, None)[0].0,
            "driver_id"
        );
        assert!(check_role_links(&[Role::Admin], None, None).is_empty());
        assert!(check_role_links(&[Role::Supplier], Some(Uuid::nil()), None).is_empty());
    }
}
