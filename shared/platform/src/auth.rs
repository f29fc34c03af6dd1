//! Authentication: the access-token claims, a verifier that checks EdDSA JWTs against the keys
//! identity publishes, and the tower layer that runs it on every call except the open ones.
//!
//! The layer puts the verified [`Caller`] into the request extensions; handlers take it with
//! [`caller`]. Open methods (health, reflection, and the few a service declares, such as
//! identity's `Login`) get no caller at all, so a handler that forgets to check fails closed.

use std::collections::HashMap;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::future::BoxFuture;
use http::{Request, Response};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Mutex, RwLock};
use uuid::Uuid;

use crate::authz::{self, Permission, Role};
use crate::error::Error;

/// The signature algorithm of every access token.
pub const ALGORITHM: Algorithm = Algorithm::EdDSA;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 5;

/// Claims of an access token. Short names keep tokens small; each is documented.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer: the identity service's configured name.
    pub iss: String,
    /// Audience: the platform's configured audience.
    pub aud: String,
    /// Subject: the user id.
    pub sub: Uuid,
    /// Tenant id.
    pub tid: Uuid,
    /// Role names held when the token was issued.
    pub roles: Vec<String>,
    /// Session id; Logout revokes this session.
    pub sid: Uuid,
    /// Partner the user acts for (customer and supplier users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<Uuid>,
    /// Driver the user is (driver users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub did: Option<Uuid>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not valid before, seconds since the epoch.
    pub nbf: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Token id.
    pub jti: Uuid,
}

/// Who is calling, as established by a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The user.
    pub user_id: Uuid,
    /// The user's tenant; every query of the call is confined to it.
    pub tenant_id: Uuid,
    /// Roles from the token (unknown names are dropped).
    pub roles: Vec<Role>,
    /// The session the token belongs to.
    pub session_id: Uuid,
    /// Partner scope for customer and supplier users.
    pub partner_id: Option<Uuid>,
    /// Driver scope for driver users.
    pub driver_id: Option<Uuid>,
}

impl Caller {
    /// Fails with PERMISSION_DENIED unless one of the caller's roles grants `permission`.
    pub fn require(&self, permission: Permission) -> Result<(), Error> {
        if authz::allows(&self.roles, permission) {
            Ok(())
        } else {
            Err(Error::PermissionDenied(permission.as_str()))
        }
    }

    /// Whether the caller holds `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        authz::allows(&self.roles, permission)
    }

    fn from_claims(claims: Claims) -> Self {
        let roles = claims
            .roles
            .iter()
            .filter_map(|name| Role::parse(name))
            .collect();
        Self {
            user_id: claims.sub,
            tenant_id: claims.tid,
            roles,
            session_id: claims.sid,
            partner_id: claims.pid,
            driver_id: claims.did,
        }
    }
}

/// The verified caller of a call that went through [`AuthLayer`], or UNAUTHENTICATED.
pub fn caller<T>(request: &tonic::Request<T>) -> Result<Caller, Error> {
    request
        .extensions()
        .get::<Caller>()
        .cloned()
        .ok_or(Error::Unauthenticated)
}

/// One public key that verifies tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyingKey {
    /// The key id tokens name in their `kid` header.
    pub kid: String,
    /// The raw Ed25519 public key.
    pub public_key: [u8; 32],
}

impl VerifyingKey {
    /// The key from its JWK `x` member (base64url, no padding).
    pub fn from_jwk_x(kid: impl Into<String>, x: &str) -> anyhow::Result<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(x)?;
        let public_key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("an Ed25519 public key has 32 bytes"))?;
        Ok(Self {
            kid: kid.into(),
            public_key,
        })
    }

    /// The JWK `x` member.
    pub fn jwk_x(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public_key)
    }
}

/// Where a verifier gets the current public keys from.
pub trait KeySource: Send + Sync + 'static {
    /// Every key whose tokens may still be valid.
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Vec<VerifyingKey>>>;
}

