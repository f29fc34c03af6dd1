//! The server around the handlers: health, reflection, TLS and mutual TLS, graceful shutdown,
//! behaviour while the database is unreachable, request ids, and what never reaches a log.

#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::{ADMIN_PASSWORD, TestApp, USER_PASSWORD, authed, expect_code, start, test_config};
use logistics_proto::identity::v1 as pb;
use logistics_testkit::TestPki;
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// Runs the `grpcurl` the test script installs (scripts/ensure-tools.sh) off the runtime, so
/// the server in this process keeps serving; a missing grpcurl fails loudly.
async fn grpcurl(args: &[&str]) -> Output {
    let path = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".to_owned());
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || Command::new(path).args(args).output())
        .await
        .unwrap()
        .expect("grpcurl must be installed: run scripts/ensure-tools.sh (scripts/test.sh does)")
}

async fn health_of(channel: Channel, service: &str) -> Result<i32, tonic::Status> {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .map(|r| r.into_inner().status)
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_identity_service() {
    let app = TestApp::spawn().await;
    let serving = ServingStatus::Serving as i32;
    assert_eq!(health_of(app.channel().await, "").await.unwrap(), serving);
    assert_eq!(
        health_of(app.channel().await, "logistics.identity.v1.IdentityService")
            .await
            .unwrap(),
        serving
    );
    // Health needs no token; an unknown service is NOT_FOUND, as the health protocol says.
    expect_code(
        health_of(app.channel().await, "no.such.Service").await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn grpcurl_lists_and_describes_services_through_reflection_without_proto_files() {
    let app = TestApp::spawn().await;
    let addr = app.addr.to_string();
    let output = grpcurl(&["-plaintext", &addr, "list"]).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let services = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "logistics.identity.v1.IdentityService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            services.lines().any(|l| l.trim() == expected),
            "{expected} missing from:\n{services}"
        );
    }
    // Other services' packages are in the descriptor set but not served here.
    assert!(!services.contains("logistics.partner.v1"), "{services}");

    let described = grpcurl(&[
        "-plaintext",
        &addr,
        "describe",
        "logistics.identity.v1.User",
    ])
    .await;
    assert!(
        described.status.success(),
        "{}",
        String::from_utf8_lossy(&described.stderr)
    );
    assert!(
        String::from_utf8(described.stdout)
            .unwrap()
            .contains("display_name")
    );

    // A real call with JSON in and out, as an operator would debug.
    let body = format!(
        r#"{{"tenant_id":"{}","email":"{}","password":"{ADMIN_PASSWORD}"}}"#,
        app.tenant_id, app.admin_email
    );
    let login = grpcurl(&[
        "-plaintext",
        "-d",
        &body,
        &addr,
        "logistics.identity.v1.IdentityService/Login",
    ])
    .await;
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&login.stdout).unwrap();
    assert!(
        json["tokens"]["accessToken"]
            .as_str()
            .is_some_and(|t| t.starts_with("ey"))
    );

    // Without a token, an authenticated method is refused with UNAUTHENTICATED.
    let denied = grpcurl(&[
        "-plaintext",
        &addr,
        "logistics.identity.v1.IdentityService/GetTenant",
    ])
    .await;
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("Unauthenticated"));
}

