//! Calling the services: bearer credentials, logging in, and a call's outcome as the driver
//! counts it.

use anyhow::Context as _;
use logistics_platform::auth::Caller;
use logistics_proto::identity::v1 as idpb;
use tonic::transport::Channel;
use uuid::Uuid;

/// A logged-in admin.
#[derive(Debug, Clone)]
pub struct Session {
    /// The access token.
    pub token: String,
    /// The user's id.
    pub user_id: Uuid,
}

/// Logs `email` in to `tenant_id` at identity's `identity_url`.
pub async fn login(
    identity_url: &str,
    tenant_id: Uuid,
    email: &str,
    password: &str,
) -> anyhow::Result<Session> {
    let login =
        idpb::identity_service_client::IdentityServiceClient::new(channel(identity_url).await?)
            .login(idpb::LoginRequest {
                tenant_id: tenant_id.to_string(),
                email: email.to_owned(),
                password: password.to_owned(),
            })
            .await
            .context("logging in")?
            .into_inner();
    Ok(Session {
        token: login.tokens.context("no tokens")?.access_token,
        user_id: login.user.context("no user")?.id.parse()?,
    })
}

/// A channel to `url`, connected.
pub async fn channel(url: &str) -> anyhow::Result<Channel> {
    Channel::from_shared(url.to_owned())?
        .connect()
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// `message` with `token` as its bearer credential.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Ok(value) = format!("Bearer {token}").parse() {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

/// The request as the auth layer hands it to a handler: the verified `caller` attached. For the
/// in-process (database-only) paths.
pub fn local<T>(caller: &Caller, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(caller.clone());
    request
}

/// A call's outcome as the driver counts it: the status code and message of a failure.
pub fn grpc<T>(result: Result<tonic::Response<T>, tonic::Status>) -> Result<(), String> {
    result
        .map(|_| ())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}
