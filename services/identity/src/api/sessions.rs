//! Login, refresh, logout and the signing keys.

use logistics_platform::auth::{Caller, Claims};
use logistics_platform::authz::Permission;
use logistics_platform::context::DbContext;
use logistics_platform::error::{Error, Violations};
use logistics_platform::{FieldViolation, aip};
use logistics_proto::identity::v1 as pb;
use secrecy::SecretString;
use time::OffsetDateTime;
use uuid::Uuid;

use super::State;
use super::convert;
use crate::domain::lockout::LockoutPolicy;
use crate::domain::refresh_token::{self, RefreshToken};
use crate::domain::user::{Email, MAX_PASSWORD_CHARS};
use crate::signer;
use crate::store::sessions::{self, Presented, RevokeReason};
use crate::store::users::{self, UserRow};

/// Exchanges credentials for tokens. Every way of failing (unknown tenant or e-mail, wrong
/// password, locked account) is the same UNAUTHENTICATED answer after the same argon2 work.
#[tracing::instrument(skip_all)]
pub async fn login(state: &State, request: pb::LoginRequest) -> Result<pb::LoginResponse, Error> {
    let mut violations = Violations::new();
    let tenant_id = violations.check(aip::parse_id("tenant_id", &request.tenant_id));
    let email = violations.check(Email::parse("email", &request.email));
    if request.password.is_empty() {
        violations.push(FieldViolation::new("password", "is required"));
    } else if request.password.chars().count() > MAX_PASSWORD_CHARS {
        violations.push(FieldViolation::new("password", "is too long"));
    }
    violations.finish()?;
    let (Some(tenant_id), Some(email)) = (tenant_id, email) else {
        unreachable!("violations would have been reported");
    };
    let password = SecretString::from(request.password);

    let mut tx = DbContext::for_tenant(tenant_id).begin(&state.pool).await?;
    let now = OffsetDateTime::now_utc();
    let Some(credentials) = users::credentials_for_update(&mut tx, &email).await? else {
        state.hasher.verify(password, None).await?;
        return Err(Error::Unauthenticated);
    };
    if LockoutPolicy::is_locked(credentials.locked_until, now) {
        state.hasher.verify(password, None).await?;
        tracing::info!(user_id = %credentials.id, "login refused: account locked");
        return Err(Error::Unauthenticated);
    }
    let matches = state
        .hasher
        .verify(password, Some(credentials.password_hash))
        .await?;
    if !matches {
        let after = state
            .lockout
            .after_failure(credentials.failed_login_count, now);
        users::record_failure(&mut tx, credentials.id, after).await?;
        tx.commit().await?;
        if after.locked_until.is_some() {
            tracing::warn!(user_id = %credentials.id, "account locked after repeated failed logins");
        }
        return Err(Error::Unauthenticated);
    }
    users::record_success(&mut tx, credentials.id).await?;
    let user = users::get(&mut tx, credentials.id, false)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user vanished during login"))?;
    let session_id = Uuid::now_v7();
    let session_expires = now + state.session_ttl;
    let refresh = RefreshToken::generate(tenant_id);
    sessions::create(
        &mut tx,
        session_id,
        user.id,
        session_expires,
        &refresh.hash(),
    )
    .await?;
    let tokens = token_pair(state, &user, session_id, session_expires, &refresh).await?;
    tx.commit().await?;
    tracing::info!(user_id = %user.id, session_id = %session_id, "logged in");
    Ok(pb::LoginResponse {
        tokens: Some(tokens),
        user: Some(convert::user(&user)),
    })
}

