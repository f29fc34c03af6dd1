//! Tenants: creation by platform admins (idempotent), isolation through the API, and the
//! row-level security underneath it, checked in SQL as the runtime role.

#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, USER_PASSWORD, authed, expect_code, violated_fields};
use logistics_proto::identity::v1 as pb;
use prost_types::FieldMask;
use tonic::{Code, Status};
use uuid::Uuid;

const B_ADMIN_EMAIL: &str = "admin@b.test";
const B_ADMIN_PASSWORD: &str = "tenant b admin password";

/// Tables the runtime role reaches in each tenant, plus the user view.
const TENANT_TABLES: &[&str] = &[
    "tenants",
    "users",
    "roles",
    "user_roles",
    "sessions",
    "refresh_tokens",
    "idempotency_keys",
    "user_accounts",
];

fn tenant_b_request(request_id: Uuid) -> pb::CreateTenantRequest {
    pb::CreateTenantRequest {
        request_id: request_id.to_string(),
        display_name: "Tenant B".into(),
        admin_email: B_ADMIN_EMAIL.into(),
        admin_display_name: "B admin".into(),
        admin_password: B_ADMIN_PASSWORD.into(),
    }
}

async fn create_tenant(
    app: &TestApp,
    token: &str,
    request: pb::CreateTenantRequest,
) -> Result<pb::CreateTenantResponse, Status> {
    app.client()
        .await
        .create_tenant(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

/// Creates tenant B as the bootstrapped platform admin and logs in as its admin.
async fn tenant_b(app: &TestApp) -> (pb::CreateTenantResponse, String) {
    let created = create_tenant(app, &app.admin_token, tenant_b_request(Uuid::now_v7()))
        .await
        .unwrap();
    let tenant_id = Uuid::parse_str(&created.tenant.as_ref().unwrap().id).unwrap();
    let token = app
        .login(tenant_id, B_ADMIN_EMAIL, B_ADMIN_PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap()
        .access_token;
    (created, token)
}

async fn list_ids(app: &TestApp, token: &str, show_deleted: bool) -> Vec<String> {
    app.client()
        .await
        .list_users(authed(
            token,
            pb::ListUsersRequest {
                show_deleted,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .users
        .into_iter()
        .map(|u| u.id)
        .collect()
}

#[tokio::test]
async fn a_second_tenant_sees_only_its_own_users_and_cannot_touch_the_first() {
    let app = TestApp::spawn().await;
    let a_user = app
        .create_user("a-user@tenant.test", &[pb::Role::Dispatcher])
        .await;
    let (created, b_token) = tenant_b(&app).await;
    let tenant = created.tenant.unwrap();
    let b_admin = created.admin_user.unwrap();
    assert_eq!(tenant.display_name, "Tenant B");
    assert_eq!(b_admin.tenant_id, tenant.id);
    assert_eq!(b_admin.email, B_ADMIN_EMAIL);
    assert_eq!(b_admin.roles, [pb::Role::Admin as i32]);
    assert_ne!(tenant.id, app.tenant_id.to_string());

    let mut client = app.client().await;
    let own = client
        .get_tenant(authed(&b_token, pb::GetTenantRequest {}))
        .await
        .unwrap()
        .into_inner()
        .tenant
        .unwrap();
    assert_eq!(own.id, tenant.id);

    // B lists only its admin, deleted or not.
    assert_eq!(
        list_ids(&app, &b_token, false).await,
        std::slice::from_ref(&b_admin.id)
    );
    assert_eq!(
        list_ids(&app, &b_token, true).await,
        std::slice::from_ref(&b_admin.id)
    );

    // A's users do not exist for B.
    for id in [a_user.id.clone(), app.admin_id.to_string()] {
        let status = expect_code(
            client
                .get_user(authed(&b_token, pb::GetUserRequest { id: id.clone() }))
                .await,
            Code::NotFound,
        );
        assert!(!status.message().contains("tenant"), "{}", status.message());
    }
    expect_code(
        client
            .update_user(authed(
                &b_token,
                pb::UpdateUserRequest {
                    user: Some(pb::User {
                        display_name: "Hijacked".into(),
                        ..a_user.clone()
                    }),
                    update_mask: Some(FieldMask {
                        paths: vec!["display_name".into()],
                    }),
                },
            ))
            .await,
        Code::NotFound,
    );
    expect_code(
        client
            .delete_user(authed(
                &b_token,
                pb::DeleteUserRequest {
                    id: a_user.id.clone(),
                    etag: String::new(),
                },
            ))
            .await,
        Code::NotFound,
    );
    expect_code(
        client
            .grant_role(authed(
                &b_token,
                pb::GrantRoleRequest {
                    user_id: a_user.id.clone(),
                    role: pb::Role::Admin as i32,
                },
            ))
            .await,
        Code::NotFound,
    );
    // ...and A's user is untouched.
    let db = app.db.admin_pool().await.unwrap();
    let (name, version, deleted): (String, i32, Option<time::OffsetDateTime>) = sqlx::query_as(
        "SELECT display_name, version, deleted_at FROM identity.users WHERE id = $1",
    )
    .bind(Uuid::parse_str(&a_user.id).unwrap())
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(name, a_user.display_name);
    assert_eq!(format!("\"{version}\""), a_user.etag);
    assert!(deleted.is_none());

    // A does not see B's admin.
    let a_ids = list_ids(&app, &app.admin_token, true).await;
    assert!(!a_ids.contains(&b_admin.id));
    assert_eq!(a_ids.len(), 2);
    expect_code(
        client
            .get_user(authed(
                &app.admin_token,
                pb::GetUserRequest {
                    id: b_admin.id.clone(),
                },
            ))
            .await,
        Code::NotFound,
    );

    // E-mail uniqueness is per tenant: B may have its own a-user, and logins stay apart.
    let b_user = app
        .create_user_as(&b_token, "a-user@tenant.test", &[pb::Role::Auditor])
        .await
        .unwrap();
    assert_eq!(b_user.tenant_id, tenant.id);
    expect_code(
        app.login(app.tenant_id, B_ADMIN_EMAIL, B_ADMIN_PASSWORD)
            .await,
        Code::Unauthenticated,
    );
    let b_tenant_id = Uuid::parse_str(&tenant.id).unwrap();
    let b_login = app
        .login(b_tenant_id, "a-user@tenant.test", USER_PASSWORD)
        .await
        .unwrap();
    assert_eq!(b_login.user.unwrap().id, b_user.id);
}

#[tokio::test]
async fn create_tenant_is_idempotent_and_reserved_for_platform_admins() {
    let app = TestApp::spawn().await;
    let request_id = Uuid::now_v7();
    let first = create_tenant(&app, &app.admin_token, tenant_b_request(request_id))
        .await
        .unwrap();
    let second = create_tenant(&app, &app.admin_token, tenant_b_request(request_id))
        .await
        .unwrap();
    assert_eq!(second.tenant, first.tenant);
    assert_eq!(second.admin_user, first.admin_user);

    let db = app.db.admin_pool().await.unwrap();
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.tenants")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(tenants, 2);
    let b_admins: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identity.users WHERE lower(email) = lower($1)")
            .bind(B_ADMIN_EMAIL)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(b_admins, 1);

    // The same id for another tenant is refused.
    let status = expect_code(
        create_tenant(
            &app,
            &app.admin_token,
            pb::CreateTenantRequest {
                display_name: "Tenant C".into(),
                ..tenant_b_request(request_id)
            },
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["request_id"]);

    // B's admin is an admin, not a platform admin.
    let b_tenant_id = Uuid::parse_str(&first.tenant.unwrap().id).unwrap();
    let b_token = app
        .login(b_tenant_id, B_ADMIN_EMAIL, B_ADMIN_PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap()
        .access_token;
    let denied = expect_code(
        create_tenant(
            &app,
            &b_token,
            pb::CreateTenantRequest {
                request_id: Uuid::now_v7().to_string(),
                display_name: "Tenant D".into(),
                admin_email: "admin@d.test".into(),
                admin_display_name: "D admin".into(),
                admin_password: "tenant d admin password".into(),
            },
        )
        .await,
        Code::PermissionDenied,
    );
    assert!(
        denied.message().contains("identity.tenants.create"),
        "{}",
        denied.message()
    );
    let tenants: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.tenants")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(tenants, 2);
}

/// `SELECT count(*)` of `table` in schema identity, on `executor`.
async fn count<'e>(executor: impl sqlx::PgExecutor<'e>, table: &str, filter: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM identity.{table} {filter}"
    )))
    .fetch_one(executor)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_runtime_role_sees_nothing_without_a_tenant_and_only_that_tenant_with_one() {
    let app = TestApp::spawn().await;
    // Rows in every table of both tenants: users with roles, sessions with refresh tokens (the
    // logins), idempotency claims (creates with a request_id).
    app.create_user("a-user@tenant.test", &[pb::Role::Dispatcher])
        .await;
    let (created, b_token) = tenant_b(&app).await;
    let b_id = Uuid::parse_str(&created.tenant.unwrap().id).unwrap();
    app.create_user_as(&b_token, "b-user@b.test", &[pb::Role::Auditor])
        .await
        .unwrap();

    let admin = app.db.admin_pool().await.unwrap();
    for table in TENANT_TABLES {
        let all = count(&admin, table, "").await;
        let filter = if *table == "tenants" {
            format!("WHERE id = '{b_id}'")
        } else {
            format!("WHERE tenant_id = '{b_id}'")
        };
        let in_b = count(&admin, table, &filter).await;
        assert!(in_b > 0, "no rows of tenant B in {table}");
        assert!(all > in_b, "no rows of tenant A in {table}");
    }

    let pool = app.db.pool_as("identity_app").await.unwrap();
    let mut conn = pool.acquire().await.unwrap();

    // No context at all: nothing visible.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    for table in TENANT_TABLES {
        assert_eq!(
            count(&mut *tx, table, "").await,
            0,
            "identity_app sees rows of {table} without a tenant"
        );
    }
    tx.rollback().await.unwrap();

    // No context: no writes either.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let err = sqlx::query(
        "INSERT INTO identity.users (tenant_id, id, email, display_name, password_hash) \
         VALUES ($1, $2, 'intruder@tenant.test', 'Intruder', '$argon2id$v=19$m=19456,t=2,p=1$x$y')",
    )
    .bind(app.tenant_id)
    .bind(Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .expect_err("insert without a tenant context");
    let db_err = err.as_database_error().expect("a database error");
    assert_eq!(db_err.code().as_deref(), Some("42501"), "{db_err}");
    assert!(db_err.message().contains("row-level security"), "{db_err}");
    tx.rollback().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    let touched = sqlx::query("UPDATE identity.users SET display_name = 'Renamed'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(touched, 0);
    tx.rollback().await.unwrap();

    // Tenant B's context: exactly tenant B's rows.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(b_id.to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    for table in TENANT_TABLES {
        let filter = if *table == "tenants" {
            format!("WHERE id = '{b_id}'")
        } else {
            format!("WHERE tenant_id = '{b_id}'")
        };
        assert_eq!(
            count(&mut *tx, table, "").await,
            count(&admin, table, &filter).await,
            "{table} in tenant B's context"
        );
    }
    let emails: Vec<String> =
        sqlx::query_scalar("SELECT email FROM identity.user_accounts ORDER BY email")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    assert_eq!(emails, [B_ADMIN_EMAIL, "b-user@b.test"]);
    // Even in B's context, writing a row of A is refused.
    let err = sqlx::query(
        "INSERT INTO identity.users (tenant_id, id, email, display_name, password_hash) \
         VALUES ($1, $2, 'intruder@tenant.test', 'Intruder', '$argon2id$v=19$m=19456,t=2,p=1$x$y')",
    )
    .bind(app.tenant_id)
    .bind(Uuid::now_v7())
    .execute(&mut *tx)
    .await
    .expect_err("insert into another tenant");
    assert_eq!(
        err.as_database_error().unwrap().code().as_deref(),
        Some("42501")
    );
    tx.rollback().await.unwrap();

    // The setting was transaction-local: the same connection sees nothing again.
    let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
    assert_eq!(count(&mut *tx, "users", "").await, 0);
    tx.rollback().await.unwrap();
    drop(conn);

    // The role itself: no RLS bypass, no superuser, owns no table or view of the schema.
    let (bypass, superuser): (bool, bool) = sqlx::query_as(
        "SELECT rolbypassrls, rolsuper FROM pg_roles WHERE rolname = 'identity_app'",
    )
    .fetch_one(&admin)
    .await
    .unwrap();
    assert!(!bypass, "identity_app bypasses row-level security");
    assert!(!superuser, "identity_app is a superuser");
    let owned: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'identity' AND tableowner = 'identity_app' \
         UNION ALL \
         SELECT viewname::text FROM pg_views WHERE schemaname = 'identity' AND viewowner = 'identity_app'",
    )
    .fetch_all(&admin)
    .await
    .unwrap();
    assert!(owned.is_empty(), "identity_app owns {owned:?}");
    let tables: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_tables WHERE schemaname = 'identity'")
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(tables >= 8, "schema identity has only {tables} tables");
    pool.close().await;
}
