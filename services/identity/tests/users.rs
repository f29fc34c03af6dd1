//! User management: validation, idempotent creation, field-mask updates with etags, keyset
//! pagination under concurrent writes, filters, soft delete and undelete, roles, permissions.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{TestApp, USER_PASSWORD, authed, expect_code, new_user_request, violated_fields};
use futures::StreamExt as _;
use logistics_proto::identity::v1 as pb;
use prost_types::FieldMask;
use tonic::{Code, Status};
use uuid::Uuid;

// Helpers ----------------------------------------------------------------------------------------

async fn create(app: &TestApp, request: pb::CreateUserRequest) -> Result<pb::User, Status> {
    app.client()
        .await
        .create_user(authed(&app.admin_token, request))
        .await
        .map(|r| r.into_inner().user.unwrap())
}

async fn list(
    app: &TestApp,
    token: &str,
    request: pb::ListUsersRequest,
) -> Result<pb::ListUsersResponse, Status> {
    app.client()
        .await
        .list_users(authed(token, request))
        .await
        .map(|r| r.into_inner())
}

async fn get(app: &TestApp, token: &str, id: &str) -> Result<pb::User, Status> {
    app.client()
        .await
        .get_user(authed(token, pb::GetUserRequest { id: id.to_owned() }))
        .await
        .map(|r| r.into_inner().user.unwrap())
}

async fn update(
    app: &TestApp,
    user: pb::User,
    paths: &[&str],
) -> Result<pb::UpdateUserResponse, Status> {
    app.client()
        .await
        .update_user(authed(
            &app.admin_token,
            pb::UpdateUserRequest {
                user: Some(user),
                update_mask: Some(FieldMask {
                    paths: paths.iter().map(|p| (*p).to_owned()).collect(),
                }),
            },
        ))
        .await
        .map(|r| r.into_inner())
}

async fn delete(app: &TestApp, token: &str, id: &str, etag: &str) -> Result<pb::User, Status> {
    app.client()
        .await
        .delete_user(authed(
            token,
            pb::DeleteUserRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().user.unwrap())
}

async fn undelete(app: &TestApp, id: &str, etag: &str) -> Result<pb::User, Status> {
    app.client()
        .await
        .undelete_user(authed(
            &app.admin_token,
            pb::UndeleteUserRequest {
                id: id.to_owned(),
                etag: etag.to_owned(),
            },
        ))
        .await
        .map(|r| r.into_inner().user.unwrap())
}

async fn grant(
    app: &TestApp,
    token: &str,
    user_id: &str,
    role: pb::Role,
) -> Result<pb::User, Status> {
    app.client()
        .await
        .grant_role(authed(
            token,
            pb::GrantRoleRequest {
                user_id: user_id.to_owned(),
                role: role as i32,
            },
        ))
        .await
        .map(|r| r.into_inner().user.unwrap())
}

async fn revoke(
    app: &TestApp,
    token: &str,
    user_id: &str,
    role: pb::Role,
) -> Result<pb::User, Status> {
    app.client()
        .await
        .revoke_role(authed(
            token,
            pb::RevokeRoleRequest {
                user_id: user_id.to_owned(),
                role: role as i32,
            },
        ))
        .await
        .map(|r| r.into_inner().user.unwrap())
}

/// Every page of a listing, following `next_page_token` until it is empty. Checks on the way
/// that no page exceeds `page_size`; waits `pause` between pages so concurrent writers interleave.
async fn all_pages(
    app: &TestApp,
    mut request: pb::ListUsersRequest,
    pause: Duration,
) -> Vec<pb::User> {
    let mut users = Vec::new();
    for _ in 0..200 {
        let page = list(app, &app.admin_token, request.clone()).await.unwrap();
        assert!(
            page.users.len() <= request.page_size as usize,
            "a page of {} users with page_size {}",
            page.users.len(),
            request.page_size
        );
        users.extend(page.users);
        if page.next_page_token.is_empty() {
            return users;
        }
        request.page_token = page.next_page_token;
        tokio::time::sleep(pause).await;
    }
    panic!("listing never reached its last page");
}

fn ids(users: &[pb::User]) -> Vec<String> {
    users.iter().map(|u| u.id.clone()).collect()
}

fn role_list(roles: &[pb::Role]) -> Vec<i32> {
    roles.iter().map(|r| *r as i32).collect()
}

async fn user_count(app: &TestApp) -> i64 {
    let db = app.db.admin_pool().await.unwrap();
    sqlx::query_scalar("SELECT count(*) FROM identity.users")
        .fetch_one(&db)
        .await
        .unwrap()
}

// CreateUser -----------------------------------------------------------------------------------

#[tokio::test]
async fn create_user_with_several_bad_fields_lists_every_one_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let before = user_count(&app).await;

    let status = expect_code(
        create(
            &app,
            pb::CreateUserRequest {
                request_id: Uuid::now_v7().to_string(),
                email: "not-an-email".into(),
                display_name: "Someone".into(),
                password: "short".into(),
                roles: vec![pb::Role::Unspecified as i32],
                partner_id: "not-a-uuid".into(),
                driver_id: String::new(),
            },
        )
        .await,
        Code::InvalidArgument,
    );
    let mut fields = violated_fields(&status);
    fields.sort();
    assert_eq!(fields, ["email", "partner_id", "password", "roles[0]"]);
    assert!(!status.message().contains("short"), "{}", status.message());

    assert_eq!(user_count(&app).await, before);
    let db = app.db.admin_pool().await.unwrap();
    let claims: i64 = sqlx::query_scalar("SELECT count(*) FROM identity.idempotency_keys")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        claims, 0,
        "a refused request must leave no idempotency claim"
    );
}

