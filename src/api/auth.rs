//! The Auth service. Authentication is never enabled yet (RBAC arrives with
//! the security work), so Authenticate answers as etcd does with auth
//! disabled, and clients that pass --user keep working. User and role
//! management answer Unimplemented until then.

use std::sync::Arc;

use tonic::{Code, Request, Response, Status};

use crate::proto::etcdserverpb::auth_server::Auth;
use crate::proto::etcdserverpb::*;
use crate::server::{Error, EtcdServer};

pub struct AuthService {
    server: Arc<EtcdServer>,
}

impl AuthService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        AuthService { server }
    }
}

fn not_yet(what: &str) -> Status {
    Status::unimplemented(format!("etcdserver: {what} is not supported yet"))
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn authenticate(
        &self,
        _: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        Err(Status::new(
            Code::FailedPrecondition,
            "etcdserver: authentication is not enabled",
        ))
    }

    async fn auth_status(
        &self,
        _: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let rev = self
            .server
            .store
            .read()
            .map_err(|e| Error::Apply(e.into()))?
            .current_rev();
        Ok(Response::new(AuthStatusResponse {
            header: Some(self.server.header(rev)),
            enabled: false,
            auth_revision: 0,
        }))
    }

    async fn auth_enable(
        &self,
        _: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        Err(not_yet("auth enable"))
    }

    async fn auth_disable(
        &self,
        _: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        Err(not_yet("auth disable"))
    }

    async fn user_add(
        &self,
        _: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        Err(not_yet("user add"))
    }

    async fn user_get(
        &self,
        _: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        Err(not_yet("user get"))
    }

    async fn user_list(
        &self,
        _: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        Err(not_yet("user list"))
    }

    async fn user_delete(
        &self,
        _: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        Err(not_yet("user delete"))
    }

    async fn user_change_password(
        &self,
        _: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        Err(not_yet("user passwd"))
    }

    async fn user_grant_role(
        &self,
        _: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        Err(not_yet("user grant-role"))
    }

    async fn user_revoke_role(
        &self,
        _: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        Err(not_yet("user revoke-role"))
    }

    async fn role_add(
        &self,
        _: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        Err(not_yet("role add"))
    }

    async fn role_get(
        &self,
        _: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        Err(not_yet("role get"))
    }

    async fn role_list(
        &self,
        _: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        Err(not_yet("role list"))
    }

    async fn role_delete(
        &self,
        _: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        Err(not_yet("role delete"))
    }

    async fn role_grant_permission(
        &self,
        _: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        Err(not_yet("role grant-permission"))
    }

    async fn role_revoke_permission(
        &self,
        _: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        Err(not_yet("role revoke-permission"))
    }
}