#[tokio::test]
async fn mutual_tls_accepts_a_client_certificate_from_the_ca_and_refuses_a_client_without_one() {
    let pki = TestPki::generate().unwrap();
    let app = TestApp::spawn_with(|config| {
        config.tls.tls_cert = Some(pki.server_cert.clone());
        config.tls.tls_key = Some(pki.server_key.clone());
        config.tls.tls_client_ca = Some(pki.ca_cert.clone());
    })
    .await;
    let ca = Certificate::from_pem(std::fs::read(&pki.ca_cert).unwrap());
    let url = format!("https://localhost:{}", app.addr.port());

    let with_cert = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca.clone())
                .domain_name("localhost")
                .identity(Identity::from_pem(
                    std::fs::read(&pki.client_cert).unwrap(),
                    std::fs::read(&pki.client_key).unwrap(),
                )),
        )
        .unwrap()
        .connect()
        .await
        .unwrap();
    // Wait for the database watcher, then make a real call over mTLS.
    let mut serving = false;
    for _ in 0..100 {
        if health_of(with_cert.clone(), "").await.ok() == Some(ServingStatus::Serving as i32) {
            serving = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(serving);
    let login = pb::identity_service_client::IdentityServiceClient::new(with_cert)
        .login(pb::LoginRequest {
            tenant_id: app.tenant_id.to_string(),
            email: app.admin_email.clone(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
        .unwrap();
    assert!(login.into_inner().tokens.is_some());

    // No client certificate: the handshake or the first call fails; nothing is served.
    let without_cert = Channel::from_shared(url.clone())
        .unwrap()
        .tls_config(
            ClientTlsConfig::new()
                .ca_certificate(ca)
                .domain_name("localhost"),
        )
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = without_cert {
        let status = health_of(channel, "")
            .await
            .expect_err("served without a client certificate");
        assert_ne!(status.code(), Code::Ok);
    }

    // Plaintext against the TLS port is refused too.
    let plaintext = Channel::from_shared(format!("http://127.0.0.1:{}", app.addr.port()))
        .unwrap()
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert!(health_of(channel, "").await.is_err());
    }
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_call_finish() {
    let mut app = TestApp::spawn().await;
    let db = app.db.admin_pool().await.unwrap();
    // Hold a lock that the next ListUsers must wait for.
    let mut blocker = db.begin().await.unwrap();
    sqlx::query("LOCK TABLE identity.users IN ACCESS EXCLUSIVE MODE")
        .execute(&mut *blocker)
        .await
        .unwrap();

    let mut client = app.client().await;
    let token = app.admin_token.clone();
    let in_flight = tokio::spawn(async move {
        client
            .list_users(authed(&token, pb::ListUsersRequest::default()))
            .await
    });
    // Wait until the call is inside the database, waiting on the lock.
    let mut waiting = false;
    for _ in 0..200 {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'identity' AND wait_event_type = 'Lock'",
        )
        .fetch_one(&db)
        .await
        .unwrap();
        if n > 0 {
            waiting = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(waiting, "the call never reached the database");

    let server = app.begin_shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !server.is_finished(),
        "the server must wait for the in-flight call"
    );
    blocker.rollback().await.unwrap();

    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight call completes");
    assert_eq!(response.into_inner().users.len(), 1);
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable_and_not_serving() {
    // Nothing listens on port 1: every connection attempt fails at once.
    let (addr, _shutdown, _server) =
        start(test_config("postgres://identity_app@127.0.0.1:1/none")).await;
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        health_of(channel.clone(), "").await.unwrap(),
        ServingStatus::NotServing as i32
    );

    let status = expect_code(
        pb::identity_service_client::IdentityServiceClient::new(channel)
            .login(pb::LoginRequest {
                tenant_id: uuid::Uuid::now_v7().to_string(),
                email: "a@b.example".into(),
                password: "whatever password".into(),
            })
            .await,
        Code::Unavailable,
    );
    for leak in [
        "127.0.0.1",
        "5432",
        "identity_app",
        "connection refused",
        "sqlx",
    ] {
        assert!(
            !status
                .message()
                .to_lowercase()
                .contains(&leak.to_lowercase()),
            "{}",
            status.message()
        );
    }
}

#[tokio::test]
async fn losing_the_database_turns_health_not_serving_until_it_returns() {
    let app = TestApp::spawn().await;
    // ALTER DATABASE must run from another database.
    let db = sqlx::PgPool::connect(&logistics_testkit::admin_url())
        .await
        .unwrap();
    let name = app.db.name.clone();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false"
    )))
    .execute(&db)
    .await
    .unwrap();
    // Only this test's database: other tests run beside it.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = 'identity' AND datname = $1",
    )
    .bind(&name)
    .execute(&db)
    .await
    .unwrap();

    let mut seen = None;
    for _ in 0..100 {
        seen = health_of(app.channel().await, "").await.ok();
        if seen == Some(ServingStatus::NotServing as i32) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen, Some(ServingStatus::NotServing as i32));
    let status = app
        .client()
        .await
        .list_users(authed(&app.admin_token, pb::ListUsersRequest::default()))
        .await
        .expect_err("no database, no users");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS true"
    )))
    .execute(&db)
    .await
    .unwrap();
    app.wait_until_serving().await;
    app.client()
        .await
        .list_users(authed(&app.admin_token, pb::ListUsersRequest::default()))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_call_gets_a_request_id_and_a_good_one_is_echoed() {
    let app = TestApp::spawn().await;
    let mut request = authed(&app.admin_token, pb::GetTenantRequest {});
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-123".parse().unwrap());
    let response = app.client().await.get_tenant(request).await.unwrap();
    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        "trace-me-123"
    );

    let response = app
        .client()
        .await
        .get_tenant(authed(&app.admin_token, pb::GetTenantRequest {}))
        .await
        .unwrap();
    let generated = response
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(uuid::Uuid::parse_str(generated).is_ok());
}

#[tokio::test]
async fn passwords_and_tokens_never_appear_in_the_logs() {
    let logs = logistics_testkit::captured_logs();
    let app = TestApp::spawn().await;
    let secret_password = "never-log-this-password-7Q";
    let mut client = app.client().await;
    client
        .create_user(authed(
            &app.admin_token,
            pb::CreateUserRequest {
                request_id: uuid::Uuid::now_v7().to_string(),
                email: "quiet@tenant.test".into(),
                display_name: "Quiet".into(),
                password: secret_password.into(),
                roles: vec![pb::Role::Auditor as i32],
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let tokens = app
        .login(app.tenant_id, "quiet@tenant.test", secret_password)
        .await
        .unwrap()
        .tokens
        .unwrap();
    let _ = app
        .login(
            app.tenant_id,
            "quiet@tenant.test",
            "wrong-password-also-secret",
        )
        .await;
    let refreshed = client
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    let _ = client
        .refresh_token(pb::RefreshTokenRequest {
            refresh_token: tokens.refresh_token.clone(),
        })
        .await;
    let _ = USER_PASSWORD;

    let captured = logs.contents();
    assert!(captured.contains("rpc finished"), "logs were not captured");
    assert!(
        captured.contains("refresh token reused"),
        "the reuse must be logged, without the token"
    );
    for secret in [
        secret_password,
        "wrong-password-also-secret",
        ADMIN_PASSWORD,
        &tokens.access_token,
        &tokens.refresh_token,
        &refreshed.access_token,
        &refreshed.refresh_token,
        &app.admin_token,
    ] {
        assert!(!captured.contains(secret), "a secret leaked into the logs");
    }
    // The signature part of a JWT alone must not appear either.
    let signature = tokens.access_token.rsplit('.').next().unwrap();
    assert!(!captured.contains(signature));
}