#[tokio::test]
async fn a_customer_needs_a_partner_id_and_then_carries_it() {
    let app = TestApp::spawn().await;
    let status = expect_code(
        create(
            &app,
            new_user_request("buyer@tenant.test", &[pb::Role::Customer]),
        )
        .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["partner_id"]);
    assert_eq!(user_count(&app).await, 1);

    let partner_id = Uuid::now_v7();
    let user = create(
        &app,
        pb::CreateUserRequest {
            partner_id: partner_id.to_string(),
            ..new_user_request("buyer@tenant.test", &[pb::Role::Customer])
        },
    )
    .await
    .unwrap();
    assert_eq!(user.partner_id, partner_id.to_string());
    assert_eq!(user.roles, role_list(&[pb::Role::Customer]));
    assert_eq!(user.tenant_id, app.tenant_id.to_string());

    let db = app.db.admin_pool().await.unwrap();
    let stored: Option<Uuid> =
        sqlx::query_scalar("SELECT partner_id FROM identity.users WHERE id = $1")
            .bind(Uuid::parse_str(&user.id).unwrap())
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(stored, Some(partner_id));

    // Logging in shows the partner too.
    let login = app
        .login(app.tenant_id, "buyer@tenant.test", USER_PASSWORD)
        .await
        .unwrap();
    assert_eq!(login.user.unwrap().partner_id, partner_id.to_string());
}

#[tokio::test]
async fn a_duplicate_email_in_another_case_is_already_exists_without_leaking_sql() {
    let app = TestApp::spawn().await;
    app.create_user("Dup@Tenant.test", &[pb::Role::Dispatcher])
        .await;
    let status = expect_code(
        create(
            &app,
            new_user_request("dup@tenant.TEST", &[pb::Role::Auditor]),
        )
        .await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["email"]);

    let message = status.message().to_owned();
    // The details name the resource type `logistics.identity.v1.User`; that is the API's own
    // type name, not a table. Anything else mentioning the schema would be a leak.
    let details = String::from_utf8_lossy(status.details()).replace("logistics.identity.v1.", "");
    for leak in [
        "users_email_key",
        "identity.",
        "duplicate key",
        "constraint",
        "23505",
    ] {
        assert!(!message.contains(leak), "message leaks {leak:?}: {message}");
        assert!(!details.contains(leak), "details leak {leak:?}: {details}");
    }
    assert_eq!(user_count(&app).await, 2);

    // The admin's own e-mail, shouted, is taken as well.
    expect_code(
        create(&app, new_user_request("ADMIN@TENANT.TEST", &[])).await,
        Code::AlreadyExists,
    );
}

