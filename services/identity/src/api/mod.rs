//! Identity's gRPC handlers: decode, authorize, validate, call the store in one transaction,
//! encode. No SQL here; every error leaves as a `logistics_platform::Error`, mapped once.

mod convert;
mod sessions;
mod tenants;
mod users;

use std::sync::Arc;

use logistics_platform::aip::PageTokens;
use logistics_platform::auth::{self, TokenVerifier};
use logistics_proto::identity::v1 as pb;
use sqlx::PgPool;
use tonic::{Request, Response, Status};

use crate::domain::lockout::LockoutPolicy;
use crate::passwords::PasswordHasher;
use crate::signer::Signer;

/// What every handler shares.
pub struct State {
    /// Runtime-role pool; only ever used through `DbContext::begin`.
    pub pool: PgPool,
    /// argon2id hasher.
    pub hasher: PasswordHasher,
    /// Access-token signer.
    pub signer: Arc<Signer>,
    /// The verifier the auth layer uses (told about rotated keys at once).
    pub verifier: Arc<TokenVerifier>,
    /// Page-token signer.
    pub page_tokens: PageTokens,
    /// Failed-login lockout.
    pub lockout: LockoutPolicy,
    /// Access-token lifetime.
    pub access_ttl: time::Duration,
    /// Session lifetime.
    pub session_ttl: time::Duration,
    /// `iss` of issued tokens.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
}

/// The `IdentityService` implementation.
#[derive(Clone)]
pub struct IdentityApi {
    state: Arc<State>,
}

impl IdentityApi {
    /// Handlers over `state`.
    pub fn new(state: State) -> Self {
        Self {
            state: Arc::new(state),
        }
    }
}

/// Runs a handler that needs the verified caller.
macro_rules! authenticated {
    ($self:ident, $request:ident, $handler:path) => {{
        let caller = auth::caller(&$request)?;
        $handler(&$self.state, &caller, $request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }};
}

/// Runs a handler of an open method.
macro_rules! open {
    ($self:ident, $request:ident, $handler:path) => {{
        $handler(&$self.state, $request.into_inner())
            .await
            .map(Response::new)
            .map_err(Status::from)
    }};
}

#[tonic::async_trait]
impl pb::identity_service_server::IdentityService for IdentityApi {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        open!(self, request, sessions::login)
    }

    async fn refresh_token(
        &self,
        request: Request<pb::RefreshTokenRequest>,
    ) -> Result<Response<pb::RefreshTokenResponse>, Status> {
        open!(self, request, sessions::refresh_token)
    }

    async fn logout(
        &self,
        request: Request<pb::LogoutRequest>,
    ) -> Result<Response<pb::LogoutResponse>, Status> {
        authenticated!(self, request, sessions::logout)
    }

    async fn list_public_keys(
        &self,
        request: Request<pb::ListPublicKeysRequest>,
    ) -> Result<Response<pb::ListPublicKeysResponse>, Status> {
        open!(self, request, sessions::list_public_keys)
    }

    async fn rotate_signing_key(
        &self,
        request: Request<pb::RotateSigningKeyRequest>,
    ) -> Result<Response<pb::RotateSigningKeyResponse>, Status> {
        authenticated!(self, request, sessions::rotate_signing_key)
    }

    async fn create_tenant(
        &self,
        request: Request<pb::CreateTenantRequest>,
    ) -> Result<Response<pb::CreateTenantResponse>, Status> {
        authenticated!(self, request, tenants::create_tenant)
    }

    async fn get_tenant(
        &self,
        request: Request<pb::GetTenantRequest>,
    ) -> Result<Response<pb::GetTenantResponse>, Status> {
        authenticated!(self, request, tenants::get_tenant)
    }

    async fn create_user(
        &self,
        request: Request<pb::CreateUserRequest>,
    ) -> Result<Response<pb::CreateUserResponse>, Status> {
        authenticated!(self, request, users::create_user)
    }

    async fn get_user(
        &self,
        request: Request<pb::GetUserRequest>,
    ) -> Result<Response<pb::GetUserResponse>, Status> {
        authenticated!(self, request, users::get_user)
    }

    async fn list_users(
        &self,
        request: Request<pb::ListUsersRequest>,
    ) -> Result<Response<pb::ListUsersResponse>, Status> {
        authenticated!(self, request, users::list_users)
    }

    async fn update_user(
        &self,
        request: Request<pb::UpdateUserRequest>,
    ) -> Result<Response<pb::UpdateUserResponse>, Status> {
        authenticated!(self, request, users::update_user)
    }

    async fn delete_user(
        &self,
        request: Request<pb::DeleteUserRequest>,
    ) -> Result<Response<pb::DeleteUserResponse>, Status> {
        authenticated!(self, request, users::delete_user)
    }

    async fn undelete_user(
        &self,
        request: Request<pb::UndeleteUserRequest>,
    ) -> Result<Response<pb::UndeleteUserResponse>, Status> {
        authenticated!(self, request, users::undelete_user)
    }

    async fn grant_role(
        &self,
        request: Request<pb::GrantRoleRequest>,
    ) -> Result<Response<pb::GrantRoleResponse>, Status> {
        authenticated!(self, request, users::grant_role)
    }

    async fn revoke_role(
        &self,
        request: Request<pb::RevokeRoleRequest>,
    ) -> Result<Response<pb::RevokeRoleResponse>, Status> {
        authenticated!(self, request, users::revoke_role)
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        authenticated!(self, request, users::change_password)
    }
}
