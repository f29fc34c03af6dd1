//! Login over gRPC, against its bound: the argon2id verification it must do (OWASP parameters,
//! on purpose), run in-process at the same concurrency. Login is meant to be slow; the figure
//! says how many logins a second the machine affords, not a target to beat.
//!
//! Each call logs in one of [`USERS`] users made for the run, in turn: one user's logins are
//! serialised by design (the row is locked while its password is checked, so the failure count
//! and the lockout cannot race), which would measure the lock, not the service.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt as _, TryStreamExt as _};

use identity::passwords::PasswordHasher;
use logistics_proto::identity::v1 as pb;
use pb::identity_service_client::IdentityServiceClient;
use secrecy::SecretString;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::call::{authed, grpc};

/// Users made for the Login scenario: more than its highest concurrency.
pub const USERS: usize = 160;

/// The ways Login is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginPath {
    /// Login over gRPC (a session row written each time).
    Grpc,
    /// The password verification alone, in-process.
    Argon2,
}

/// Logs the admin in, or verifies its password.
#[derive(Clone)]
pub struct Target {
    client: IdentityServiceClient<Channel>,
    hasher: PasswordHasher,
    hash: String,
    tenant_id: Uuid,
    emails: Arc<Vec<String>>,
    next: Arc<AtomicUsize>,
    password: String,
}

impl Target {
    /// Connects to identity at `url` and makes [`USERS`] users with `password` as the admin
    /// (`token`); hashes `password` once for the argon2 path.
    pub async fn new(
        url: &str,
        tenant_id: Uuid,
        token: &str,
        password: &str,
    ) -> anyhow::Result<Self> {
        let hasher = PasswordHasher::new()?;
        let hash = hasher
            .hash(SecretString::from(password.to_owned()))
            .await
            .map_err(|e| anyhow::anyhow!("hashing: {e}"))?;
        let client = IdentityServiceClient::new(crate::call::channel(url).await?);
        let run = Uuid::now_v7().simple().to_string();
        let emails: Vec<String> = futures::stream::iter(0..USERS)
            .map(|i| {
                let mut client = client.clone();
                let email = format!("login-{i}-{}@bench.example", &run[20..]);
                async move {
                    client
                        .create_user(authed(
                            token,
                            pb::CreateUserRequest {
                                request_id: Uuid::now_v7().to_string(),
                                email: email.clone(),
                                display_name: format!("Bench login {i}"),
                                password: password.to_owned(),
                                ..Default::default()
                            },
                        ))
                        .await
                        .map(|_| email)
                }
            })
            .buffer_unordered(8)
            .try_collect()
            .await
            .map_err(|s| anyhow::anyhow!("creating the login users: {}", s.message()))?;
        Ok(Self {
            client,
            hasher,
            hash,
            tenant_id,
            emails: Arc::new(emails),
            next: Arc::new(AtomicUsize::new(0)),
            password: password.to_owned(),
        })
    }

    /// One login (or one verification).
    pub async fn login(&self, path: LoginPath) -> Result<(), String> {
        match path {
            LoginPath::Grpc => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                grpc(
                    self.client
                        .clone()
                        .login(pb::LoginRequest {
                            tenant_id: self.tenant_id.to_string(),
                            email: self.emails[n % self.emails.len()].clone(),
                            password: self.password.clone(),
                        })
                        .await,
                )
            }
            LoginPath::Argon2 => {
                let password = SecretString::from(self.password.clone());
                match self.hasher.verify(password, Some(self.hash.clone())).await {
                    Ok(true) => Ok(()),
                    Ok(false) => Err("the password did not verify".to_owned()),
                    Err(e) => Err(e.to_string()),
                }
            }
        }
    }
}