#[tokio::test]
async fn the_same_request_id_returns_the_first_user_and_refuses_a_different_request() {
    let app = TestApp::spawn().await;
    let request = new_user_request("once@tenant.test", &[pb::Role::Dispatcher]);
    let first = create(&app, request.clone()).await.unwrap();
    let second = create(&app, request.clone()).await.unwrap();
    assert_eq!(second.id, first.id);
    assert_eq!(second.etag, first.etag);
    assert_eq!(second, first);

    let db = app.db.admin_pool().await.unwrap();
    let rows: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM identity.users WHERE lower(email) = 'once@tenant.test'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(rows, 1);

    let other = pb::CreateUserRequest {
        display_name: "Somebody else".into(),
        ..request.clone()
    };
    let status = expect_code(create(&app, other).await, Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["request_id"]);

    // Still the one user, and the first answer still replays.
    assert_eq!(user_count(&app).await, 2);
    assert_eq!(create(&app, request).await.unwrap().id, first.id);
}

// UpdateUser -----------------------------------------------------------------------------------

#[tokio::test]
async fn update_user_changes_masked_fields_under_the_current_etag_only() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("edit@tenant.test", &[pb::Role::Dispatcher])
        .await;

    let updated = update(
        &app,
        pb::User {
            display_name: "New Name".into(),
            // Not in the mask: must be left alone.
            email: "ignored@tenant.test".into(),
            ..user.clone()
        },
        &["display_name"],
    )
    .await
    .unwrap()
    .user
    .unwrap();
    assert_eq!(updated.display_name, "New Name");
    assert_eq!(updated.email, "edit@tenant.test");
    assert_ne!(updated.etag, user.etag);
    assert_eq!(
        get(&app, &app.admin_token, &user.id)
            .await
            .unwrap()
            .display_name,
        "New Name"
    );

    // The etag the first update consumed is stale now.
    let stale = expect_code(
        update(
            &app,
            pb::User {
                display_name: "Lost Update".into(),
                ..user.clone()
            },
            &["display_name"],
        )
        .await,
        Code::Aborted,
    );
    assert!(stale.message().contains("etag"), "{}", stale.message());
    assert_eq!(
        get(&app, &app.admin_token, &user.id)
            .await
            .unwrap()
            .display_name,
        "New Name"
    );

    // An empty mask, whether absent or with no paths.
    let absent = expect_code(
        app.client()
            .await
            .update_user(authed(
                &app.admin_token,
                pb::UpdateUserRequest {
                    user: Some(updated.clone()),
                    update_mask: None,
                },
            ))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&absent), ["update_mask"]);
    let empty = expect_code(
        update(&app, updated.clone(), &[]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&empty), ["update_mask"]);

    // A field that is not updatable.
    let password = expect_code(
        update(&app, updated.clone(), &["password"]).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&password), ["update_mask.paths[0]"]);

    // An id nobody has.
    expect_code(
        update(
            &app,
            pb::User {
                id: Uuid::now_v7().to_string(),
                etag: String::new(),
                ..updated.clone()
            },
            &["display_name"],
        )
        .await,
        Code::NotFound,
    );

    // None of the refused calls changed the row.
    let db = app.db.admin_pool().await.unwrap();
    let (name, version): (String, i32) =
        sqlx::query_as("SELECT display_name, version FROM identity.users WHERE id = $1")
            .bind(Uuid::parse_str(&user.id).unwrap())
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(name, "New Name");
    assert_eq!(format!("\"{version}\""), updated.etag);
}

// ListUsers ------------------------------------------------------------------------------------