/// Fetches keys from the identity service's `ListPublicKeys`, which is open to any caller.
#[derive(Debug, Clone)]
pub struct IdentityKeySource {
    channel: tonic::transport::Channel,
}

impl IdentityKeySource {
    /// A source that calls identity over `channel` (created lazily; nothing is sent until needed).
    pub fn new(channel: tonic::transport::Channel) -> Self {
        Self { channel }
    }
}

impl KeySource for IdentityKeySource {
    fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Vec<VerifyingKey>>> {
        use logistics_proto::identity::v1 as pb;
        Box::pin(async move {
            let mut client =
                pb::identity_service_client::IdentityServiceClient::new(self.channel.clone());
            let mut request = tonic::Request::new(pb::ListPublicKeysRequest {});
            request.set_timeout(Duration::from_secs(5));
            let keys = client.list_public_keys(request).await?.into_inner().keys;
            keys.into_iter()
                .filter(|k| k.alg == "EdDSA" && k.crv == "Ed25519")
                .map(|k| VerifyingKey::from_jwk_x(k.kid, &k.x))
                .collect()
        })
    }
}

/// How many verified tokens a verifier remembers (a few hundred bytes each).
const VERIFIED_CAPACITY: usize = 10_000;

/// Verifies access tokens, caching keys by `kid` and refetching when an unknown `kid` shows up
/// (at most once per `min_refresh_interval`, so random `kid`s cannot flood identity).
///
/// Tokens that verified are remembered by their SHA-256 until they expire: a client calls many
/// times with one token, and the Ed25519 check ran on every call (the benchmark's GetMaterial:
/// inventory's CPU per call fell from 0.254 to 0.177 ms with this). Only tokens that passed
/// every check are kept, and a remembered one is refused from the moment the full check would
/// refuse it for its age.
pub struct TokenVerifier {
    issuer: String,
    audience: String,
    source: Arc<dyn KeySource>,
    keys: RwLock<HashMap<String, DecodingKey>>,
    last_refresh: Mutex<Option<Instant>>,
    min_refresh_interval: Duration,
    verified: quick_cache::sync::Cache<[u8; 32], Verified>,
}

/// A token that passed verification: who it stands for, and until when (`exp`, seconds).
#[derive(Clone)]
struct Verified {
    caller: Caller,
    expires_at: i64,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish_non_exhaustive()
    }
}

impl TokenVerifier {
    /// A verifier for tokens from `issuer` meant for `audience`, with keys from `source`.
    pub fn new(
        issuer: impl Into<String>,
        audience: impl Into<String>,
        source: Arc<dyn KeySource>,
        min_refresh_interval: Duration,
    ) -> Self {
        Self {
            issuer: issuer.into(),
            audience: audience.into(),
            source,
            keys: RwLock::new(HashMap::new()),
            last_refresh: Mutex::new(None),
            min_refresh_interval,
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
        }
    }

    /// Adds a key without asking the source (identity does this when it rotates its own key).
    pub async fn insert_key(&self, key: &VerifyingKey) {
        self.keys
            .write()
            .await
            .insert(key.kid.clone(), decoding_key(key));
    }

