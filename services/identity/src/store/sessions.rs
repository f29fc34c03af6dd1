//! Sessions and their single-use refresh tokens.

use logistics_platform::Error;
use logistics_platform::context::Tx;
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a session ended; the names are the stored `revoke_reason`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// A used refresh token was presented again: the token may be stolen.
    RefreshTokenReuse,
    /// The user changed the password.
    PasswordChange,
    /// The user was deleted.
    UserDeleted,
}

impl RevokeReason {
    fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::RefreshTokenReuse => "refresh_token_reuse",
            RevokeReason::PasswordChange => "password_change",
            RevokeReason::UserDeleted => "user_deleted",
        }
    }
}

/// Starts a session for `user_id` with its first refresh token.
pub async fn create(
    tx: &mut Tx,
    session_id: Uuid,
    user_id: Uuid,
    expires_at: OffsetDateTime,
    token_hash: &[u8; 32],
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO identity.sessions (tenant_id, id, user_id, expires_at) \
         VALUES (identity.current_tenant_id(), $1, $2, $3)",
    )
    .bind(session_id)
    .bind(user_id)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    add_refresh_token(tx, session_id, token_hash).await
}

/// Adds the session's next refresh token (the previous one must be used already).
pub async fn add_refresh_token(
    tx: &mut Tx,
    session_id: Uuid,
    token_hash: &[u8; 32],
) -> Result<(), Error> {
    sqlx::query(
        "INSERT INTO identity.refresh_tokens (tenant_id, id, session_id, token_hash) \
         VALUES (identity.current_tenant_id(), $1, $2, $3)",
    )
    .bind(Uuid::now_v7())
    .bind(session_id)
    .bind(&token_hash[..])
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    /// The token was live and is now used; the session is live.
    Fresh {
        /// The session.
        session_id: Uuid,
        /// Its user.
        user_id: Uuid,
        /// When the session ends.
        expires_at: OffsetDateTime,
    },
    /// The token had been used before: the caller must revoke the session.
    Reused {
        /// The session.
        session_id: Uuid,
    },
    /// No such token, or its session is revoked or expired.
    Invalid,
}

/// Marks the token with `token_hash` used, if it was live. The conditional UPDATE serialises
/// racing refreshes: only one of them sees the token unused.
pub async fn use_refresh_token(tx: &mut Tx, token_hash: &[u8; 32]) -> Result<Presented, Error> {
    let used: Option<Uuid> = sqlx::query_scalar(
        "UPDATE identity.refresh_tokens SET used_at = now() \
         WHERE token_hash = $1 AND used_at IS NULL RETURNING session_id",
    )
    .bind(&token_hash[..])
    .fetch_optional(&mut **tx)
    .await?;
    let Some(session_id) = used else {
        let reused: Option<Uuid> = sqlx::query_scalar(
            "SELECT session_id FROM identity.refresh_tokens WHERE token_hash = $1",
        )
        .bind(&token_hash[..])
        .fetch_optional(&mut **tx)
        .await?;
        return Ok(match reused {
            Some(session_id) => Presented::Reused { session_id },
            None => Presented::Invalid,
        });
    };
    let live: Option<(Uuid, OffsetDateTime)> = sqlx::query_as(
        "SELECT user_id, expires_at FROM identity.sessions \
         WHERE id = $1 AND revoked_at IS NULL AND expires_at > now()",
    )
    .bind(session_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match live {
        Some((user_id, expires_at)) => Presented::Fresh {
            session_id,
            user_id,
            expires_at,
        },
        None => Presented::Invalid,
    })
}

/// Revokes one session (no-op if already revoked).
pub async fn revoke(tx: &mut Tx, session_id: Uuid, reason: RevokeReason) -> Result<(), Error> {
    sqlx::query(
        "UPDATE identity.sessions SET revoked_at = now(), revoke_reason = $2, version = version + 1 \
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(session_id)
    .bind(reason.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Revokes every live session of a user except `keep`.
pub async fn revoke_all_of_user(
    tx: &mut Tx,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<u64, Error> {
    Ok(sqlx::query(
        "UPDATE identity.sessions SET revoked_at = now(), revoke_reason = $3, version = version + 1 \
         WHERE user_id = $1 AND revoked_at IS NULL AND ($2::uuid IS NULL OR id <> $2)",
    )
    .bind(user_id)
    .bind(keep)
    .bind(reason.as_str())
    .execute(&mut **tx)
    .await?
    .rows_affected())
}