#[tokio::test]
async fn keyset_pages_list_every_user_exactly_once_while_others_are_inserted() {
    let app = Arc::new(TestApp::spawn().await);
    let originals: Vec<pb::User> = futures::stream::iter(0..120)
        .map(|i| {
            let app = app.clone();
            async move {
                app.create_user(&format!("user{i:03}@tenant.test"), &[pb::Role::Dispatcher])
                    .await
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut expected: HashSet<String> = ids(&originals).into_iter().collect();
    expected.insert(app.admin_id.to_string());
    assert_eq!(expected.len(), 121);

    // A writer that keeps adding users until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicUsize::new(0));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel();
    let writer = tokio::spawn({
        let (app, stop, inserted) = (app.clone(), stop.clone(), inserted.clone());
        async move {
            let mut first = Some(first_tx);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                app.create_user(&format!("late{n:03}@tenant.test"), &[pb::Role::Auditor])
                    .await;
                n += 1;
                inserted.store(n, Ordering::SeqCst);
                if let Some(first) = first.take() {
                    let _ = first.send(());
                }
            }
        }
    });
    first_rx.await.unwrap();
    let before_paging = inserted.load(Ordering::SeqCst);

    // Oldest first (the default order).
    let by_time = all_pages(
        &app,
        pb::ListUsersRequest {
            page_size: 50,
            ..Default::default()
        },
        Duration::from_millis(30),
    )
    .await;
    let by_time_ids = ids(&by_time);
    let unique: HashSet<&String> = by_time_ids.iter().collect();
    assert_eq!(unique.len(), by_time_ids.len(), "a user was listed twice");
    for id in &expected {
        assert_eq!(
            by_time_ids.iter().filter(|i| *i == id).count(),
            1,
            "user {id} not listed exactly once"
        );
    }
    let mut sorted = by_time_ids.clone();
    sorted.sort_by_key(|id| Uuid::parse_str(id).unwrap());
    assert_eq!(sorted, by_time_ids, "not in creation order");
    assert_eq!(by_time_ids[0], app.admin_id.to_string());

    // By e-mail, still while users are being inserted.
    let by_email = all_pages(
        &app,
        pb::ListUsersRequest {
            page_size: 50,
            order_by: "email".into(),
            ..Default::default()
        },
        Duration::from_millis(30),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    assert!(
        inserted.load(Ordering::SeqCst) > before_paging,
        "no insert overlapped the paging"
    );

    let emails: Vec<String> = by_email.iter().map(|u| u.email.to_lowercase()).collect();
    for pair in emails.windows(2) {
        assert!(pair[0] < pair[1], "not sorted or duplicated: {pair:?}");
    }
    let by_email_ids = ids(&by_email);
    let unique: HashSet<&String> = by_email_ids.iter().collect();
    assert_eq!(unique.len(), by_email_ids.len(), "a user was listed twice");
    for id in &expected {
        assert!(by_email_ids.contains(id), "user {id} missing by e-mail");
    }

    // Descending e-mail order pages the same set backwards.
    let by_email_desc = all_pages(
        &app,
        pb::ListUsersRequest {
            page_size: 50,
            order_by: "email desc".into(),
            ..Default::default()
        },
        Duration::ZERO,
    )
    .await;
    let desc: Vec<String> = by_email_desc
        .iter()
        .map(|u| u.email.to_lowercase())
        .collect();
    for pair in desc.windows(2) {
        assert!(pair[0] > pair[1], "not sorted descending: {pair:?}");
    }
    assert_eq!(
        by_email_desc.len(),
        121 + inserted.load(Ordering::SeqCst),
        "descending listing after the writer stopped must see every user"
    );
}

#[tokio::test]
async fn forged_or_reused_page_tokens_are_invalid_arguments() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        app.create_user(&format!("p{i}@tenant.test"), &[pb::Role::Auditor])
            .await;
    }
    let first = list(
        &app,
        &app.admin_token,
        pb::ListUsersRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let token = first.next_page_token.clone();
    assert!(!token.is_empty());
    let page = |page_token: String| pb::ListUsersRequest {
        page_size: 1,
        page_token,
        ..Default::default()
    };
    // The genuine token works.
    let second = list(&app, &app.admin_token, page(token.clone()))
        .await
        .unwrap();
    assert_ne!(second.users[0].id, first.users[0].id);

    // The body edited to point elsewhere, with the original signature.
    let (body, mac) = token.split_once('.').unwrap();
    let json = String::from_utf8(URL_SAFE_NO_PAD.decode(body).unwrap()).unwrap();
    assert!(json.contains(&app.admin_id.to_string()), "{json}");
    let edited = json.replace(&app.admin_id.to_string(), &Uuid::nil().to_string());
    let tampered = format!("{}.{mac}", URL_SAFE_NO_PAD.encode(edited));
    // A well-formed token signed with a key the server does not have.
    let forged = format!("{body}.{}", URL_SAFE_NO_PAD.encode([0x5a_u8; 32]));
    for bad in [
        tampered,
        forged,
        "garbage".to_owned(),
        "a.b".to_owned(),
        format!("{token}x"),
    ] {
        let status = expect_code(
            list(&app, &app.admin_token, page(bad.clone())).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["page_token"], "token {bad:?}");
    }

    // A genuine token on a listing with another filter, order or show_deleted.
    for other in [
        pb::ListUsersRequest {
            filter: "role = ROLE_AUDITOR".into(),
            ..page(token.clone())
        },
        pb::ListUsersRequest {
            order_by: "email".into(),
            ..page(token.clone())
        },
        pb::ListUsersRequest {
            order_by: "create_time desc".into(),
            ..page(token.clone())
        },
        pb::ListUsersRequest {
            show_deleted: true,
            ..page(token.clone())
        },
    ] {
        let status = expect_code(
            list(&app, &app.admin_token, other).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["page_token"]);
    }
}

#[tokio::test]
async fn filters_select_by_role_and_email_prefix_and_refuse_unknown_fields() {
    let app = TestApp::spawn().await;
    let a1 = app
        .create_user("ops.alpha@tenant.test", &[pb::Role::Auditor])
        .await;
    let a2 = app
        .create_user(
            "sales@tenant.test",
            &[pb::Role::Auditor, pb::Role::Dispatcher],
        )
        .await;
    let d1 = app
        .create_user("OPS.Beta@tenant.test", &[pb::Role::Dispatcher])
        .await;
    // Starts with "ops" but not with "ops.": the dot is no wildcard.
    app.create_user("opsxgamma@tenant.test", &[pb::Role::FleetManager])
        .await;
    let filtered = |filter: &str| pb::ListUsersRequest {
        filter: filter.to_owned(),
        ..Default::default()
    };
    let listed = |users: Vec<pb::User>| {
        let mut ids = ids(&users);
        ids.sort();
        ids
    };
    let sorted = |mut ids: Vec<String>| {
        ids.sort();
        ids
    };

    let auditors = list(&app, &app.admin_token, filtered("role = ROLE_AUDITOR"))
        .await
        .unwrap()
        .users;
    assert!(
        auditors
            .iter()
            .all(|u| u.roles.contains(&(pb::Role::Auditor as i32)))
    );
    assert_eq!(listed(auditors), sorted(vec![a1.id.clone(), a2.id.clone()]));

    let ops = list(&app, &app.admin_token, filtered("email = \"ops.*\""))
        .await
        .unwrap()
        .users;
    assert_eq!(listed(ops), sorted(vec![a1.id.clone(), d1.id.clone()]));
    // Prefixes compare case-insensitively, and `.` and `_` are not wildcards.
    let ops_upper = list(&app, &app.admin_token, filtered("email = \"OPS.*\""))
        .await
        .unwrap()
        .users;
    assert_eq!(
        listed(ops_upper),
        sorted(vec![a1.id.clone(), d1.id.clone()])
    );
    let underscore = list(&app, &app.admin_token, filtered("email = \"ops_*\""))
        .await
        .unwrap()
        .users;
    assert!(underscore.is_empty(), "{underscore:?}");
    let percent = list(&app, &app.admin_token, filtered("email = \"%*\""))
        .await
        .unwrap()
        .users;
    assert!(percent.is_empty(), "{percent:?}");

    let both = list(
        &app,
        &app.admin_token,
        filtered("role = ROLE_AUDITOR AND email = \"ops*\""),
    )
    .await
    .unwrap()
    .users;
    assert_eq!(listed(both), vec![a1.id.clone()]);
    let exact = list(
        &app,
        &app.admin_token,
        filtered("email = \"SALES@tenant.test\""),
    )
    .await
    .unwrap()
    .users;
    assert_eq!(listed(exact), vec![a2.id.clone()]);
    let not_ops = list(&app, &app.admin_token, filtered("email != \"ops*\""))
        .await
        .unwrap()
        .users;
    assert_eq!(
        listed(not_ops),
        sorted(vec![a2.id.clone(), app.admin_id.to_string()])
    );
    // `%` and `_` in a prefix match themselves only, with `=` and with `!=`.
    let off = app
        .create_user("50%_Off@tenant.test", &[pb::Role::Auditor])
        .await;
    let offer = app
        .create_user("50xyOffer@tenant.test", &[pb::Role::Auditor])
        .await;
    let literal = list(&app, &app.admin_token, filtered("email = \"50%_o*\""))
        .await
        .unwrap()
        .users;
    assert_eq!(listed(literal), vec![off.id.clone()]);
    let not_literal = list(
        &app,
        &app.admin_token,
        filtered("email = \"50*\" AND email != \"50%_*\""),
    )
    .await
    .unwrap()
    .users;
    assert_eq!(listed(not_literal), vec![offer.id.clone()]);

    for bad in [
        "display_name = \"x\"",
        "password = \"hunter2\"",
        "role = ROLE_KING",
        "role = ROLE_UNSPECIFIED",
        "role = ROLE_ADMIN OR role = ROLE_AUDITOR",
        "email ~ \"x\"",
    ] {
        let status = expect_code(
            list(&app, &app.admin_token, filtered(bad)).await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), ["filter"], "filter {bad:?}");
    }
}

// Soft delete ----------------------------------------------------------------------------------

#[tokio::test]
async fn soft_delete_hides_the_user_locks_it_out_and_undelete_restores_it() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("leaver@tenant.test", &[pb::Role::Dispatcher])
        .await;
    let tokens = app
        .login(app.tenant_id, "leaver@tenant.test", USER_PASSWORD)
        .await
        .unwrap()
        .tokens
        .unwrap();

    let deleted = delete(&app, &app.admin_token, &user.id, &user.etag)
        .await
        .unwrap();
    assert!(deleted.delete_time.is_some());
    assert_ne!(deleted.etag, user.etag);

    // Hidden from the default listing, shown with show_deleted.
    let live = list(&app, &app.admin_token, pb::ListUsersRequest::default())
        .await
        .unwrap()
        .users;
    assert!(!ids(&live).contains(&user.id));
    let all = list(
        &app,
        &app.admin_token,
        pb::ListUsersRequest {
            show_deleted: true,
            ..Default::default()
        },
    )
    .await
    .unwrap()
    .users;
    let shown = all.iter().find(|u| u.id == user.id).expect("listed");
    assert!(shown.delete_time.is_some());

    // GetUser still answers, with delete_time.
    let got = get(&app, &app.admin_token, &user.id).await.unwrap();
    assert!(got.delete_time.is_some());
    assert_eq!(got.etag, deleted.etag);

    // No login, no refresh.
    expect_code(
        app.login(app.tenant_id, "leaver@tenant.test", USER_PASSWORD)
            .await,
        Code::Unauthenticated,
    );
    let mut client = app.client().await;
    expect_code(
        client
            .refresh_token(pb::RefreshTokenRequest {
                refresh_token: tokens.refresh_token.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    let db = app.db.admin_pool().await.unwrap();
    let reasons: Vec<Option<String>> =
        sqlx::query_scalar("SELECT revoke_reason FROM identity.sessions WHERE user_id = $1")
            .bind(Uuid::parse_str(&user.id).unwrap())
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(reasons, [Some("user_deleted".to_owned())]);
    // Deleting it again finds no live user.
    expect_code(
        delete(&app, &app.admin_token, &user.id, "").await,
        Code::NotFound,
    );

    // Undelete restores it and login works again (the old session stays revoked).
    let restored = undelete(&app, &user.id, &deleted.etag).await.unwrap();
    assert!(restored.delete_time.is_none());
    assert!(
        list(&app, &app.admin_token, pb::ListUsersRequest::default())
            .await
            .unwrap()
            .users
            .iter()
            .any(|u| u.id == user.id)
    );
    app.login(app.tenant_id, "leaver@tenant.test", USER_PASSWORD)
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
    // Undeleting a live user is a failed precondition.
    expect_code(undelete(&app, &user.id, "").await, Code::FailedPrecondition);
}

#[tokio::test]
async fn undelete_is_already_exists_when_a_live_user_took_the_email() {
    let app = TestApp::spawn().await;
    let old = app
        .create_user("taken@tenant.test", &[pb::Role::Dispatcher])
        .await;
    let deleted = delete(&app, &app.admin_token, &old.id, "").await.unwrap();
    // The e-mail is free again once its holder is deleted, in any case.
    let new = app
        .create_user("TAKEN@tenant.test", &[pb::Role::Auditor])
        .await;
    assert_ne!(new.id, old.id);

    let status = expect_code(
        undelete(&app, &old.id, &deleted.etag).await,
        Code::AlreadyExists,
    );
    assert_eq!(violated_fields(&status), ["email"]);
    // Still deleted, and the new user keeps the address.
    assert!(
        get(&app, &app.admin_token, &old.id)
            .await
            .unwrap()
            .delete_time
            .is_some()
    );
    app.login(app.tenant_id, "taken@tenant.test", USER_PASSWORD)
        .await
        .unwrap();
}

#[tokio::test]
async fn deleting_yourself_is_a_failed_precondition() {
    let app = TestApp::spawn().await;
    let status = expect_code(
        delete(&app, &app.admin_token, &app.admin_id.to_string(), "").await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("itself"), "{}", status.message());
    assert!(
        get(&app, &app.admin_token, &app.admin_id.to_string())
            .await
            .unwrap()
            .delete_time
            .is_none()
    );
}

// Roles ----------------------------------------------------------------------------------------

#[tokio::test]
async fn granting_and_revoking_roles_is_idempotent_and_guarded() {
    let app = TestApp::spawn().await;
    let user = app
        .create_user("roles@tenant.test", &[pb::Role::Dispatcher])
        .await;

    let once = grant(&app, &app.admin_token, &user.id, pb::Role::Auditor)
        .await
        .unwrap();
    assert_eq!(
        once.roles,
        role_list(&[pb::Role::Auditor, pb::Role::Dispatcher])
    );
    assert_ne!(once.etag, user.etag);
    let twice = grant(&app, &app.admin_token, &user.id, pb::Role::Auditor)
        .await
        .unwrap();
    assert_eq!(twice.roles, once.roles, "granted twice");
    assert_eq!(
        twice.etag, once.etag,
        "a no-op grant must not change the etag"
    );
    let db = app.db.admin_pool().await.unwrap();
    let held: i64 =
        sqlx::query_scalar("SELECT count(*) FROM identity.user_roles WHERE user_id = $1")
            .bind(Uuid::parse_str(&user.id).unwrap())
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(held, 2);

    let revoked = revoke(&app, &app.admin_token, &user.id, pb::Role::Auditor)
        .await
        .unwrap();
    assert_eq!(revoked.roles, role_list(&[pb::Role::Dispatcher]));
    let again = revoke(&app, &app.admin_token, &user.id, pb::Role::Auditor)
        .await
        .unwrap();
    assert_eq!(again.roles, revoked.roles);
    assert_eq!(again.etag, revoked.etag);

    // Only platform admins hand out (or take) the platform admin role.
    let (_, admin_only) = app
        .user_with_token("x@tenant.test", &[pb::Role::Admin])
        .await;
    expect_code(
        grant(&app, &admin_only, &user.id, pb::Role::PlatformAdmin).await,
        Code::PermissionDenied,
    );
    expect_code(
        app.create_user_as(&admin_only, "boss@tenant.test", &[pb::Role::PlatformAdmin])
            .await,
        Code::PermissionDenied,
    );
    expect_code(
        revoke(
            &app,
            &admin_only,
            &app.admin_id.to_string(),
            pb::Role::PlatformAdmin,
        )
        .await,
        Code::PermissionDenied,
    );
    // The admin-only user can still grant ordinary roles.
    grant(&app, &admin_only, &user.id, pb::Role::FleetManager)
        .await
        .unwrap();

    // A driver must be linked to a driver first; the refused grant leaves nothing behind.
    let status = expect_code(
        grant(&app, &app.admin_token, &user.id, pb::Role::Driver).await,
        Code::FailedPrecondition,
    );
    assert!(
        status.message().contains("driver_id"),
        "{}",
        status.message()
    );
    let now = get(&app, &app.admin_token, &user.id).await.unwrap();
    assert!(!now.roles.contains(&(pb::Role::Driver as i32)));
    let linked = update(
        &app,
        pb::User {
            driver_id: Uuid::now_v7().to_string(),
            ..now
        },
        &["driver_id"],
    )
    .await
    .unwrap()
    .user
    .unwrap();
    let driver = grant(&app, &app.admin_token, &linked.id, pb::Role::Driver)
        .await
        .unwrap();
    assert!(driver.roles.contains(&(pb::Role::Driver as i32)));

    // Unknown user and unspecified role.
    expect_code(
        grant(
            &app,
            &app.admin_token,
            &Uuid::now_v7().to_string(),
            pb::Role::Auditor,
        )
        .await,
        Code::NotFound,
    );
    let status = expect_code(
        grant(&app, &app.admin_token, &user.id, pb::Role::Unspecified).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["role"]);
}

// Permissions ----------------------------------------------------------------------------------

#[tokio::test]
async fn auditors_read_clerks_read_only_themselves_and_anonymous_calls_are_refused() {
    let app = TestApp::spawn().await;
    let (_, auditor) = app
        .user_with_token("audit@tenant.test", &[pb::Role::Auditor])
        .await;
    let (clerk, clerk_token) = app
        .user_with_token("clerk@tenant.test", &[pb::Role::WarehouseClerk])
        .await;

    // Auditor: reads, never writes.
    let users = list(&app, &auditor, pb::ListUsersRequest::default())
        .await
        .unwrap()
        .users;
    assert_eq!(users.len(), 3);
    get(&app, &auditor, &clerk.id).await.unwrap();
    let denied = expect_code(
        app.create_user_as(&auditor, "new@tenant.test", &[pb::Role::Dispatcher])
            .await,
        Code::PermissionDenied,
    );
    assert!(
        denied.message().contains("identity.users.write"),
        "{}",
        denied.message()
    );
    expect_code(
        delete(&app, &auditor, &clerk.id, "").await,
        Code::PermissionDenied,
    );
    expect_code(
        grant(&app, &auditor, &clerk.id, pb::Role::Admin).await,
        Code::PermissionDenied,
    );
    assert_eq!(user_count(&app).await, 3);

    // Clerk: no user listing, but itself.
    expect_code(
        list(&app, &clerk_token, pb::ListUsersRequest::default()).await,
        Code::PermissionDenied,
    );
    let me = get(&app, &clerk_token, &clerk.id).await.unwrap();
    assert_eq!(me.email, "clerk@tenant.test");
    expect_code(
        get(&app, &clerk_token, &app.admin_id.to_string()).await,
        Code::PermissionDenied,
    );

    // Nobody.
    let mut client = app.client().await;
    expect_code(
        client.list_users(pb::ListUsersRequest::default()).await,
        Code::Unauthenticated,
    );
    expect_code(
        client
            .get_user(pb::GetUserRequest {
                id: clerk.id.clone(),
            })
            .await,
        Code::Unauthenticated,
    );
    expect_code(
        client
            .list_users(authed("not.a.token", pb::ListUsersRequest::default()))
            .await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn changing_an_email_to_a_taken_one_names_the_request_field() {
    let app = TestApp::spawn().await;
    app.create_user("taken@tenant.test", &[pb::Role::Auditor])
        .await;
    let mover = app
        .create_user("mover@tenant.test", &[pb::Role::Auditor])
        .await;
    let status = update(
        &app,
        pb::User {
            email: "TAKEN@tenant.test".into(),
            ..mover.clone()
        },
        &["email"],
    )
    .await
    .expect_err("the e-mail is taken");
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(violated_fields(&status), ["user.email"]);
    // Nothing changed.
    let unchanged = get(&app, &app.admin_token, &mover.id).await.unwrap();
    assert_eq!(unchanged.email, "mover@tenant.test");
    assert_eq!(unchanged.etag, mover.etag);
}
