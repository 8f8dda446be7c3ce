//! The Auth service (etcd's v3rpc/auth.go and the auth half of
//! v3_server.go), and `caller`: who a request comes from (its token, or
//! with --client-cert-auth its client certificate's CN).
//!
//! Changes go through raft and are checked when applied (admin requests
//! need the root role there). Reads (user/role get and list, status) wait
//! for a linearizable read point and answer from the replicated state with
//! the same checks etcd applies to them.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use crate::auth::token::{Provider, SimpleTokens};
use crate::auth::{Access, AuthInfo, Credential, Error as AuthError};
use crate::propose::Proposal;
use crate::proto::etcdserverpb::auth_server::Auth;
use crate::proto::etcdserverpb::*;
use crate::proto::internal::{
    InternalAuthenticateRequest, InternalUserAddRequest, InternalUserChangePasswordRequest,
};
use crate::server::EtcdServer;

/// Metadata keys clients send the token in (etcd's TokenFieldNameGRPC and
/// TokenFieldNameSwagger).
const TOKEN_KEYS: [&str; 2] = ["token", "authorization"];

/// The credential a request carries (its token, or under
/// --client-cert-auth its certificate's CN), for streams that check it
/// again at each request on them.
pub async fn credential<T>(server: &EtcdServer, req: &Request<T>) -> Credential {
    if !server.auth().is_enabled() {
        return Credential::None;
    }
    if let Some(token) = TOKEN_KEYS.iter().find_map(|k| req.metadata().get(*k)) {
        let token = token.to_str().unwrap_or_default().to_string();
        if let Some(index) = SimpleTokens::index_of(&token) {
            // an unapplied or bad token is refused at each create instead
            let _ = wait_applied(server, index).await;
        }
        return Credential::Token(token);
    }
    if server.auth().client_cert_auth() {
        if let Some(cn) = req
            .peer_certs()
            .and_then(|c| crate::tls::peer_common_name(&c))
        {
            return Credential::CommonName(cn);
        }
    }
    Credential::None
}

/// etcd's AuthInfoFromCtx: `None` with auth disabled, or with neither a
/// token nor (under --client-cert-auth) a client certificate. An unknown
/// or expired token is refused.
pub async fn caller<T>(server: &EtcdServer, req: &Request<T>) -> Result<Option<AuthInfo>, Status> {
    let auth = server.auth();
    if !auth.is_enabled() {
        return Ok(None);
    }
    let token = TOKEN_KEYS.iter().find_map(|k| req.metadata().get(*k));
    if let Some(token) = token {
        let token = token.to_str().map_err(|_| AuthError::InvalidAuthToken)?;
        if let Provider::Simple(_) = auth.tokens() {
            // valid here only once this member applied the entry that
            // assigned it (etcd's indexWaiter)
            let index = SimpleTokens::index_of(token).ok_or(AuthError::InvalidAuthToken)?;
            wait_applied(server, index).await?;
        }
        return match auth.info_from_token(token) {
            Some(info) => Ok(Some(info)),
            None => {
                tracing::warn!("invalid auth token");
                Err(AuthError::InvalidAuthToken.into())
            }
        };
    }
    if auth.client_cert_auth() {
        if let Some(certs) = req.peer_certs() {
            if let Some(cn) = crate::tls::peer_common_name(&certs) {
                return Ok(Some(auth.info_from_common_name(&cn)));
            }
        }
    }
    Ok(None)
}

/// The token metadata of a request, to forward it with the request.
pub fn token_metadata<T>(
    req: &Request<T>,
) -> Option<(
    &'static str,
    tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
)> {
    TOKEN_KEYS
        .iter()
        .find_map(|k| req.metadata().get(*k).map(|v| (*k, v.clone())))
}

async fn wait_applied(server: &EtcdServer, index: u64) -> Result<(), Status> {
    let mut applied = server.applied_changes();
    let wait = async move { applied.wait_for(|&a| a >= index).await.map(|_| ()) };
    match tokio::time::timeout(server.limits().request_timeout, wait).await {
        Ok(Ok(())) => Ok(()),
        _ => Err(AuthError::InvalidAuthToken.into()),
    }
}

/// Maintenance and membership changes need the root role (etcd's
/// authMaintenanceServer.isAuthenticated, checkMembershipOperationPermission).
pub async fn require_root<T>(server: &EtcdServer, req: &Request<T>) -> Result<(), Status> {
    let caller = caller(server, req).await?;
    server.auth().check_admin(&or_empty(&caller))?;
    Ok(())
}