/// Rotates a refresh token. A token presented a second time revokes its whole session, since
/// either the client or a thief is replaying it and there is no telling which.
#[tracing::instrument(skip_all)]
pub async fn refresh_token(
    state: &State,
    request: pb::RefreshTokenRequest,
) -> Result<pb::RefreshTokenResponse, Error> {
    if request.refresh_token.is_empty() {
        return Err(Error::invalid("refresh_token", "is required"));
    }
    let presented = RefreshToken::parse(&request.refresh_token).ok_or(Error::Unauthenticated)?;
    let mut tx = DbContext::for_tenant(presented.tenant_id)
        .begin(&state.pool)
        .await?;
    match sessions::use_refresh_token(&mut tx, &presented.hash()).await? {
        Presented::Fresh {
            session_id,
            user_id,
            expires_at,
        } => {
            let Some(user) = users::get(&mut tx, user_id, false).await? else {
                sessions::revoke(&mut tx, session_id, RevokeReason::UserDeleted).await?;
                tx.commit().await?;
                return Err(Error::Unauthenticated);
            };
            let next = RefreshToken::generate(presented.tenant_id);
            sessions::add_refresh_token(&mut tx, session_id, &next.hash()).await?;
            let tokens = token_pair(state, &user, session_id, expires_at, &next).await?;
            tx.commit().await?;
            Ok(pb::RefreshTokenResponse {
                tokens: Some(tokens),
            })
        }
        Presented::Reused { session_id } => {
            sessions::revoke(&mut tx, session_id, RevokeReason::RefreshTokenReuse).await?;
            tx.commit().await?;
            tracing::warn!(%session_id, "refresh token reused; session revoked");
            Err(Error::Unauthenticated)
        }
        Presented::Invalid => Err(Error::Unauthenticated),
    }
}

/// Revokes the caller's session.
#[tracing::instrument(skip_all)]
pub async fn logout(
    state: &State,
    caller: &Caller,
    _request: pb::LogoutRequest,
) -> Result<pb::LogoutResponse, Error> {
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    sessions::revoke(&mut tx, caller.session_id, RevokeReason::Logout).await?;
    tx.commit().await?;
    Ok(pb::LogoutResponse {})
}

/// The JWKS: every key whose tokens may still be valid.
pub async fn list_public_keys(
    state: &State,
    _request: pb::ListPublicKeysRequest,
) -> Result<pb::ListPublicKeysResponse, Error> {
    let mut tx = DbContext::default().begin(&state.pool).await?;
    let rows = state.signer.public_keys(&mut tx).await?;
    tx.commit().await?;
    let keys = rows
        .iter()
        .map(convert::public_key)
        .collect::<Result<_, _>>()?;
    Ok(pb::ListPublicKeysResponse { keys })
}

/// Makes a new signing key active; the old one keeps verifying its tokens.
#[tracing::instrument(skip_all)]
pub async fn rotate_signing_key(
    state: &State,
    caller: &Caller,
    _request: pb::RotateSigningKeyRequest,
) -> Result<pb::RotateSigningKeyResponse, Error> {
    caller.require(Permission::SigningKeysRotate)?;
    let mut tx = DbContext::for_caller(caller).begin(&state.pool).await?;
    let row = state.signer.rotate(&mut tx).await?;
    tx.commit().await?;
    state.signer.install(&row).await?;
    state
        .verifier
        .insert_key(&signer::verifying_key(&row)?)
        .await;
    tracing::info!(kid = %row.kid, "signing key rotated");
    Ok(pb::RotateSigningKeyResponse {
        key: Some(convert::public_key(&row)?),
    })
}

/// An access token for `user` in `session_id`, and the refresh token that renews it.
async fn token_pair(
    state: &State,
    user: &UserRow,
    session_id: Uuid,
    session_expires: OffsetDateTime,
    refresh: &RefreshToken,
) -> Result<pb::TokenPair, Error> {
    let now = OffsetDateTime::now_utc();
    let expires = now + state.access_ttl;
    let claims = Claims {
        iss: state.issuer.clone(),
        aud: state.audience.clone(),
        sub: user.id,
        tid: user.tenant_id,
        roles: user.roles.clone(),
        sid: session_id,
        pid: user.partner_id,
        did: user.driver_id,
        iat: now.unix_timestamp(),
        nbf: now.unix_timestamp(),
        exp: expires.unix_timestamp(),
        jti: Uuid::now_v7(),
    };
    Ok(pb::TokenPair {
        access_token: state.signer.sign(&claims).await?,
        access_token_expire_time: Some(convert::timestamp(expires)),
        refresh_token: refresh_token::expose(&refresh.to_wire()),
        refresh_token_expire_time: Some(convert::timestamp(session_expires)),
    })
}
