//! Application-side encryption of sensitive fields and blind indexes for equality lookups.
//!
//! A ciphertext is `0x01 | key id length | key id | 24-byte nonce | XChaCha20-Poly1305 output`.
//! The key id inside each ciphertext lets keys rotate without downtime: new values use the
//! active key, old ones still open with the key they name. Callers pass associated data naming
//! the row and column (`tenant|table|column|id`), so a ciphertext copied elsewhere fails to open.
//! Keys come from configuration only; nothing here logs or formats a key or a plaintext.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};
use hmac::Mac;
use sha2::Sha256;

/// Format version byte of ciphertexts.
const VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// Why a keyring could not be built or a ciphertext not opened. Carries no secret material.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    /// The configured key list is malformed.
    #[error("key list: {0}")]
    BadKeyList(String),
    /// The ciphertext names a key this keyring does not hold.
    #[error("ciphertext key id {0} is not configured")]
    UnknownKey(String),
    /// The ciphertext is malformed, was tampered with, or belongs to another row or column.
    #[error("ciphertext does not open")]
    Opaque,
}

/// A set of 32-byte keys by id, one of them active for new ciphertexts.
#[derive(Clone)]
pub struct Keyring {
    active: String,
    keys: HashMap<String, [u8; 32]>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("active", &self.active)
            .field("key_ids", &ids)
            .finish()
    }
}

impl Keyring {
    /// Parses `id:base64key[,id:base64key...]`; the first key is the active one. Ids are 1 to 32
    /// characters of `[A-Za-z0-9_-]`; keys are 32 bytes in standard base64.
    pub fn parse(spec: &str) -> Result<Self, CryptoError> {
        let mut keys = HashMap::new();
        let mut active = None;
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, key) = entry
                .split_once(':')
                .ok_or_else(|| CryptoError::BadKeyList("each entry is id:base64key".into()))?;
            if id.is_empty()
                || id.len() > 32
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(CryptoError::BadKeyList(
                    "key ids are 1-32 characters of A-Z a-z 0-9 _ -".into(),
                ));
            }
            let bytes = STANDARD
                .decode(key)
                .map_err(|_| CryptoError::BadKeyList(format!("key {id} is not base64")))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|_| CryptoError::BadKeyList(format!("key {id} must be 32 bytes")))?;
            if keys.insert(id.to_owned(), key).is_some() {
                return Err(CryptoError::BadKeyList(format!(
                    "key id {id} appears twice"
                )));
            }
            active.get_or_insert_with(|| id.to_owned());
        }
        let active = active.ok_or_else(|| CryptoError::BadKeyList("no key given".into()))?;
        Ok(Self { active, keys })
    }

    /// A keyring of one fresh random key, for tests and first-run development stacks.
    pub fn generate(id: &str) -> Self {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the OS has randomness");
        Self {
            active: id.to_owned(),
            keys: HashMap::from([(id.to_owned(), key)]),
        }
    }

    /// The id of the key new ciphertexts use.
    pub fn active_key_id(&self) -> &str {
        &self.active
    }

    /// Encrypts `plaintext` bound to `aad` with the active key.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Vec<u8> {
        let key = &self.keys[&self.active];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS has randomness");
        let cipher = XChaCha20Poly1305::new(key.into());
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .expect("encryption of an in-memory buffer cannot fail");
        let id = self.active.as_bytes();
        let mut out = Vec::with_capacity(2 + id.len() + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.push(u8::try_from(id.len()).expect("ids are at most 32 bytes"));
        out.extend_from_slice(id);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Decrypts a ciphertext made by [`Keyring::seal`] with the same `aad`.
    pub fn open(&self, ciphertext: &[u8], aad: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (id, nonce, sealed) = split(ciphertext)?;
        let key = self
            .keys
            .get(id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let nonce = XNonce::try_from(nonce).map_err(|_| CryptoError::Opaque)?;
        XChaCha20Poly1305::new(key.into())
            .decrypt(&nonce, Payload { msg: sealed, aad })
            .map_err(|_| CryptoError::Opaque)
    }

    /// The key id a ciphertext was sealed with (to find rows that still need re-encryption).
    pub fn key_id_of(ciphertext: &[u8]) -> Result<&str, CryptoError> {
        split(ciphertext).map(|(id, _, _)| id)
    }
}

fn split(ciphertext: &[u8]) -> Result<(&str, &[u8], &[u8]), CryptoError> {
    let [version, id_len, rest @ ..] = ciphertext else {
        return Err(CryptoError::Opaque);
    };
    if *version != VERSION {
        return Err(CryptoError::Opaque);
    }
    let id_len = usize::from(*id_len);
    if rest.len() < id_len + NONCE_LEN + 16 {
        return Err(CryptoError::Opaque);
    }
    let (id, rest) = rest.split_at(id_len);
    let (nonce, sealed) = rest.split_at(NONCE_LEN);
    let id = std::str::from_utf8(id).map_err(|_| CryptoError::Opaque)?;
    Ok((id, nonce, sealed))
}

/// Keyed HMAC-SHA256 of a normalised value: equal inputs give equal indexes, and without the
/// key the index reveals nothing. Used where encrypted columns need equality lookup.
#[derive(Clone)]
pub struct BlindIndex {
    key: [u8; 32],
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlindIndex(..)")
    }
}