    /// The caller a valid token stands for, or UNAUTHENTICATED. Rejects anything but EdDSA
    /// (including `alg: none`), unknown `kid`s, bad signatures, expired and not-yet-valid tokens,
    /// and tokens for another issuer or audience.
    pub async fn verify(&self, token: &str) -> Result<Caller, Error> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        if let Some(seen) = self.verified.get(&digest) {
            // The full check accepts a token until `exp` plus the leeway; so does this.
            if now < seen.expires_at.saturating_add(LEEWAY_SECONDS as i64) {
                return Ok(seen.caller);
            }
            self.verified.remove(&digest);
        }
        let (caller, expires_at) = self.verify_signed(token).await?;
        self.verified.insert(
            digest,
            Verified {
                caller: caller.clone(),
                expires_at,
            },
        );
        Ok(caller)
    }

    /// The full check: header, key, signature, claims. The caller and the token's `exp`.
    async fn verify_signed(&self, token: &str) -> Result<(Caller, i64), Error> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::Unauthenticated)?;
        if header.alg != ALGORITHM {
            return Err(Error::Unauthenticated);
        }
        let kid = header.kid.ok_or(Error::Unauthenticated)?;
        let key = match self.cached(&kid).await {
            Some(key) => key,
            None => {
                // A key source that cannot be asked says nothing about the token: answer
                // UNAVAILABLE (retry) rather than UNAUTHENTICATED (discard the token).
                self.refresh().await.map_err(Error::Unavailable)?;
                self.cached(&kid).await.ok_or(Error::Unauthenticated)?
            }
        };
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECONDS;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map_err(|_| Error::Unauthenticated)?;
        let expires_at = data.claims.exp;
        Ok((Caller::from_claims(data.claims), expires_at))
    }

    async fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().await.get(kid).cloned()
    }

    /// Replaces the cache with the source's keys, unless a successful fetch happened very
    /// recently. Fails only when the source cannot be asked.
    async fn refresh(&self) -> anyhow::Result<()> {
        let mut last = self.last_refresh.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.min_refresh_interval) {
            return Ok(());
        }
        match self.source.fetch().await {
            Ok(keys) => {
                let fresh = keys
                    .iter()
                    .map(|k| (k.kid.clone(), decoding_key(k)))
                    .collect();
                *self.keys.write().await = fresh;
                *last = Some(Instant::now());
                Ok(())
            }
            Err(err) => {
                tracing::warn!(error = %format!("{err:#}"), "could not fetch token verification keys");
                Err(err)
            }
        }
    }
}

fn decoding_key(key: &VerifyingKey) -> DecodingKey {
    DecodingKey::from_ed_components(&key.jwk_x()).expect("a base64url string is a valid x")
}

/// Tower layer that verifies the bearer token of every call but the open methods.
#[derive(Clone)]
pub struct AuthLayer {
    verifier: Arc<TokenVerifier>,
    open_methods: Arc<[&'static str]>,
}

/// Path prefixes that never need a token: health checks and server reflection.
const ALWAYS_OPEN_PREFIXES: [&str; 3] = [
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1.ServerReflection/",
    "/grpc.reflection.v1alpha.ServerReflection/",
];

impl AuthLayer {
    /// Verifies with `verifier`; `open_methods` are full gRPC paths
    /// (`/logistics.identity.v1.IdentityService/Login`) that need no token.
    pub fn new(verifier: Arc<TokenVerifier>, open_methods: &[&'static str]) -> Self {
        Self {
            verifier,
            open_methods: open_methods.into(),
        }
    }

    fn is_open(&self, path: &str) -> bool {
        ALWAYS_OPEN_PREFIXES.iter().any(|p| path.starts_with(p))
            || self.open_methods.contains(&path)
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service made by [`AuthLayer`].
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    layer: AuthLayer,
}

impl<S, B, RB> tower::Service<Request<B>> for AuthService<S>
where
    S: tower::Service<Request<B>, Response = Response<RB>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    RB: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        // Whatever a client sent, only this layer may put a Caller into the extensions.
        request.extensions_mut().remove::<Caller>();
        if self.layer.is_open(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let verifier = self.layer.verifier.clone();
        Box::pin(async move {
            let token = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(bearer_token)
                .map(str::to_owned);
            let verified = match token {
                Some(token) => verifier.verify(&token).await,
                None => Err(Error::Unauthenticated),
            };
            match verified {
                Ok(caller) => {
                    tracing::Span::current()
                        .record("user_id", tracing::field::display(caller.user_id));
                    request.extensions_mut().insert(caller);
                    inner.call(request).await
                }
                Err(err) => Ok(tonic::Status::from(err).into_http()),
            }
        })
    }
}

/// The token of an `authorization: Bearer <token>` header value.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    #[test]
    fn health_and_reflection_are_open_and_nothing_else_by_default() {
        let verifier = Arc::new(TokenVerifier::new(
            "i",
            "a",
            Arc::new(NoKeys),
            Duration::ZERO,
        ));
        let layer = AuthLayer::new(verifier, &["/x.v1.S/Open"]);
        assert!(layer.is_open("/grpc.health.v1.Health/Check"));
        assert!(layer.is_open("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
        assert!(layer.is_open("/x.v1.S/Open"));
        assert!(!layer.is_open("/x.v1.S/Closed"));
        assert!(!layer.is_open("/grpc.health.v1.HealthX/Check"));
    }

    struct NoKeys;
    impl KeySource for NoKeys {
        fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Vec<VerifyingKey>>> {
            Box::pin(async { Ok(vec![]) })
        }
    }

    /// A token signed with the seed `[7; 32]` under kid `k1`, expiring `exp`.
    fn signed_token(jti: Uuid, exp: i64) -> String {
        const PKCS8_ED25519_PREFIX: [u8; 16] = [
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        let mut der = PKCS8_ED25519_PREFIX.to_vec();
        der.extend_from_slice(&[7; 32]);
        let mut header = jsonwebtoken::Header::new(ALGORITHM);
        header.kid = Some("k1".to_owned());
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            iss: "i".to_owned(),
            aud: "a".to_owned(),
            sub: Uuid::now_v7(),
            tid: Uuid::now_v7(),
            roles: vec!["admin".to_owned()],
            sid: Uuid::now_v7(),
            pid: None,
            did: None,
            iat: now,
            nbf: now,
            exp,
            jti,
        };
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&der),
        )
        .unwrap()
    }

