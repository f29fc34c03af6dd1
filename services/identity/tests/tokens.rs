//! Access-token verification: every way a token can be wrong is UNAUTHENTICATED, and key
//! rotation keeps old tokens valid while other verifiers pick up the new key by `kid`.

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestApp, authed, expect_code};
use identity::signer::Signer;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use logistics_platform::auth::{Claims, IdentityKeySource, TokenVerifier};
use logistics_proto::identity::v1 as pb;
use tonic::Code;
use uuid::Uuid;

/// Claims for the bootstrapped admin that are valid right now.
fn valid_claims(app: &TestApp) -> Claims {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    Claims {
        iss: "logistics-identity".into(),
        aud: "logistics".into(),
        sub: app.admin_id,
        tid: app.tenant_id,
        roles: vec!["admin".into()],
        sid: Uuid::now_v7(),
        pid: None,
        did: None,
        iat: now,
        nbf: now,
        exp: now + 300,
        jti: Uuid::now_v7(),
    }
}

/// Signs with the service's real active key, as only identity should be able to.
async fn sign_with_real_key(app: &TestApp, claims: &Claims) -> String {
    let pool = app.db.pool_as("identity_app").await.unwrap();
    let signer = Signer::new(
        pool,
        app.config.key_encryption_keys.clone(),
        time::Duration::minutes(15),
    );
    signer.ensure_key().await.unwrap();
    signer.sign(claims).await.unwrap()
}

/// A key the service never saw, in the PKCS#8 form jsonwebtoken takes.
fn foreign_key() -> EncodingKey {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).unwrap();
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    EncodingKey::from_ed_der(&der)
}

