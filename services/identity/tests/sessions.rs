//! Login, lockout, refresh-token rotation and reuse detection, logout, password change.

#![allow(clippy::unwrap_used)]

mod common;

use common::{ADMIN_PASSWORD, TestApp, USER_PASSWORD, authed, expect_code, violated_fields};
use logistics_proto::identity::v1 as pb;
use tonic::Code;
use uuid::Uuid;

#[tokio::test]
async fn login_returns_tokens_that_authenticate_calls() {
    let app = TestApp::spawn().await;
    let login = app
        .login(app.tenant_id, "ADMIN@tenant.test", ADMIN_PASSWORD)
        .await
        .unwrap();
    let tokens = login.tokens.unwrap();
    assert!(tokens.refresh_token.starts_with("lrt_"));
    assert_eq!(login.user.unwrap().id, app.admin_id.to_string());

    let me = app
        .client()
        .await
        .get_user(authed(
            &tokens.access_token,
            pb::GetUserRequest {
                id: app.admin_id.to_string(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(me.email, "admin@tenant.test");
    assert!(me.roles.contains(&(pb::Role::Admin as i32)));
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_email_get_the_same_answer() {
    let app = TestApp::spawn().await;
    let wrong = expect_code(
        app.login(app.tenant_id, &app.admin_email, "not the password")
            .await,
        Code::Unauthenticated,
    );
    let unknown = expect_code(
        app.login(app.tenant_id, "nobody@tenant.test", "not the password")
            .await,
        Code::Unauthenticated,
    );
    let other_tenant = expect_code(
        app.login(Uuid::now_v7(), &app.admin_email, ADMIN_PASSWORD)
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(wrong.message(), unknown.message());
    assert_eq!(wrong.message(), other_tenant.message());
    assert!(!wrong.message().contains("password"), "{}", wrong.message());
}

#[tokio::test]
async fn login_with_malformed_fields_lists_every_violation() {
    let app = TestApp::spawn().await;
    let status = expect_code(
        app.client()
            .await
            .login(pb::LoginRequest {
                tenant_id: "not-a-uuid".into(),
                email: "no-at-sign".into(),
                password: String::new(),
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["tenant_id", "email", "password"]);
}

#[tokio::test]
async fn repeated_failures_lock_the_account_even_for_the_right_password() {
    // The test configuration locks after 3 failures.
    let app = TestApp::spawn().await;
    app.create_user("clerk@tenant.test", &[pb::Role::WarehouseClerk])
        .await;
    for _ in 0..3 {
        expect_code(
            app.login(app.tenant_id, "clerk@tenant.test", "wrong password!")
                .await,
            Code::Unauthenticated,
        );
    }
    let locked = expect_code(
        app.login(app.tenant_id, "clerk@tenant.test", USER_PASSWORD)
            .await,
        Code::Unauthenticated,
    );
    let wrong = expect_code(
        app.login(app.tenant_id, "clerk@tenant.test", "wrong password!")
            .await,
        Code::Unauthenticated,
    );
    assert_eq!(
        locked.message(),
        wrong.message(),
        "a lock must not be revealed"
    );

    let db = app.db.admin_pool().await.unwrap();
    let (locked_until,): (Option<time::OffsetDateTime>,) = sqlx::query_as(
        "SELECT locked_until FROM identity.users WHERE lower(email) = 'clerk@tenant.test'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(locked_until.unwrap() > time::OffsetDateTime::now_utc());

    // The admin sees the lock.
    let users = app
        .client()
        .await
        .list_users(authed(
            &app.admin_token,
            pb::ListUsersRequest {
                filter: "email = \"clerk@tenant.test\"".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(users[0].locked);

    // Once the lock expires, the right password works again and resets the count.
    sqlx::query("UPDATE identity.users SET locked_until = now() - interval '1 second' WHERE lower(email) = 'clerk@tenant.test'")
        .execute(&db)
        .await
        .unwrap();
    app.login(app.tenant_id, "clerk@tenant.test", USER_PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refresh_token_rotates_and_works_only_once() {
    let app = TestApp::spawn().await;
    let first = app
        .login(app.tenant_id, &app.admin_email, ADMIN_PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap();
    let mut client = app.client().await;
    let second = client
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    assert_ne!(second.access_token, first.access_token);
    // The new access token works.
    client
        .get_tenant(authed(&second.access_token, pb::GetTenantRequest {}))
        .await
        .unwrap();
    // The new refresh token works once more.
    let third = client
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: second.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert_ne!(third.refresh_token, second.refresh_token);
}

#[tokio::test]
async fn reusing_a_refresh_token_revokes_the_whole_session() {
    let app = TestApp::spawn().await;
    let first = app
        .login(app.tenant_id, &app.admin_email, ADMIN_PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap();
    let mut client = app.client().await;
    let second = client
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: first.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();

    // The thief (or a confused client) presents the used token again.
    expect_code(
        client
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: first.refresh_token.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    // Now even the legitimate latest token is dead.
    expect_code(
        client
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: second.refresh_token.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    let db = app.db.admin_pool().await.unwrap();
    let reasons: Vec<String> = sqlx::query_scalar(
        "SELECT revoke_reason FROM identity.sessions WHERE revoked_at IS NOT NULL",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(reasons, ["refresh_token_reuse"]);
}

#[tokio::test]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let app = TestApp::spawn().await;
    let tokens = app
        .login(app.tenant_id, &app.admin_email, ADMIN_PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap();
    let db = app.db.admin_pool().await.unwrap();
    let dump: String =
        sqlx::query_scalar("SELECT string_agg(t::text, '|') FROM identity.refresh_tokens t")
            .fetch_one(&db)
            .await
            .unwrap();
    let secret_part = tokens.refresh_token.trim_start_matches("lrt_");
    assert!(!dump.contains(secret_part));
    let hashes: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM identity.refresh_tokens")
        .fetch_all(&db)
        .await
        .unwrap();
    assert!(hashes.iter().all(|h| h.len() == 32));
}

#[tokio::test]
async fn garbage_refresh_tokens_are_unauthenticated() {
    let app = TestApp::spawn().await;
    let mut client = app.client().await;
    for token in [
        "lrt_garbage",
        "eyJhbGciOi",
        "lrt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        expect_code(
            client
                .refresh_token(pb::RefreshTokenRequest {
                    refresh_token: token.into(),
                })
                .await,
            Code::Unauthenticated,
        );
    }
    expect_code(
        client
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: String::new(),
            })
            .await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn logout_ends_the_session_so_its_refresh_token_stops_working() {
    let app = TestApp::spawn().await;
    let tokens = app
        .login(app.tenant_id, &app.admin_email, ADMIN_PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap();
    let mut client = app.client().await;
    client
        .logout(authed(&tokens.access_token, pb::LogoutRequest {}))
        .await
        .unwrap();
    expect_code(
        client
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: tokens.refresh_token,
            })
            .await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn changing_the_password_needs_the_current_one_and_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let (_, token) = app
        .user_with_token("dispatch@tenant.test", &[pb::Role::Dispatcher])
        .await;
    let other = app
        .login(app.tenant_id, "dispatch@tenant.test", USER_PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap();
    let mut client = app.client().await;

    let wrong = expect_code(
        client
            .change_password(authed(
                &token,
                pb::ChangePasswordRequest {
                    current_password: "not my password".into(),
                    new_password: "a brand new password".into(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&wrong), ["current_password"]);
    let short = expect_code(
        client
            .change_password(authed(
                &token,
                pb::ChangePasswordRequest {
                    current_password: USER_PASSWORD.into(),
                    new_password: "short".into(),
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&short), ["new_password"]);

    client
        .change_password(authed(
            &token,
            pb::ChangePasswordRequest {
                current_password: USER_PASSWORD.into(),
                new_password: "a brand new password".into(),
            },
        ))
        .await
        .unwrap();
    expect_code(
        app.login(app.tenant_id, "dispatch@tenant.test", USER_PASSWORD)
            .await,
        Code::Unauthenticated,
    );
    app.login(
        app.tenant_id,
        "dispatch@tenant.test",
        "a brand new password",
    )
    .await
    .unwrap();
    // The other session's refresh token no longer works.
    expect_code(
        client
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: other.refresh_token,
            })
            .await,
        Code::Unauthenticated,
    );
}