/// `require_root` for the maintenance service, whose auth errors etcd
/// passes through unconverted: code Unknown, the auth store's text.
pub async fn require_root_unconverted<T>(
    server: &EtcdServer,
    req: &Request<T>,
) -> Result<(), Status> {
    let caller = match caller(server, req).await {
        Ok(c) => c,
        Err(s) if s.code() == tonic::Code::Unauthenticated => {
            return Err(Status::unknown(AuthError::InvalidAuthToken.store_message()))
        }
        Err(s) => return Err(s),
    };
    server
        .auth()
        .check_admin(&or_empty(&caller))
        .map_err(|e| Status::unknown(e.store_message()))
}

/// The lock and election services act for their caller (etcd runs them
/// through a client carrying the caller's context): the contender key
/// `key` is read and written, and the keys under `prefix` are read.
pub fn check_contender(
    server: &EtcdServer,
    who: &AuthInfo,
    prefix: &[u8],
    key: Option<&[u8]>,
) -> Result<(), Status> {
    let auth = server.auth();
    if let Some(key) = key {
        auth.check(who, Access::Read, key, &[])?;
        auth.check(who, Access::Write, key, &[])?;
    }
    let mut end = prefix.to_vec();
    match end.iter().rposition(|&b| b < 0xff) {
        Some(i) => {
            end[i] += 1;
            end.truncate(i + 1);
        }
        None => end = vec![0],
    }
    auth.check(who, Access::Read, prefix, &end)?;
    Ok(())
}

/// The caller for checks: etcd checks an absent one as the empty user.
pub fn or_empty(caller: &Option<AuthInfo>) -> AuthInfo {
    caller.clone().unwrap_or_default()
}

/// etcd's doSerialize tail: a read answered while the auth state changed
/// under the caller's credential is refused.
pub fn check_stale(server: &EtcdServer, caller: &Option<AuthInfo>) -> Result<(), Status> {
    match caller {
        Some(c) if c.revision != 0 && c.revision != server.auth().revision() => {
            Err(AuthError::AuthOldRevision.into())
        }
        _ => Ok(()),
    }
}

pub struct AuthService {
    server: Arc<EtcdServer>,
    bcrypt: Arc<Bcrypt>,
}

/// bcrypt is slow on purpose (about 25 checks a second saturate two
/// cores): at most one per core runs at a time, a bounded number wait, and
/// past that a caller is told "etcdserver: too many requests" at once,
/// so password guessing cannot starve raft and the other requests of CPU.
struct Bcrypt {
    running: Arc<tokio::sync::Semaphore>,
    admitted: Arc<tokio::sync::Semaphore>,
}

impl Bcrypt {
    fn new() -> Bcrypt {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Bcrypt {
            // one core stays free for raft and everything else
            running: Arc::new(tokio::sync::Semaphore::new(cores.saturating_sub(1).max(1))),
            admitted: Arc::new(tokio::sync::Semaphore::new(cores * 8)),
        }
    }

    /// Runs `work` on a blocking thread once a core is free. The permits
    /// go with the work, not with the request: a client that gives up
    /// (or sends a tiny grpc-timeout) does not free a place while its
    /// bcrypt still runs.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Status> {
        let admitted = self
            .admitted
            .clone()
            .try_acquire_owned()
            .map_err(|_| Status::resource_exhausted("etcdserver: too many requests"))?;
        let running = self
            .running
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Status::unavailable("etcdserver: server stopped"))?;
        tokio::task::spawn_blocking(move || {
            let result = work();
            drop((running, admitted));
            result
        })
        .await
        .map_err(|e| Status::internal(format!("etcdserver: password check: {e}")))
    }
}

impl AuthService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        AuthService {
            server,
            bcrypt: Arc::new(Bcrypt::new()),
        }
    }

    fn header(&self) -> Result<Option<ResponseHeader>, Status> {
        let rev = self.server.current_rev()?;
        Ok(Some(self.server.header(rev)))
    }

    /// Proposes a change as the caller of `req` and waits for it.
    async fn change<T, P: Proposal<Answer = ()>>(
        &self,
        req: &Request<T>,
        change: P,
    ) -> Result<(), Status> {
        let caller = caller(&self.server, req).await?;
        Ok(self.server.propose_as(change, &or_empty(&caller)).await?)
    }

    /// etcd sends UserGet and RoleGet through raft: one larger than
    /// --max-request-bytes is refused as a proposal would be.
    fn sized_as_a_proposal(&self, r: &impl prost::Message, who: &AuthInfo) -> Result<(), Status> {
        // the entry's header: id, auth revision, field tags, the user name
        const HEADER: usize = 32;
        let size = r.encoded_len() + HEADER + who.username.len();
        if size as u64 > self.server.limits().max_request_bytes {
            return Err(crate::server::Error::RequestTooLarge.into());
        }
        Ok(())
    }

    /// A read of the auth state: linearizable, as etcd's (which go
    /// through raft).
    async fn read_as<T>(&self, req: &Request<T>) -> Result<AuthInfo, Status> {
        let caller = caller(&self.server, req).await?;
        self.server.linearizable_read().await?;
        Ok(or_empty(&caller))
    }

    /// bcrypt off the async runtime: it is slow on purpose.
    async fn hash_password(&self, password: String) -> Result<Vec<u8>, Status> {
        let server = self.server.clone();
        self.bcrypt
            .run(move || server.auth().hash_password(&password))
            .await?
            .map_err(Status::from)
    }
}

