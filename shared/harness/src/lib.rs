//! A real identity service for other services' tests.
//!
//! [`Identity::start`] creates a fresh database, provisions identity's schema and the schemas of
//! the service under test in it (one database, one schema per service, as in production),
//! migrates identity, bootstraps a tenant whose admin is also platform admin, and serves identity
//! on an ephemeral port. The service under test then verifies tokens against it over gRPC,
//! exactly as it will in production.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use identity::app::{self, MIGRATOR, SCHEMA};
use identity::bootstrap::{self, Bootstrap};
use identity::config::Config;
use logistics_platform::db::{self, RolePasswords, SchemaSpec};
use logistics_proto::identity::v1 as pb;
use logistics_testkit::TestDatabase;
use pb::identity_service_client::IdentityServiceClient;
use secrecy::SecretString;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Request;
use tonic::transport::Channel;
use uuid::Uuid;

/// Runs `start` with an address of 127.0.0.1 whose port was free a moment before, and again
/// with another (five tries in all) when something took that port in between: for addresses a
/// service binds itself from its configuration, such as `METRICS_ADDR`, which a test cannot
/// hand over already bound.
pub async fn on_a_free_port<T, F, Fut>(mut start: F) -> anyhow::Result<T>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut taken = Vec::new();
    for _ in 0..5 {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        match start(addr).await {
            Err(error) if address_in_use(&error) => taken.push(addr),
            other => return other,
        }
    }
    anyhow::bail!("every port tried was taken before the service bound it: {taken:?}")
}

fn address_in_use(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::AddrInUse)
    })
}

/// Waits until the gRPC server at `addr` reports SERVING (its database answers).
pub async fn wait_until_serving(addr: SocketAddr) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    // Lazily connected: a server still starting (not yet listening) is simply asked again.
    let channel = Channel::from_shared(format!("http://{addr}"))?.connect_lazy();
    let mut health = HealthClient::new(channel);
    for _ in 0..200 {
        let status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map(|r| r.into_inner().status);
        if status.ok() == Some(ServingStatus::Serving as i32) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("the server at {addr} never became SERVING")
}

/// A service under test, served on an ephemeral port until dropped.
pub struct Server {
    /// Where it listens.
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Server {
    /// Binds `127.0.0.1:0`, starts `run(listener, shutdown)` (a service's `app::run` with its
    /// configuration) and waits until it reports SERVING.
    pub async fn start<F, Fut>(run: F) -> anyhow::Result<Self>
    where
        F: FnOnce(tokio::net::TcpListener, futures_shutdown::Shutdown) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        Self::start_at("127.0.0.1:0".parse()?, run).await
    }

    /// Like [`Server::start`] on a given address: a server stopped with [`Server::stop`] comes
    /// back where its clients look for it.
    pub async fn start_at<F, Fut>(addr: SocketAddr, run: F) -> anyhow::Result<Self>
    where
        F: FnOnce(tokio::net::TcpListener, futures_shutdown::Shutdown) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let mut handle = tokio::spawn(run(listener, futures_shutdown::Shutdown(rx)));
        // A server that stops before it serves (it could not bind its metrics address, say)
        // answers at once with its own error, kept in the chain for the caller to inspect.
        tokio::select! {
            waited = wait_until_serving(addr) => {
                if let Err(waited) = waited {
                    handle.abort();
                    return Err(waited);
                }
            }
            ended = &mut handle => {
                let error = match ended? {
                    Ok(()) => anyhow::anyhow!("the server stopped without an error"),
                    Err(error) => error,
                };
                return Err(error.context("the server stopped before it was serving"));
            }
        }
        Ok(Self {
            addr,
            shutdown: Some(tx),
            server: Some(handle),
        })
    }

    /// Shuts it down and waits until it has stopped serving (its port is free again).
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
        }
    }

    /// A channel to it.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Channel::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await?)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// The shutdown signal handed to a service under test.
pub mod futures_shutdown {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use tokio::sync::oneshot;

    /// Resolves when the test's [`super::Server`] is dropped.
    pub struct Shutdown(pub(crate) oneshot::Receiver<()>);

    impl Future for Shutdown {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            Pin::new(&mut self.0).poll(cx).map(|_| ())
        }
    }
}

/// Password of every user the harness creates.
pub const PASSWORD: &str = "harness password 123";

/// A running identity service and the database it shares with the service under test.
pub struct Identity {
    // Held to stop identity when dropped; first, so that happens before its database is
    // dropped (fields drop in order).
    _server: Server,
    /// The test's database (identity's schema and the others given to `start`).
    pub db: TestDatabase,
    /// Where identity listens.
    pub addr: SocketAddr,
    /// The bootstrapped tenant.
    pub tenant_id: Uuid,
    /// An access token of the tenant's admin (admin and platform admin roles).
    pub admin_token: String,
}

