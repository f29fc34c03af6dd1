//! Password hashing with argon2id at OWASP's parameters (19 MiB, 2 passes, 1 lane), always off
//! the async runtime. Verification of an unknown user runs against a dummy hash, so an unknown
//! e-mail and a wrong password cost the same time.
//!
//! At most one hash per core runs at once; the rest wait their turn. More would not be faster
//! (argon2 is CPU-bound) but would cost 19 MiB each: 128 logins at once would otherwise take
//! 2.4 GiB, a denial of service by memory.

use std::sync::Arc;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use logistics_platform::Error;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// Memory cost in KiB (OWASP Password Storage Cheat Sheet, argon2id option 2).
pub const MEMORY_KIB: u32 = 19 * 1024;
/// Passes.
pub const ITERATIONS: u32 = 2;
/// Lanes.
pub const PARALLELISM: u32 = 1;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct PasswordHasher {
    argon2: Argon2<'static>,
    /// A hash of a random password with the same parameters, for unknown users.
    dummy_hash: String,
    /// One permit per hash allowed to run at once.
    permits: Arc<Semaphore>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHasher(argon2id)")
    }
}

impl PasswordHasher {
    /// A hasher with the OWASP parameters.
    pub fn new() -> anyhow::Result<Self> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, PARALLELISM, None)
            .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("randomness: {e}"))?;
        let dummy_hash = argon2
            .hash_password(&random)
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?
            .to_string();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self::with_permits(argon2, dummy_hash, cores))
    }

    fn with_permits(argon2: Argon2<'static>, dummy_hash: String, permits: usize) -> Self {
        Self {
            argon2,
            dummy_hash,
            permits: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, Error> + Send + 'static,
    ) -> Result<T, Error> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| Error::Internal(e.into()))?;
        tokio::task::spawn_blocking(work)
            .await
            .map_err(|e| Error::Internal(e.into()))?
    }

    /// The PHC string of `password` with a fresh salt.
    pub async fn hash(&self, password: SecretString) -> Result<String, Error> {
        let argon2 = self.argon2.clone();
        self.off_runtime(move || {
            argon2
                .hash_password(password.expose_secret().as_bytes())
                .map(|h| h.to_string())
                .map_err(|e| Error::Internal(anyhow::anyhow!("hashing a password: {e}")))
        })
        .await
    }

    /// Whether `password` matches `hash`; with no hash (unknown user) it does the same work
    /// against the dummy hash and answers false.
    pub async fn verify(
        &self,
        password: SecretString,
        hash: Option<String>,
    ) -> Result<bool, Error> {
        let argon2 = self.argon2.clone();
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.dummy_hash.clone());
        let matches = self
            .off_runtime(move || {
                let parsed = PasswordHash::new(&hash)
                    .map_err(|e| Error::Internal(anyhow::anyhow!("stored hash unreadable: {e}")))?;
                Ok(argon2
                    .verify_password(password.expose_secret().as_bytes(), &parsed)
                    .is_ok())
            })
            .await?;
        Ok(known && matches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hash_verifies_its_password_only_and_uses_argon2id_owasp_parameters() {
        let hasher = PasswordHasher::new().expect("hasher");
        let hash = hasher
            .hash(SecretString::from("correct horse battery"))
            .await
            .expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(!hash.contains("correct horse"));
        let ok = hasher
            .verify(
                SecretString::from("correct horse battery"),
                Some(hash.clone()),
            )
            .await;
        assert_eq!(ok.ok(), Some(true));
        let wrong = hasher
            .verify(SecretString::from("wrong horse battery"), Some(hash))
            .await;
        assert_eq!(wrong.ok(), Some(false));
        let unknown = hasher
            .verify(SecretString::from("correct horse battery"), None)
            .await;
        assert_eq!(unknown.ok(), Some(false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_there_are_permits() {
        let base = PasswordHasher::new().expect("hasher");
        let hasher = PasswordHasher::with_permits(base.argon2.clone(), base.dummy_hash.clone(), 1);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let calls = (0..6).map(|_| {
            let (hasher, running, most) = (hasher.clone(), running.clone(), most.clone());
            tokio::spawn(async move {
                hasher
                    .off_runtime(move || {
                        let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(20));
                        running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        Ok(())
                    })
                    .await
            })
        });
        for call in futures::future::join_all(calls).await {
            assert!(matches!(call, Ok(Ok(()))));
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), 1);
        // The real work goes through the same gate.
        assert_eq!(
            hasher.verify(SecretString::from("x"), None).await.ok(),
            Some(false)
        );
    }
}