impl BlindIndex {
    /// An index keyed with `key`.
    pub fn new(key: [u8; 32]) -> Self {
        Self { key }
    }

    /// The index of `value` in `domain` (e.g. `partner.tax_id`), so equal values in different
    /// columns do not share an index.
    pub fn compute(&self, domain: &str, value: &str) -> Vec<u8> {
        self.compute_bytes(domain, value.as_bytes())
    }

    /// The index of arbitrary bytes in `domain`.
    pub fn compute_bytes(&self, domain: &str, value: &[u8]) -> Vec<u8> {
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(spec: &str) -> Keyring {
        Keyring::parse(spec).expect("valid key list")
    }

    const K1: &str = "k1:AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const K2: &str = "k2:AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

    #[test]
    fn sealed_values_open_only_with_the_same_associated_data() {
        let keys = ring(K1);
        let sealed = keys.seal(b"DE123456789", b"t|partners|tax_id|1");
        assert_eq!(
            keys.open(&sealed, b"t|partners|tax_id|1").as_deref(),
            Ok(&b"DE123456789"[..])
        );
        assert_eq!(
            keys.open(&sealed, b"t|partners|tax_id|2"),
            Err(CryptoError::Opaque)
        );
        assert!(!sealed.windows(11).any(|w| w == b"DE123456789"));
    }

    #[test]
    fn old_ciphertexts_open_after_rotation_and_new_ones_use_the_new_key() {
        let old = ring(K1).seal(b"secret", b"aad");
        let rotated = ring(&format!("{K2},{K1}"));
        assert_eq!(rotated.open(&old, b"aad").as_deref(), Ok(&b"secret"[..]));
        let new = rotated.seal(b"secret", b"aad");
        assert_eq!(Keyring::key_id_of(&new), Ok("k2"));
        assert_eq!(
            ring(K1).open(&new, b"aad"),
            Err(CryptoError::UnknownKey("k2".into()))
        );
    }

    #[test]
    fn tampered_ciphertexts_do_not_open() {
        let keys = ring(K1);
        let mut sealed = keys.seal(b"secret", b"aad");
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(keys.open(&sealed, b"aad"), Err(CryptoError::Opaque));
        assert_eq!(keys.open(&[1, 0], b"aad"), Err(CryptoError::Opaque));
    }

    #[test]
    fn malformed_key_lists_are_refused_without_echoing_keys() {
        assert!(Keyring::parse("").is_err());
        assert!(Keyring::parse("k1:short").is_err());
        let err = Keyring::parse(&format!("{K1},{K1}")).expect_err("duplicate");
        assert!(!err.to_string().contains("AQEB"));
    }

    #[test]
    fn blind_indexes_are_deterministic_per_domain() {
        let index = BlindIndex::new([9; 32]);
        assert_eq!(index.compute("a", "x"), index.compute("a", "x"));
        assert_ne!(index.compute("a", "x"), index.compute("b", "x"));
        assert_ne!(
            index.compute("a", "x"),
            BlindIndex::new([8; 32]).compute("a", "x")
        );
    }
}
