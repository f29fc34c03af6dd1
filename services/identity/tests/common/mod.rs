//! `TestApp`: a real identity server on an ephemeral port over a fresh database, with a
//! bootstrapped tenant and a logged-in admin, plus builders and assertion helpers.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use identity::app::{self, MIGRATOR, SCHEMA};
use identity::bootstrap::{self, Bootstrap};
use identity::config::Config;
use logistics_proto::identity::v1 as pb;
use logistics_testkit::TestDatabase;
use pb::identity_service_client::IdentityServiceClient;
use secrecy::SecretString;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use tonic::{Request, Status};
use uuid::Uuid;

#[allow(unused_imports)] // Each test file uses its own share of the helpers.
pub use logistics_testkit::status::{expect_code, preconditions, violated_fields};

/// Password of every bootstrapped admin.
pub const ADMIN_PASSWORD: &str = "admin password 1234";
/// Password builders give users.
pub const USER_PASSWORD: &str = "user password 5678";

/// One identity server and its database, torn down when dropped.
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The test's own database.
    pub db: TestDatabase,
    /// The configuration the server runs with.
    pub config: Config,
    /// The bootstrapped tenant.
    pub tenant_id: Uuid,
    /// Its admin (also platform admin).
    pub admin_id: Uuid,
    /// The admin's e-mail.
    pub admin_email: String,
    /// An access token of the admin.
    pub admin_token: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestApp {
    /// Fresh database, real server on 127.0.0.1:0, bootstrapped tenant, admin token.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Like [`TestApp::spawn`], with the configuration adjusted by `adjust` first.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let _ = logistics_testkit::captured_logs();
        let db = TestDatabase::create(&SCHEMA).await.expect("test database");
        logistics_platform::db::migrate(&db.url_as(SCHEMA.owner_role), SCHEMA.schema, &MIGRATOR)
            .await
            .expect("migrations");
        let mut config = test_config(&db.url_as(SCHEMA.app_role));
        adjust(&mut config);

        let pool =
            logistics_platform::db::pool(&db.url_as(SCHEMA.app_role), 2, "identity-test-bootstrap")
                .unwrap();
        let admin_email = "admin@tenant.test".to_owned();
        let done = bootstrap::run(
            &pool,
            &Bootstrap {
                tenant_id: Uuid::now_v7(),
                tenant_name: "Test tenant".to_owned(),
                admin_email: admin_email.clone(),
                admin_password: SecretString::from(ADMIN_PASSWORD),
            },
        )
        .await
        .expect("bootstrap");
        pool.close().await;

        let (addr, shutdown, server) = start(config.clone()).await;
        let mut app = Self {
            addr,
            db,
            config,
            tenant_id: done.tenant_id,
            admin_id: done.admin_id,
            admin_email,
            admin_token: String::new(),
            shutdown: Some(shutdown),
            server: Some(server),
        };
        if app.config.tls.tls_cert.is_none() {
            app.wait_until_serving().await;
            let login = app
                .login(app.tenant_id, &app.admin_email.clone(), ADMIN_PASSWORD)
                .await
                .expect("admin login");
            app.admin_token = login.tokens.unwrap().access_token;
        }
        app
    }

    /// A plaintext client.
    pub async fn client(&self) -> IdentityServiceClient<Channel> {
        IdentityServiceClient::new(self.channel().await)
    }

    /// A plaintext channel to the server.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect")
    }

    /// Waits until health says SERVING (the database watcher has run once).
    pub async fn wait_until_serving(&self) {
        use tonic_health::pb::health_check_response::ServingStatus;
        use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
        let mut health = HealthClient::new(self.channel().await);
        for _ in 0..100 {
            let status = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|r| r.into_inner().status);
            if status.ok() == Some(ServingStatus::Serving as i32) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("server never became SERVING");
    }

    /// Logs in.
    pub async fn login(
        &self,
        tenant_id: Uuid,
        email: &str,
        password: &str,
    ) -> Result<pb::LoginResponse, Status> {
        self.client()
            .await
            .login(pb::LoginRequest {
                tenant_id: tenant_id.to_string(),
                email: email.to_owned(),
                password: password.to_owned(),
            })
            .await
            .map(|r| r.into_inner())
    }

    /// Creates a user with `roles` as the admin; panics on failure.
    pub async fn create_user(&self, email: &str, roles: &[pb::Role]) -> pb::User {
        self.create_user_as(&self.admin_token, email, roles)
            .await
            .expect("create user")
    }

    /// Creates a user with `roles` with `token`.
    pub async fn create_user_as(
        &self,
        token: &str,
        email: &str,
        roles: &[pb::Role],
    ) -> Result<pb::User, Status> {
        let request = new_user_request(email, roles);
        self.client()
            .await
            .create_user(authed(token, request))
            .await
            .map(|r| r.into_inner().user.unwrap())
    }

    /// Creates a user and logs it in; returns the user and its access token.
    pub async fn user_with_token(&self, email: &str, roles: &[pb::Role]) -> (pb::User, String) {
        let user = self.create_user(email, roles).await;
        let login = self
            .login(self.tenant_id, email, USER_PASSWORD)
            .await
            .expect("user login");
        (user, login.tokens.unwrap().access_token)
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        match self.server.take() {
            Some(server) => server.await?,
            None => Ok(()),
        }
    }

    /// Triggers shutdown without waiting; returns the server task.
    pub fn begin_shutdown(&mut self) -> JoinHandle<anyhow::Result<()>> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.server.take().expect("server running")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// Starts a server with `config` on an ephemeral port.
pub async fn start(
    config: Config,
) -> (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<anyhow::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app::run(config, listener, async {
        let _ = rx.await;
    }));
    (addr, tx, server)
}

/// The configuration tests run with: fresh keys, lockout after 3 failures.
pub fn test_config(database_url: &str) -> Config {
    Config::for_tests(database_url)
}

/// A valid CreateUserRequest for `email` with `roles`, [`USER_PASSWORD`] and a fresh request id.
pub fn new_user_request(email: &str, roles: &[pb::Role]) -> pb::CreateUserRequest {
    pb::CreateUserRequest {
        request_id: Uuid::now_v7().to_string(),
        email: email.to_owned(),
        display_name: format!("User {email}"),
        password: USER_PASSWORD.to_owned(),
        roles: roles.iter().map(|r| *r as i32).collect(),
        partner_id: String::new(),
        driver_id: String::new(),
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}
