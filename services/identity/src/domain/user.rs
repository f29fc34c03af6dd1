//! A user's attributes as types that can only be valid.

use logistics_platform::FieldViolation;
use logistics_platform::authz::Role;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

/// A login e-mail address, trimmed, 3 to 254 characters, one `@` with text on both sides and a
/// dot in the domain. Stored as given; compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses `raw` for the request field `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let value = raw.trim();
        let bad = |why: &str| FieldViolation::new(field, why);
        if value.is_empty() {
            return Err(bad("is required"));
        }
        if value.chars().count() > 254 {
            return Err(bad("must be at most 254 characters"));
        }
        let Some((local, domain)) = value.split_once('@') else {
            return Err(bad("must be an e-mail address like name@example.com"));
        };
        let well_formed = !local.is_empty()
            && local.len() <= 64
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !value.chars().any(|c| c.is_whitespace() || c.is_control());
        if !well_formed {
            return Err(bad("must be an e-mail address like name@example.com"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The address as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name shown to people: trimmed, 1 to 200 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    /// Parses `raw` for the request field `field`.
    pub fn parse(field: &str, raw: &str) -> Result<Self, FieldViolation> {
        let value = raw.trim();
        if value.is_empty() {
            return Err(FieldViolation::new(field, "is required"));
        }
        if value.chars().count() > 200 {
            return Err(FieldViolation::new(field, "must be at most 200 characters"));
        }
        if value.chars().any(char::is_control) {
            return Err(FieldViolation::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

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
    fn an_email_needs_a_local_part_and_a_dotted_domain() {
        assert!(Email::parse("email", " Ada@Example.com ").is_ok());
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.d",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_password_violation_never_repeats_the_password() {
        let err = Password::parse("password", "hunter2").expect_err("too short");
        assert!(!err.description.contains("hunter2"));
        assert!(Password::parse("password", &"x".repeat(129)).is_err());
        assert!(Password::parse("password", "correct horse battery").is_ok());
    }

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("n", "  Ada ").map(|n| n.as_str().to_owned()),
            Ok("Ada".into())
        );
        assert!(DisplayName::parse("n", "   ").is_err());
        assert!(DisplayName::parse("n", &"a".repeat(201)).is_err());
        assert!(DisplayName::parse("n", "a\u{7}b").is_err());
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