#[tonic::async_trait]
impl Auth for AuthService {
    async fn authenticate(
        &self,
        req: Request<AuthenticateRequest>,
    ) -> Result<Response<AuthenticateResponse>, Status> {
        self.server.linearizable_read().await?;
        let r = req.into_inner();
        let name = r.name;
        let password = r.password;
        loop {
            let server = self.server.clone();
            let (n, p) = (name.clone(), password.clone());
            let checked = self
                .bcrypt
                .run(move || server.auth().check_password(&n, &p))
                .await?;
            let checked_revision = match checked {
                Ok(rev) => rev,
                Err(e) => {
                    if e != AuthError::AuthNotEnabled {
                        tracing::warn!(user = %name, error = %e, "invalid authentication was requested");
                    }
                    return Err(e.into());
                }
            };
            // the entry carries no password: it is checked above, and the
            // log must not hold it
            let entry = InternalAuthenticateRequest {
                name: name.clone(),
                simple_token: self.server.auth().tokens().gen_prefix(),
            };
            let token = self.server.propose(entry).await?;
            if checked_revision == self.server.auth().revision() {
                return Ok(Response::new(AuthenticateResponse {
                    header: self.header()?,
                    token,
                }));
            }
            tracing::info!("revision when password checked became stale; retrying");
        }
    }

    async fn auth_status(
        &self,
        req: Request<AuthStatusRequest>,
    ) -> Result<Response<AuthStatusResponse>, Status> {
        let who = self.read_as(&req).await?;
        self.server.auth().check_admin(&who)?;
        Ok(Response::new(AuthStatusResponse {
            header: self.header()?,
            enabled: self.server.auth().is_enabled(),
            auth_revision: self.server.auth().revision(),
        }))
    }

    async fn auth_enable(
        &self,
        req: Request<AuthEnableRequest>,
    ) -> Result<Response<AuthEnableResponse>, Status> {
        let change = *req.get_ref();
        self.change(&req, change).await?;
        Ok(Response::new(AuthEnableResponse {
            header: self.header()?,
        }))
    }

    async fn auth_disable(
        &self,
        req: Request<AuthDisableRequest>,
    ) -> Result<Response<AuthDisableResponse>, Status> {
        let change = *req.get_ref();
        self.change(&req, change).await?;
        Ok(Response::new(AuthDisableResponse {
            header: self.header()?,
        }))
    }

    async fn user_add(
        &self,
        req: Request<AuthUserAddRequest>,
    ) -> Result<Response<AuthUserAddResponse>, Status> {
        let r = req.get_ref();
        crate::auth::check_name("user name", &r.name)?;
        // root first: bcrypt is slow on purpose, so a stranger must not be
        // able to make us run it (the entry is checked again when applied)
        require_root(&self.server, &req).await?;
        let no_password = r.options.as_ref().is_some_and(|o| o.no_password);
        let hashed_password = if no_password {
            Vec::new()
        } else {
            self.hash_password(r.password.clone()).await?
        };
        let change = InternalUserAddRequest {
            name: r.name.clone(),
            hashed_password,
            no_password,
        };
        self.change(&req, change).await?;
        Ok(Response::new(AuthUserAddResponse {
            header: self.header()?,
        }))
    }

    async fn user_get(
        &self,
        req: Request<AuthUserGetRequest>,
    ) -> Result<Response<AuthUserGetResponse>, Status> {
        let who = self.read_as(&req).await?;
        self.sized_as_a_proposal(req.get_ref(), &who)?;
        let name = &req.get_ref().name;
        // a user may read itself (etcd's authApplierV3.UserGet)
        if let Err(e) = self.server.auth().check_admin(&who) {
            if *name != who.username {
                return Err(e.into());
            }
        }
        let roles = self.server.auth().user_get(name)?;
        Ok(Response::new(AuthUserGetResponse {
            header: self.header()?,
            roles,
        }))
    }