impl Identity {
    /// Starts identity in a fresh database where `schemas` are provisioned too.
    pub async fn start(schemas: &[&SchemaSpec]) -> anyhow::Result<Self> {
        let db = TestDatabase::create(&SCHEMA).await?;
        for spec in schemas {
            db::provision(&db.admin_url(), spec, &RolePasswords::default()).await?;
        }
        db::migrate(&db.url_as(SCHEMA.owner_role), SCHEMA.schema, &MIGRATOR).await?;
        let config = Config::for_tests(&db.url_as(SCHEMA.app_role));
        let pool = db::pool(&db.url_as(SCHEMA.app_role), 2, "harness-bootstrap")?;
        let done = bootstrap::run(
            &pool,
            &Bootstrap {
                tenant_id: Uuid::now_v7(),
                tenant_name: "Harness tenant".to_owned(),
                admin_email: "admin@harness.test".to_owned(),
                admin_password: SecretString::from(PASSWORD),
            },
        )
        .await?;
        pool.close().await;

        let server =
            Server::start(|listener, shutdown| app::run(config, listener, shutdown)).await?;
        let mut identity = Self {
            addr: server.addr,
            _server: server,
            db,
            tenant_id: done.tenant_id,
            admin_token: String::new(),
        };
        identity.admin_token = identity.login(done.tenant_id, "admin@harness.test").await?;
        Ok(identity)
    }

    /// `http://127.0.0.1:<port>`, for the service's IDENTITY_URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of identity.
    pub async fn client(&self) -> anyhow::Result<IdentityServiceClient<Channel>> {
        let channel = Channel::from_shared(self.url())?.connect().await?;
        Ok(IdentityServiceClient::new(channel))
    }

    /// Logs a user of `tenant_id` in with [`PASSWORD`]; returns the access token.
    pub async fn login(&self, tenant_id: Uuid, email: &str) -> anyhow::Result<String> {
        let response = self
            .client()
            .await?
            .login(pb::LoginRequest {
                tenant_id: tenant_id.to_string(),
                email: email.to_owned(),
                password: PASSWORD.to_owned(),
            })
            .await?
            .into_inner();
        Ok(response
            .tokens
            .context("login answered no tokens")?
            .access_token)
    }

    /// Creates a user in the admin's tenant with `roles` (and the partner or driver link those
    /// roles need) and returns its access token.
    pub async fn user(
        &self,
        email: &str,
        roles: &[pb::Role],
        partner_id: Option<Uuid>,
        driver_id: Option<Uuid>,
    ) -> anyhow::Result<String> {
        self.user_in(
            self.tenant_id,
            &self.admin_token,
            email,
            roles,
            partner_id,
            driver_id,
        )
        .await
    }

    /// Like [`Identity::user`], in the tenant of `admin_token`.
    pub async fn user_in(
        &self,
        tenant_id: Uuid,
        admin_token: &str,
        email: &str,
        roles: &[pb::Role],
        partner_id: Option<Uuid>,
        driver_id: Option<Uuid>,
    ) -> anyhow::Result<String> {
        let request = pb::CreateUserRequest {
            request_id: Uuid::now_v7().to_string(),
            email: email.to_owned(),
            display_name: email.to_owned(),
            password: PASSWORD.to_owned(),
            roles: roles.iter().map(|r| *r as i32).collect(),
            partner_id: partner_id.map(|id| id.to_string()).unwrap_or_default(),
            driver_id: driver_id.map(|id| id.to_string()).unwrap_or_default(),
        };
        self.client()
            .await?
            .create_user(authed(admin_token, request))
            .await?;
        self.login(tenant_id, email).await
    }

    /// Creates another tenant; returns its id and an access token of its admin.
    pub async fn other_tenant(&self, name: &str) -> anyhow::Result<(Uuid, String)> {
        let admin_email = format!("admin@{}.test", name.to_lowercase().replace(' ', "-"));
        let response = self
            .client()
            .await?
            .create_tenant(authed(
                &self.admin_token,
                pb::CreateTenantRequest {
                    request_id: Uuid::now_v7().to_string(),
                    display_name: name.to_owned(),
                    admin_email: admin_email.clone(),
                    admin_display_name: "Admin".to_owned(),
                    admin_password: PASSWORD.to_owned(),
                },
            ))
            .await?
            .into_inner();
        let tenant_id: Uuid = response.tenant.context("no tenant")?.id.parse()?;
        let token = self.login(tenant_id, &admin_email).await?;
        Ok((tenant_id, token))
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn address_taken(addr: SocketAddr) -> anyhow::Error {
        anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::AddrInUse))
            .context(format!("binding METRICS_ADDR {addr}"))
    }

    #[tokio::test]
    async fn a_port_taken_before_the_service_binds_it_is_tried_again_with_another() {
        let mut tried = Vec::new();
        let got = on_a_free_port(|addr| {
            tried.push(addr);
            let first = tried.len() == 1;
            async move {
                if first {
                    Err(address_taken(addr))
                } else {
                    Ok(addr)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!(tried.len(), 2);
        assert_eq!(got, tried[1]);

        // Any other error is the answer, at once; a port taken five times running gives up.
        let other = on_a_free_port(|_| async { Err::<(), _>(anyhow::anyhow!("no database")) });
        assert_eq!(other.await.unwrap_err().to_string(), "no database");
        let mut attempts = 0;
        let taken = on_a_free_port(|addr| {
            attempts += 1;
            async move { Err::<(), _>(address_taken(addr)) }
        });
        assert!(taken.await.is_err());
        assert_eq!(attempts, 5);
    }

    #[tokio::test]
    async fn a_server_that_stops_before_serving_answers_at_once_with_its_own_error() {
        let error = Server::start(|_listener, _shutdown| async {
            Err(address_taken("127.0.0.1:9".parse().unwrap()))
        })
        .await
        .err()
        .unwrap();
        assert!(address_in_use(&error), "{error:#}");
        assert!(
            format!("{error:#}").contains("stopped before it was serving"),
            "{error:#}"
        );
    }
}