    async fn verifier_with_key() -> TokenVerifier {
        let verifier = TokenVerifier::new("i", "a", Arc::new(NoKeys), Duration::from_secs(3600));
        let public_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32])
            .verifying_key()
            .to_bytes();
        verifier
            .insert_key(&VerifyingKey {
                kid: "k1".to_owned(),
                public_key,
            })
            .await;
        verifier
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_until_it_expires_and_only_that_token() {
        let verifier = verifier_with_key().await;
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let token = signed_token(Uuid::now_v7(), now + 600);
        let other = signed_token(Uuid::now_v7(), now + 600);
        let first = verifier.verify(&token).await.unwrap();
        assert_eq!(first.roles, [Role::Admin]);

        // Without the key only the token verified before still passes: from memory.
        verifier.keys.write().await.clear();
        assert_eq!(verifier.verify(&token).await.unwrap(), first);
        let unknown = verifier.verify(&other).await.unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        // A tampered token is another token: never served from memory.
        let tampered = format!("{token}x");
        let refused = verifier.verify(&tampered).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);

        // Remembered past its expiry (plus the leeway) is not good enough: the full check runs
        // again, and here it fails.
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        verifier.verified.insert(
            digest,
            Verified {
                caller: first,
                expires_at: now - LEEWAY_SECONDS as i64,
            },
        );
        let expired = verifier.verify(&token).await.unwrap_err();
        assert_eq!(expired.code(), tonic::Code::Unauthenticated);
        assert!(verifier.verified.get(&digest).is_none());
    }

    #[tokio::test]
    async fn an_unreachable_key_source_is_unavailable_not_unauthenticated() {
        struct Down;
        impl KeySource for Down {
            fn fetch(&self) -> BoxFuture<'_, anyhow::Result<Vec<VerifyingKey>>> {
                Box::pin(async { Err(anyhow::anyhow!("identity unreachable")) })
            }
        }
        let verifier = TokenVerifier::new("i", "a", Arc::new(Down), Duration::ZERO);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#);
        let token = format!("{header}.e30.c2ln");
        let err = verifier.verify(&token).await.expect_err("no keys");
        assert_eq!(err.code(), tonic::Code::Unavailable);
        // A header that is not EdDSA is refused before any key is looked up.
        let none = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","kid":"k1"}"#);
        let err = verifier
            .verify(&format!("{none}.e30."))
            .await
            .expect_err("alg none");
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
    }
}