    async fn user_list(
        &self,
        req: Request<AuthUserListRequest>,
    ) -> Result<Response<AuthUserListResponse>, Status> {
        let who = self.read_as(&req).await?;
        self.server.auth().check_admin(&who)?;
        Ok(Response::new(AuthUserListResponse {
            header: self.header()?,
            users: self.server.auth().user_list(),
        }))
    }

    async fn user_delete(
        &self,
        req: Request<AuthUserDeleteRequest>,
    ) -> Result<Response<AuthUserDeleteResponse>, Status> {
        let change = req.get_ref().clone();
        self.change(&req, change).await?;
        Ok(Response::new(AuthUserDeleteResponse {
            header: self.header()?,
        }))
    }

    async fn user_change_password(
        &self,
        req: Request<AuthUserChangePasswordRequest>,
    ) -> Result<Response<AuthUserChangePasswordResponse>, Status> {
        let r = req.get_ref();
        require_root(&self.server, &req).await?;
        let hashed_password = self.hash_password(r.password.clone()).await?;
        let change = InternalUserChangePasswordRequest {
            name: r.name.clone(),
            hashed_password,
        };
        self.change(&req, change).await?;
        Ok(Response::new(AuthUserChangePasswordResponse {
            header: self.header()?,
        }))
    }

    async fn user_grant_role(
        &self,
        req: Request<AuthUserGrantRoleRequest>,
    ) -> Result<Response<AuthUserGrantRoleResponse>, Status> {
        let change = req.get_ref().clone();
        self.change(&req, change).await?;
        Ok(Response::new(AuthUserGrantRoleResponse {
            header: self.header()?,
        }))
    }

    async fn user_revoke_role(
        &self,
        req: Request<AuthUserRevokeRoleRequest>,
    ) -> Result<Response<AuthUserRevokeRoleResponse>, Status> {
        let change = req.get_ref().clone();
        self.change(&req, change).await?;
        Ok(Response::new(AuthUserRevokeRoleResponse {
            header: self.header()?,
        }))
    }

    async fn role_add(
        &self,
        req: Request<AuthRoleAddRequest>,
    ) -> Result<Response<AuthRoleAddResponse>, Status> {
        crate::auth::check_name("role name", &req.get_ref().name)?;
        let change = req.get_ref().clone();
        self.change(&req, change).await?;
        Ok(Response::new(AuthRoleAddResponse {
            header: self.header()?,
        }))
    }

    async fn role_get(
        &self,
        req: Request<AuthRoleGetRequest>,
    ) -> Result<Response<AuthRoleGetResponse>, Status> {
        let who = self.read_as(&req).await?;
        self.sized_as_a_proposal(req.get_ref(), &who)?;
        let role = &req.get_ref().role;
        // a user may read its own roles (etcd's authApplierV3.RoleGet)
        if let Err(e) = self.server.auth().check_admin(&who) {
            if !self.server.auth().has_role(&who.username, role) {
                return Err(e.into());
            }
        }
        let perm = self.server.auth().role_get(role)?;
        Ok(Response::new(AuthRoleGetResponse {
            header: self.header()?,
            perm,
        }))
    }

    async fn role_list(
        &self,
        req: Request<AuthRoleListRequest>,
    ) -> Result<Response<AuthRoleListResponse>, Status> {
        let who = self.read_as(&req).await?;
        self.server.auth().check_admin(&who)?;
        Ok(Response::new(AuthRoleListResponse {
            header: self.header()?,
            roles: self.server.auth().role_list(),
        }))
    }

    async fn role_delete(
        &self,
        req: Request<AuthRoleDeleteRequest>,
    ) -> Result<Response<AuthRoleDeleteResponse>, Status> {
        let change = req.get_ref().clone();
        self.change(&req, change).await?;
        Ok(Response::new(AuthRoleDeleteResponse {
            header: self.header()?,
        }))
    }

    async fn role_grant_permission(
        &self,
        req: Request<AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<AuthRoleGrantPermissionResponse>, Status> {
        let change = req.get_ref().clone();
        self.change(&req, change).await?;
        Ok(Response::new(AuthRoleGrantPermissionResponse {
            header: self.header()?,
        }))
    }

    async fn role_revoke_permission(
        &self,
        req: Request<AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<AuthRoleRevokePermissionResponse>, Status> {
        let change = req.get_ref().clone();
        self.change(&req, change).await?;
        Ok(Response::new(AuthRoleRevokePermissionResponse {
            header: self.header()?,
        }))
    }
}