async fn active_kid(app: &TestApp) -> String {
    let keys = app
        .client()
        .await
        .list_public_keys(pb::ListPublicKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    keys.into_iter().find(|k| k.active).unwrap().kid
}

/// Whether `token` gets the admin through GetTenant.
async fn tenant_call(app: &TestApp, token: &str) -> Result<pb::GetTenantResponse, tonic::Status> {
    app.client()
        .await
        .get_tenant(authed(token, pb::GetTenantRequest {}))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_token_signed_by_the_real_key_with_valid_claims_is_accepted() {
    let app = TestApp::spawn().await;
    let token = sign_with_real_key(&app, &valid_claims(&app)).await;
    let tenant = tenant_call(&app, &token).await.unwrap().tenant.unwrap();
    assert_eq!(tenant.id, app.tenant_id.to_string());
}

#[tokio::test]
async fn calls_without_a_token_or_with_garbage_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let status = expect_code(
        app.client().await.get_tenant(pb::GetTenantRequest {}).await,
        Code::Unauthenticated,
    );
    assert!(!status.message().is_empty());
    expect_code(tenant_call(&app, "garbage").await, Code::Unauthenticated);
    let mut request = tonic::Request::new(pb::GetTenantRequest {});
    request.metadata_mut().insert(
        "authorization",
        format!("Basic {}", app.admin_token).parse().unwrap(),
    );
    expect_code(
        app.client().await.get_tenant(request).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = Claims {
        iat: now - 3600,
        nbf: now - 3600,
        exp: now - 60,
        ..valid_claims(&app)
    };
    let early = Claims {
        nbf: now + 600,
        exp: now + 900,
        ..valid_claims(&app)
    };
    expect_code(
        tenant_call(&app, &sign_with_real_key(&app, &expired).await).await,
        Code::Unauthenticated,
    );
    expect_code(
        tenant_call(&app, &sign_with_real_key(&app, &early).await).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn tokens_for_another_audience_or_from_another_issuer_are_refused() {
    let app = TestApp::spawn().await;
    let audience = Claims {
        aud: "somebody-else".into(),
        ..valid_claims(&app)
    };
    let issuer = Claims {
        iss: "https://evil.example".into(),
        ..valid_claims(&app)
    };
    expect_code(
        tenant_call(&app, &sign_with_real_key(&app, &audience).await).await,
        Code::Unauthenticated,
    );
    expect_code(
        tenant_call(&app, &sign_with_real_key(&app, &issuer).await).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_refused() {
    let app = TestApp::spawn().await;
    let kid = active_kid(&app).await;
    let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{kid}"}}"#));
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&valid_claims(&app)).unwrap());
    for token in [
        format!("{header}.{payload}."),
        format!("{header}.{payload}"),
    ] {
        expect_code(tenant_call(&app, &token).await, Code::Unauthenticated);
    }
}

#[tokio::test]
async fn an_hmac_token_keyed_with_the_public_key_is_refused() {
    // The classic algorithm-confusion attack: HS256 with the published key as the secret.
    let app = TestApp::spawn().await;
    let keys = app
        .client()
        .await
        .list_public_keys(pb::ListPublicKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let public = URL_SAFE_NO_PAD.decode(&keys[0].x).unwrap();
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some(keys[0].kid.clone());
    let token = jsonwebtoken::encode(
        &header,
        &valid_claims(&app),
        &EncodingKey::from_secret(&public),
    )
    .unwrap();
    expect_code(tenant_call(&app, &token).await, Code::Unauthenticated);
}

#[tokio::test]
async fn a_token_signed_by_another_key_under_the_real_kid_is_refused() {
    let app = TestApp::spawn().await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(active_kid(&app).await);
    let token = jsonwebtoken::encode(&header, &valid_claims(&app), &foreign_key()).unwrap();
    expect_code(tenant_call(&app, &token).await, Code::Unauthenticated);
}

#[tokio::test]
async fn a_token_with_an_unknown_kid_or_none_is_refused() {
    let app = TestApp::spawn().await;
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some("never-published-kid".into());
    let unknown = jsonwebtoken::encode(&header, &valid_claims(&app), &foreign_key()).unwrap();
    expect_code(tenant_call(&app, &unknown).await, Code::Unauthenticated);
    let no_kid = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &valid_claims(&app),
        &foreign_key(),
    )
    .unwrap();
    expect_code(tenant_call(&app, &no_kid).await, Code::Unauthenticated);
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_and_publishes_both_keys() {
    let app = TestApp::spawn().await;
    let old_kid = active_kid(&app).await;
    let rotated = app
        .client()
        .await
        .rotate_signing_key(authed(&app.admin_token, pb::RotateSigningKeyRequest {}))
        .await
        .unwrap()
        .into_inner()
        .key
        .unwrap();
    assert_ne!(rotated.kid, old_kid);
    assert!(rotated.active);

    // The token signed before the rotation still works.
    tenant_call(&app, &app.admin_token).await.unwrap();
    // New tokens carry the new kid.
    let login = app
        .login(app.tenant_id, &app.admin_email, common::ADMIN_PASSWORD)
        .await
        .unwrap();
    let header = jsonwebtoken::decode_header(&login.tokens.unwrap().access_token).unwrap();
    assert_eq!(header.kid.as_deref(), Some(rotated.kid.as_str()));

    let keys = app
        .client()
        .await
        .list_public_keys(pb::ListPublicKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys;
    let kids: Vec<(&str, bool)> = keys.iter().map(|k| (k.kid.as_str(), k.active)).collect();
    assert_eq!(
        kids,
        [(rotated.kid.as_str(), true), (old_kid.as_str(), false)]
    );
    assert!(
        keys.iter()
            .all(|k| k.kty == "OKP" && k.crv == "Ed25519" && k.alg == "EdDSA")
    );
    assert!(keys[1].retire_time.is_some());

    // Private keys are sealed at rest: the raw rows never hold the Ed25519 seed in the clear,
    // and every ciphertext names the key-encryption key that sealed it.
    let db = app.db.admin_pool().await.unwrap();
    let sealed: Vec<Vec<u8>> =
        sqlx::query_scalar("SELECT private_key_ciphertext FROM identity.signing_keys")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(sealed.len(), 2);
    for ciphertext in sealed {
        assert_eq!(
            logistics_platform::crypto::Keyring::key_id_of(&ciphertext),
            Ok("test1")
        );
    }
}

#[tokio::test]
async fn only_platform_admins_rotate_keys() {
    let app = TestApp::spawn().await;
    let (_, admin_only) = app
        .user_with_token("tenant-admin@tenant.test", &[pb::Role::Admin])
        .await;
    let status = expect_code(
        app.client()
            .await
            .rotate_signing_key(authed(&admin_only, pb::RotateSigningKeyRequest {}))
            .await,
        Code::PermissionDenied,
    );
    assert!(status.message().contains("identity.signing_keys.rotate"));
}

#[tokio::test]
async fn another_service_verifies_tokens_with_keys_fetched_from_identity_and_learns_new_kids() {
    let app = TestApp::spawn().await;
    let verifier = TokenVerifier::new(
        "logistics-identity",
        "logistics",
        Arc::new(IdentityKeySource::new(app.channel().await)),
        Duration::ZERO,
    );
    let caller = verifier.verify(&app.admin_token).await.unwrap();
    assert_eq!(caller.user_id, app.admin_id);
    assert_eq!(caller.tenant_id, app.tenant_id);

    app.client()
        .await
        .rotate_signing_key(authed(&app.admin_token, pb::RotateSigningKeyRequest {}))
        .await
        .unwrap();
    let fresh = app
        .login(app.tenant_id, &app.admin_email, common::ADMIN_PASSWORD)
        .await
        .unwrap();
    // The verifier has never seen the new kid: it refetches and accepts.
    let caller = verifier
        .verify(&fresh.tokens.unwrap().access_token)
        .await
        .unwrap();
    assert_eq!(caller.user_id, app.admin_id);
    // And the old token still verifies.
    verifier.verify(&app.admin_token).await.unwrap();
}
