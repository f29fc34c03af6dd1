//! Refresh tokens on the wire: `lrt_` + base64url(tenant id ‖ 32 random bytes). The tenant id
//! lets an unauthenticated RefreshToken call set its row-level-security context; the random part
//! is the secret, stored only as its SHA-256.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;

const PREFIX: &str = "lrt_";

/// A refresh token, parsed or freshly made.
pub struct RefreshToken {
    /// The tenant the session lives in.
    pub tenant_id: Uuid,
    secret: [u8; 32],
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("tenant_id", &self.tenant_id)
            .finish_non_exhaustive()
    }
}

impl RefreshToken {
    /// A new random token for `tenant_id`.
    pub fn generate(tenant_id: Uuid) -> Self {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret).expect("the OS has randomness");
        Self { tenant_id, secret }
    }

    /// Parses the wire form; `None` for anything malformed.
    pub fn parse(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw.strip_prefix(PREFIX)?).ok()?;
        let (tenant, secret) = bytes.split_at_checked(16)?;
        Some(Self {
            tenant_id: Uuid::from_slice(tenant).ok()?,
            secret: secret.try_into().ok()?,
        })
    }

    /// What the database stores.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret).into()
    }

    /// The wire form, to hand to the client once.
    pub fn to_wire(&self) -> SecretString {
        let mut bytes = Vec::with_capacity(48);
        bytes.extend_from_slice(self.tenant_id.as_bytes());
        bytes.extend_from_slice(&self.secret);
        SecretString::from(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }
}

/// Exposes a wire token for the response message.
pub fn expose(token: &SecretString) -> String {
    token.expose_secret().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_and_keeps_its_tenant_and_hash() {
        let tenant = Uuid::now_v7();
        let token = RefreshToken::generate(tenant);
        let parsed = RefreshToken::parse(&expose(&token.to_wire())).expect("parses");
        assert_eq!(parsed.tenant_id, tenant);
        assert_eq!(parsed.hash(), token.hash());
    }

    #[test]
    fn malformed_tokens_are_refused() {
        assert!(RefreshToken::parse("").is_none());
        assert!(RefreshToken::parse("lrt_").is_none());
        assert!(RefreshToken::parse("lrt_AAAA").is_none());
        assert!(
            RefreshToken::parse(
                "xyz_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
            )
            .is_none()
        );
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let token = RefreshToken::generate(Uuid::nil());
        assert!(!format!("{token:?}").contains("secret"));
    }
}
