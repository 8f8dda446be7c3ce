//! Role-based access control, as etcd's auth store: users (bcrypt password
//! hashes, or none for client-certificate users), roles with key-range
//! permissions, the auth-enabled flag and the auth revision, which every
//! change bumps.
//!
//! The state lives in the backend's meta table under `auth/` (so it is in
//! every snapshot and survives restarts) and in memory for checks. It
//! changes only when the apply thread applies a replicated entry, so all
//! members hold the same state at the same index. Tokens are kept by
//! `token` and never persisted, as etcd's.

pub mod perms;
pub mod requests;
pub mod token;

use std::collections::{BTreeMap, HashMap};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use prost::Message as _;
use tonic::Code;

use crate::mvcc::{Store, WriteTxn};
use crate::proto::authpb::{permission::Type as PermType, Permission, Role, User, UserAddOptions};
use crate::proto::internal::internal_raft_request::Request;
pub use perms::Access;
use perms::UserPerms;
use token::Provider;

pub const ROOT_USER: &str = "root";
pub const ROOT_ROLE: &str = "root";

pub use crate::storage::schema::META_AUTH_PREFIX;
use crate::storage::schema::{
    META_AUTH_ENABLED as META_ENABLED, META_AUTH_REVISION as META_REVISION,
    META_AUTH_ROLE_PREFIX as META_ROLE_PREFIX, META_AUTH_USER_PREFIX as META_USER_PREFIX,
};

/// etcd's auth errors, with the messages and gRPC codes clients see
/// (rpctypes' ErrGRPC*).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("etcdserver: root user does not exist")]
    RootUserNotExist,
    #[error("etcdserver: root user does not have root role")]
    RootRoleNotExist,
    #[error("etcdserver: user name already exists")]
    UserAlreadyExist,
    #[error("etcdserver: user name is empty")]
    UserEmpty,
    #[error("etcdserver: user name not found")]
    UserNotFound,
    #[error("etcdserver: role name already exists")]
    RoleAlreadyExist,
    #[error("etcdserver: role name not found")]
    RoleNotFound,
    #[error("etcdserver: role name is empty")]
    RoleEmpty,
    #[error("etcdserver: authentication failed, invalid user ID or password")]
    AuthFailed,
    #[error("etcdserver: permission not given")]
    PermissionNotGiven,
    #[error("etcdserver: permission denied")]
    PermissionDenied,
    #[error("etcdserver: role is not granted to the user")]
    RoleNotGranted,
    #[error("etcdserver: permission is not granted to the role")]
    PermissionNotGranted,
    #[error("etcdserver: authentication is not enabled")]
    AuthNotEnabled,
    #[error("etcdserver: invalid auth token")]
    InvalidAuthToken,
    #[error("etcdserver: invalid auth management")]
    InvalidAuthMgmt,
    #[error("etcdserver: revision of auth store is old")]
    AuthOldRevision,
    /// etcd has no gRPC error for these two: clients get the raw text.
    #[error("auth: authentication failed, password was given for no password user")]
    NoPasswordUser,
    #[error("auth: token signing attempted with verify-only key")]
    VerifyOnly,
    /// Go's bcrypt refuses to hash more than 72 bytes (x/crypto since
    /// 2022; etcd 3.5 returns its error as is, code Unknown); the bcrypt
    /// crate's `hash` would drop the rest silently.
    #[error("bcrypt: password length exceeds 72 bytes")]
    PasswordTooLong,
    #[error("etcdserver: {0}")]
    Internal(String),
    /// The backend failed while applying: the member cannot go on.
    #[error("etcdserver: storage failure: {0}")]
    Storage(String),
    /// What the request carries cannot be stored (see `ApplyError::TooLarge`).
    #[error("etcdserver: request cannot be stored: {0}")]
    TooLarge(String),
    /// A user or role name longer than the backend's keys allow (etcd has
    /// no limit of its own: bbolt's 32 KiB key limit makes etcd panic).
    #[error("etcdserver: {0} is too long (at most {MAX_NAME_BYTES} bytes)")]
    NameTooLong(&'static str),
}

/// The longest user or role name: each is a backend key behind its prefix
/// (`auth/users/`, `auth/roles/`), and LMDB keys hold 511 bytes.
pub const MAX_NAME_BYTES: usize = crate::mvcc::MAX_KEY_BYTES - META_USER_PREFIX.len();

/// Refuses a name the backend could not store, before it is proposed (the
/// API) and again when applied (a log written before this check).
pub fn check_name(what: &'static str, name: &str) -> Result<(), Error> {
    if name.len() > MAX_NAME_BYTES {
        return Err(Error::NameTooLong(what));
    }
    Ok(())
}

impl Error {
    pub fn code(&self) -> Code {
        use Error::*;
        match self {
            RootUserNotExist | RootRoleNotExist | UserAlreadyExist | UserNotFound
            | RoleAlreadyExist | RoleNotFound | RoleNotGranted | PermissionNotGranted
            | AuthNotEnabled => Code::FailedPrecondition,
            UserEmpty | RoleEmpty | AuthFailed | PermissionNotGiven | InvalidAuthMgmt
            | AuthOldRevision | NameTooLong(_) | TooLarge(_) => Code::InvalidArgument,
            PermissionDenied => Code::PermissionDenied,
            InvalidAuthToken => Code::Unauthenticated,
            NoPasswordUser | VerifyOnly | PasswordTooLong => Code::Unknown,
            Internal(_) | Storage(_) => Code::Internal,
        }
    }
}

impl Error {
    /// The auth store's own text (etcd's auth.Err*), which etcd's
    /// maintenance service returns unconverted (code Unknown).
    pub fn store_message(&self) -> String {
        match self {
            Error::UserAlreadyExist => "auth: user already exists".into(),
            Error::UserNotFound => "auth: user not found".into(),
            Error::RoleAlreadyExist => "auth: role already exists".into(),
            Error::RoleNotFound => "auth: role not found".into(),
            Error::AuthOldRevision => "auth: revision in header is old".into(),
            Error::NoPasswordUser
            | Error::VerifyOnly
            | Error::PasswordTooLong
            | Error::Internal(_)
            | Error::Storage(_)
            | Error::TooLarge(_)
            | Error::NameTooLong(_) => self.to_string(),
            other => other.to_string().replacen("etcdserver: ", "auth: ", 1),
        }
    }
}

impl From<crate::mvcc::Error> for Error {
    fn from(e: crate::mvcc::Error) -> Self {
        match e {
            crate::mvcc::Error::TooLarge(what) => Error::TooLarge(what),
            other => Error::Storage(other.to_string()),
        }
    }
}

/// Who is asking: the user and the auth revision its credential was
/// checked at. The default (empty name, revision 0) is etcd's "no user".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthInfo {
    pub username: String,
    pub revision: u64,
}

#[derive(Default)]
struct State {
    enabled: bool,
    revision: u64,
    users: BTreeMap<String, User>,
    roles: BTreeMap<String, Role>,
    /// Merged permissions of every user (etcd's rangePermCache).
    perms: HashMap<String, UserPerms>,
}

impl State {
    fn refresh_perms(&mut self) {
        let roles = &self.roles;
        self.perms = self
            .users
            .iter()
            .map(|(name, u)| {
                let merged = UserPerms::merge(u.roles.iter().filter_map(|r| roles.get(r)));
                (name.clone(), merged)
            })
            .collect();
    }
}

fn has_root_role(u: &User) -> bool {
    u.roles.iter().any(|r| r == ROOT_ROLE)
}

fn user_key(name: &str) -> Vec<u8> {
    [META_USER_PREFIX, name.as_bytes()].concat()
}

fn role_key(name: &str) -> Vec<u8> {
    [META_ROLE_PREFIX, name.as_bytes()].concat()
}

/// etcd's permission of the root role, as RoleGet shows it.
fn root_permission() -> Permission {
    Permission {
        perm_type: PermType::Readwrite as i32,
        key: Vec::new(),
        range_end: vec![0],
    }
}

/// Whether a replicated request needs the root role (etcd's
/// needAdminPermission).
pub fn needs_admin(request: &Request) -> bool {
    matches!(
        request,
        Request::AuthEnable(_)
            | Request::AuthDisable(_)
            | Request::AuthUserAdd(_)
            | Request::AuthUserDelete(_)
            | Request::AuthUserChangePassword(_)
            | Request::AuthUserGrantRole(_)
            | Request::AuthUserRevokeRole(_)
            | Request::AuthRoleAdd(_)
            | Request::AuthRoleDelete(_)
            | Request::AuthRoleGrantPermission(_)
            | Request::AuthRoleRevokePermission(_)
    )
}

pub struct AuthStore {
    state: RwLock<State>,
    tokens: Provider,
    bcrypt_cost: u32,
    /// --client-cert-auth: a request without a token is the user named by
    /// its client certificate's CN.
    client_cert_auth: bool,
    /// The peer port does not authenticate members (http, or https without
    /// --peer-client-cert-auth): whoever reaches it can forge entries, so
    /// RBAC holds only against clients. Said whenever auth is turned on.
    peers_unauthenticated: std::sync::atomic::AtomicBool,
}

/// The warning for auth on with an unauthenticated peer port.
const PEERS_UNAUTHENTICATED: &str = "authentication is enabled but the peer port does not authenticate members (use https peer URLs with --peer-client-cert-auth): anyone who reaches it can bypass RBAC";

impl AuthStore {
    pub fn new(tokens: Provider, bcrypt_cost: u32, client_cert_auth: bool) -> AuthStore {
        AuthStore {
            state: RwLock::new(State {
                revision: 1,
                ..State::default()
            }),
            tokens,
            bcrypt_cost,
            client_cert_auth,
            peers_unauthenticated: Default::default(),
        }
    }

    /// Records whether members authenticate each other, and warns now if
    /// auth is already on without it.
    pub fn set_peers_unauthenticated(&self, unauthenticated: bool) {
        use std::sync::atomic::Ordering;
        self.peers_unauthenticated
            .store(unauthenticated, Ordering::Relaxed);
        if unauthenticated && self.is_enabled() {
            tracing::warn!("{PEERS_UNAUTHENTICATED}");
        }
    }

    /// Auth is on while the peer port does not authenticate members.
    pub fn bypassable_through_peers(&self) -> bool {
        self.is_enabled()
            && self
                .peers_unauthenticated
                .load(std::sync::atomic::Ordering::Relaxed)
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// (Re)loads the state from the backend: at startup and after a
    /// snapshot from the leader replaced it.
    pub fn load(&self, store: &Store) -> anyhow::Result<()> {
        use anyhow::Context as _;
        let mut state = State {
            revision: 1,
            ..State::default()
        };
        for entry in store.meta_with_prefix(META_AUTH_PREFIX)? {
            let (key, value) = (&entry.0, &entry.1);
            if key == META_ENABLED {
                state.enabled = value.first() == Some(&1);
            } else if key == META_REVISION {
                let bytes: [u8; 8] = value
                    .as_slice()
                    .try_into()
                    .context("corrupt backend: bad auth revision")?;
                state.revision = u64::from_be_bytes(bytes);
            } else if let Some(name) = key.strip_prefix(META_USER_PREFIX) {
                let user = User::decode(value.as_slice())
                    .with_context(|| format!("corrupt backend: bad auth user {name:?}"))?;
                state
                    .users
                    .insert(String::from_utf8_lossy(name).into_owned(), user);
            } else if let Some(name) = key.strip_prefix(META_ROLE_PREFIX) {
                let role = Role::decode(value.as_slice())
                    .with_context(|| format!("corrupt backend: bad auth role {name:?}"))?;
                state
                    .roles
                    .insert(String::from_utf8_lossy(name).into_owned(), role);
            }
        }
        state.refresh_perms();
        if !state.enabled {
            self.clear_tokens();
        }
        *self.write() = state;
        Ok(())
    }

    pub fn is_enabled(&self) -> bool {
        self.read().enabled
    }

    pub fn revision(&self) -> u64 {
        self.read().revision
    }

    pub fn client_cert_auth(&self) -> bool {
        self.client_cert_auth
    }

    pub fn tokens(&self) -> &Provider {
        &self.tokens
    }

    fn clear_tokens(&self) {
        if let Provider::Simple(t) = &self.tokens {
            t.clear();
        }
    }

    fn invalidate_user_tokens(&self, user: &str) {
        if let Provider::Simple(t) = &self.tokens {
            t.invalidate_user(user);
        }
    }

    /// The caller a token names, or `None` if it is unknown or expired.
    /// A simple token carries the current auth revision (etcd's), a JWT
    /// the revision it was issued at.
    pub fn info_from_token(&self, token: &str) -> Option<AuthInfo> {
        match &self.tokens {
            Provider::Simple(t) => t.user(token).map(|username| AuthInfo {
                username,
                revision: self.revision(),
            }),
            Provider::Jwt(j) => j.info(token),
        }
    }

    /// The caller a client certificate's CN names (etcd's AuthInfoFromTLS).
    pub fn info_from_common_name(&self, cn: &str) -> AuthInfo {
        AuthInfo {
            username: cn.to_string(),
            revision: self.revision(),
        }
    }

    /// bcrypt hash of a new password, at --bcrypt-cost (slow: call off the
    /// async runtime).
    pub fn hash_password(&self, password: &str) -> Result<Vec<u8>, Error> {
        // Go counts the password alone; the crate's non-truncating hash
        // counts its NUL terminator too and would refuse 72 bytes, which Go
        // takes (hashing them without the NUL, as the crate's `hash` does).
        if password.len() > 72 {
            return Err(Error::PasswordTooLong);
        }
        bcrypt::hash(password, self.bcrypt_cost)
            .map(String::into_bytes)
            .map_err(|e| Error::Internal(format!("hash password: {e}")))
    }

    /// etcd's CheckPassword: the auth revision the password was checked at
    /// (slow: call off the async runtime).
    pub fn check_password(&self, name: &str, password: &str) -> Result<u64, Error> {
        let (hash, revision) = {
            let state = self.read();
            if !state.enabled {
                return Err(Error::AuthNotEnabled);
            }
            let user = state.users.get(name).ok_or(Error::AuthFailed)?;
            if user.options.as_ref().is_some_and(|o| o.no_password) {
                return Err(Error::NoPasswordUser);
            }
            (user.password.clone(), state.revision)
        };
        let hash = String::from_utf8(hash).map_err(|_| Error::AuthFailed)?;
        match bcrypt::verify(password, &hash) {
            Ok(true) => Ok(revision),
            _ => {
                tracing::info!(user_name = name, "invalid password");
                Err(Error::AuthFailed)
            }
        }
    }

    /// etcd's isOpPermitted.
    pub fn check(
        &self,
        who: &AuthInfo,
        access: Access,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Error> {
        let state = self.read();
        if !state.enabled {
            return Ok(());
        }
        if who.revision == 0 {
            return Err(Error::UserEmpty);
        }
        if who.revision < state.revision {
            return Err(Error::AuthOldRevision);
        }
        let Some(user) = state.users.get(&who.username) else {
            return Err(Error::PermissionDenied);
        };
        if has_root_role(user) {
            return Ok(());
        }
        match state.perms.get(&who.username) {
            Some(p) if p.allows(access, key, range_end) => Ok(()),
            _ => Err(Error::PermissionDenied),
        }
    }

    /// etcd's IsAdminPermitted.
    pub fn check_admin(&self, who: &AuthInfo) -> Result<(), Error> {
        let state = self.read();
        if !state.enabled {
            return Ok(());
        }
        if who.username.is_empty() {
            return Err(Error::UserEmpty);
        }
        match state.users.get(&who.username) {
            None => Err(Error::UserNotFound),
            Some(u) if !has_root_role(u) => Err(Error::PermissionDenied),
            Some(_) => Ok(()),
        }
    }

    pub fn has_role(&self, user: &str, role: &str) -> bool {
        self.read()
            .users
            .get(user)
            .is_some_and(|u| u.roles.iter().any(|r| r == role))
    }

    pub fn user_get(&self, name: &str) -> Result<Vec<String>, Error> {
        let state = self.read();
        let user = state.users.get(name).ok_or(Error::UserNotFound)?;
        Ok(user.roles.clone())
    }

    pub fn user_list(&self) -> Vec<String> {
        self.read().users.keys().cloned().collect()
    }

    pub fn role_get(&self, name: &str) -> Result<Vec<Permission>, Error> {
        let state = self.read();
        let role = state.roles.get(name).ok_or(Error::RoleNotFound)?;
        if name == ROOT_ROLE {
            return Ok(vec![root_permission()]);
        }
        Ok(role.key_permission.clone())
    }

    pub fn role_list(&self) -> Vec<String> {
        self.read().roles.keys().cloned().collect()
    }

    /// Applies one replicated auth request (the caller checked
    /// `needs_admin`); returns the token for Authenticate. Checks come
    /// before any write, so a refused request changes nothing.
    pub fn apply(
        &self,
        wt: &mut WriteTxn<'_>,
        index: u64,
        request: &Request,
    ) -> Result<Option<String>, Error> {
        let mut guard = self.write();
        let state = &mut *guard;
        match request {
            Request::AuthEnable(_) => {
                if state.enabled {
                    tracing::info!(
                        "authentication is already enabled; ignored auth enable request"
                    );
                    return Ok(None);
                }
                let root = state.users.get(ROOT_USER).ok_or(Error::RootUserNotExist)?;
                if !has_root_role(root) {
                    return Err(Error::RootRoleNotExist);
                }
                wt.put_meta(META_ENABLED, &[1])?;
                state.enabled = true;
                tracing::info!("enabled authentication");
                if self
                    .peers_unauthenticated
                    .load(std::sync::atomic::Ordering::Relaxed)
                {
                    tracing::warn!("{PEERS_UNAUTHENTICATED}");
                }
            }
            Request::AuthDisable(_) => {
                if !state.enabled {
                    return Ok(None);
                }
                wt.put_meta(META_ENABLED, &[0])?;
                commit_revision(wt, state)?;
                state.enabled = false;
                self.clear_tokens();
                tracing::info!("disabled authentication");
            }
            Request::Authenticate(a) => {
                if !state.enabled {
                    return Err(Error::AuthNotEnabled);
                }
                let user = state.users.get(&a.name).ok_or(Error::AuthFailed)?;
                if user.options.as_ref().is_some_and(|o| o.no_password) {
                    return Err(Error::AuthFailed);
                }
                let token = match &self.tokens {
                    Provider::Simple(t) => t.assign(&a.name, &a.simple_token, index),
                    Provider::Jwt(j) => j.assign(&a.name, state.revision)?,
                };
                return Ok(Some(token));
            }
            Request::AuthUserAdd(r) => {
                if r.name.is_empty() {
                    return Err(Error::UserEmpty);
                }
                check_name("user name", &r.name)?;
                if state.users.contains_key(&r.name) {
                    return Err(Error::UserAlreadyExist);
                }
                let user = User {
                    name: r.name.as_bytes().to_vec(),
                    password: if r.no_password {
                        Vec::new()
                    } else {
                        r.hashed_password.clone()
                    },
                    roles: Vec::new(),
                    options: Some(UserAddOptions {
                        no_password: r.no_password,
                    }),
                };
                put_user(wt, state, user)?;
                commit_revision(wt, state)?;
                tracing::info!(user_name = %r.name, "added a user");
            }
            Request::AuthUserDelete(r) => {
                if state.enabled && r.name == ROOT_USER {
                    tracing::error!(user_name = %r.name, "cannot delete 'root' user");
                    return Err(Error::InvalidAuthMgmt);
                }
                if !state.users.contains_key(&r.name) {
                    return Err(Error::UserNotFound);
                }
                wt.delete_meta(&user_key(&r.name))?;
                state.users.remove(&r.name);
                commit_revision(wt, state)?;
                self.invalidate_user_tokens(&r.name);
                tracing::info!(user_name = %r.name, "deleted a user");
            }
            Request::AuthUserChangePassword(r) => {
                let mut user = state
                    .users
                    .get(&r.name)
                    .cloned()
                    .ok_or(Error::UserNotFound)?;
                if !user.options.as_ref().is_some_and(|o| o.no_password) {
                    user.password = r.hashed_password.clone();
                }
                put_user(wt, state, user)?;
                commit_revision(wt, state)?;
                self.invalidate_user_tokens(&r.name);
                tracing::info!(user_name = %r.name, "changed a password of a user");
            }
            Request::AuthUserGrantRole(r) => {
                let mut user = state
                    .users
                    .get(&r.user)
                    .cloned()
                    .ok_or(Error::UserNotFound)?;
                if r.role != ROOT_ROLE && !state.roles.contains_key(&r.role) {
                    return Err(Error::RoleNotFound);
                }
                if user.roles.contains(&r.role) {
                    tracing::warn!(user_name = %r.user, role_name = %r.role, "ignored grant role request to a user");
                    return Ok(None);
                }
                user.roles.push(r.role.clone());
                user.roles.sort();
                put_user(wt, state, user)?;
                commit_revision(wt, state)?;
                tracing::info!(user_name = %r.user, added_role_name = %r.role, "granted a role to a user");
            }
            Request::AuthUserRevokeRole(r) => {
                if state.enabled && r.name == ROOT_USER && r.role == ROOT_ROLE {
                    tracing::error!("'root' user cannot revoke 'root' role");
                    return Err(Error::InvalidAuthMgmt);
                }
                let mut user = state
                    .users
                    .get(&r.name)
                    .cloned()
                    .ok_or(Error::UserNotFound)?;
                let before = user.roles.len();
                user.roles.retain(|role| *role != r.role);
                if user.roles.len() == before {
                    return Err(Error::RoleNotGranted);
                }
                put_user(wt, state, user)?;
                commit_revision(wt, state)?;
                tracing::info!(user_name = %r.name, revoked_role_name = %r.role, "revoked a role from a user");
            }
            Request::AuthRoleAdd(r) => {
                if r.name.is_empty() {
                    return Err(Error::RoleEmpty);
                }
                check_name("role name", &r.name)?;
                if state.roles.contains_key(&r.name) {
                    return Err(Error::RoleAlreadyExist);
                }
                let role = Role {
                    name: r.name.as_bytes().to_vec(),
                    key_permission: Vec::new(),
                };
                put_role(wt, state, role)?;
                commit_revision(wt, state)?;
                tracing::info!(role_name = %r.name, "created a role");
            }
            Request::AuthRoleDelete(r) => {
                if state.enabled && r.role == ROOT_ROLE {
                    tracing::error!("cannot delete 'root' role");
                    return Err(Error::InvalidAuthMgmt);
                }
                if !state.roles.contains_key(&r.role) {
                    return Err(Error::RoleNotFound);
                }
                wt.delete_meta(&role_key(&r.role))?;
                state.roles.remove(&r.role);
                let holders: Vec<User> = state
                    .users
                    .values()
                    .filter(|u| u.roles.contains(&r.role))
                    .cloned()
                    .collect();
                for mut user in holders {
                    user.roles.retain(|role| *role != r.role);
                    put_user(wt, state, user)?;
                }
                commit_revision(wt, state)?;
                tracing::info!(role_name = %r.role, "deleted a role");
            }
            Request::AuthRoleGrantPermission(r) => {
                let perm = r.perm.as_ref().ok_or(Error::PermissionNotGiven)?;
                let mut role = state
                    .roles
                    .get(&r.name)
                    .cloned()
                    .ok_or(Error::RoleNotFound)?;
                let perms = &mut role.key_permission;
                let at = perms.partition_point(|p| p.key < perm.key);
                match perms.get_mut(at) {
                    Some(p) if p.key == perm.key && p.range_end == perm.range_end => {
                        p.perm_type = perm.perm_type;
                    }
                    _ => {
                        perms.push(perm.clone());
                        perms.sort_by(|a, b| a.key.cmp(&b.key));
                    }
                }
                put_role(wt, state, role)?;
                commit_revision(wt, state)?;
                tracing::info!(role_name = %r.name, "granted/updated a permission to a role");
            }
            Request::AuthRoleRevokePermission(r) => {
                let mut role = state
                    .roles
                    .get(&r.role)
                    .cloned()
                    .ok_or(Error::RoleNotFound)?;
                let before = role.key_permission.len();
                role.key_permission
                    .retain(|p| p.key != r.key || p.range_end != r.range_end);
                if role.key_permission.len() == before {
                    return Err(Error::PermissionNotGranted);
                }
                put_role(wt, state, role)?;
                commit_revision(wt, state)?;
                tracing::info!(role_name = %r.role, "revoked a permission on range");
            }
            _ => return Err(Error::Internal("not an auth request".into())),
        }
        state.refresh_perms();
        Ok(None)
    }
}

fn put_user(wt: &mut WriteTxn<'_>, state: &mut State, user: User) -> Result<(), Error> {
    let name = String::from_utf8_lossy(&user.name).into_owned();
    wt.put_meta(&user_key(&name), &user.encode_to_vec())?;
    state.users.insert(name, user);
    Ok(())
}

fn put_role(wt: &mut WriteTxn<'_>, state: &mut State, role: Role) -> Result<(), Error> {
    let name = String::from_utf8_lossy(&role.name).into_owned();
    wt.put_meta(&role_key(&name), &role.encode_to_vec())?;
    state.roles.insert(name, role);
    Ok(())
}

fn commit_revision(wt: &mut WriteTxn<'_>, state: &mut State) -> Result<(), Error> {
    state.revision += 1;
    wt.put_meta(META_REVISION, &state.revision.to_be_bytes())?;
    Ok(())
}

/// What a long-lived stream (watch) authenticates with; resolved again at
/// each request on it, as etcd's AuthInfoFromCtx, so an expired or
/// invalidated token stops working.
#[derive(Debug, Clone, Default)]
pub enum Credential {
    #[default]
    None,
    Token(String),
    CommonName(String),
}

impl AuthStore {
    /// The caller a credential names now; `None` for no credential (or
    /// auth disabled).
    pub fn resolve(&self, credential: &Credential) -> Result<Option<AuthInfo>, Error> {
        if !self.is_enabled() {
            return Ok(None);
        }
        match credential {
            Credential::None => Ok(None),
            Credential::Token(t) => self
                .info_from_token(t)
                .map(Some)
                .ok_or(Error::InvalidAuthToken),
            Credential::CommonName(cn) => Ok(Some(self.info_from_common_name(cn))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::Applied;
    use crate::proto::etcdserverpb::{
        AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest,
        AuthUserDeleteRequest, AuthUserGrantRoleRequest,
    };
    use crate::proto::internal::{InternalAuthenticateRequest, InternalUserAddRequest};
    use crate::storage::backend::{Backend, DEFAULT_MAP_SIZE};

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        auth: AuthStore,
        index: u64,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().expect("tempdir");
            let backend = Backend::open(&dir.path().join("db"), DEFAULT_MAP_SIZE).expect("open");
            let store = Store::open(backend).expect("store");
            let tokens = Provider::from_options("simple", std::time::Duration::from_secs(60))
                .expect("simple tokens");
            Fixture {
                _dir: dir,
                store,
                auth: AuthStore::new(tokens, 4, false),
                index: 0,
            }
        }

        /// Applies `request` as one committed entry.
        fn apply(&mut self, request: Request) -> Result<Option<String>, Error> {
            self.index += 1;
            let mut wt = self.store.write().expect("write txn");
            let result = self.auth.apply(&mut wt, self.index, &request);
            wt.commit(Applied {
                index: self.index,
                term: 1,
            })
            .expect("commit");
            result
        }

        fn add_user(&mut self, name: &str) -> Result<Option<String>, Error> {
            self.apply(Request::AuthUserAdd(InternalUserAddRequest {
                name: name.into(),
                hashed_password: self.auth.hash_password("pw").expect("hash"),
                no_password: false,
            }))
        }

        fn grant_role(&mut self, user: &str, role: &str) -> Result<Option<String>, Error> {
            self.apply(Request::AuthUserGrantRole(AuthUserGrantRoleRequest {
                user: user.into(),
                role: role.into(),
            }))
        }
    }

    fn enable() -> Request {
        Request::AuthEnable(AuthEnableRequest {})
    }

    #[test]
    fn enabling_needs_root_with_the_root_role_and_survives_a_reload() {
        let mut f = Fixture::new();
        assert_eq!(f.apply(enable()), Err(Error::RootUserNotExist));
        f.add_user("root").expect("add root");
        assert_eq!(f.apply(enable()), Err(Error::RootRoleNotExist));
        f.grant_role("root", "root").expect("grant the root role");
        let revision = f.auth.revision();
        f.apply(enable()).expect("enable");
        assert!(f.auth.is_enabled());
        assert_eq!(f.auth.revision(), revision, "enabling is no auth change");
        assert_eq!(
            f.apply(Request::AuthUserDelete(AuthUserDeleteRequest {
                name: "root".into()
            })),
            Err(Error::InvalidAuthMgmt)
        );

        let reloaded = AuthStore::new(
            Provider::from_options("simple", std::time::Duration::from_secs(60)).expect("tokens"),
            4,
            false,
        );
        reloaded.load(&f.store).expect("load");
        assert!(reloaded.is_enabled());
        assert_eq!(reloaded.revision(), revision);
        assert_eq!(reloaded.user_get("root"), Ok(vec!["root".to_string()]));
        assert_eq!(reloaded.check_password("root", "pw"), Ok(revision));
        assert_eq!(
            reloaded.check_password("root", "bad"),
            Err(Error::AuthFailed)
        );
    }

    #[test]
    fn checks_follow_users_roles_and_revisions() {
        let mut f = Fixture::new();
        f.add_user("root").expect("root");
        f.grant_role("root", "root").expect("root role");
        f.add_user("u").expect("u");
        f.apply(Request::AuthRoleAdd(AuthRoleAddRequest {
            name: "r".into(),
        }))
        .expect("role");
        for key in ["m", "a"] {
            let grant = AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(Permission {
                    perm_type: PermType::Read as i32,
                    key: key.as_bytes().to_vec(),
                    range_end: Vec::new(),
                }),
            };
            f.apply(Request::AuthRoleGrantPermission(grant))
                .expect("grant");
        }
        let keys: Vec<Vec<u8>> = f
            .auth
            .role_get("r")
            .expect("role r")
            .into_iter()
            .map(|p| p.key)
            .collect();
        assert_eq!(keys, [b"a".to_vec(), b"m".to_vec()], "sorted by key");
        f.apply(enable()).expect("enable");

        let u = AuthInfo {
            username: "u".into(),
            revision: f.auth.revision(),
        };
        assert_eq!(
            f.auth.check(&u, Access::Read, b"a", b""),
            Err(Error::PermissionDenied),
            "no role yet"
        );
        f.grant_role("u", "r").expect("grant r");
        let u = AuthInfo {
            revision: f.auth.revision(),
            ..u
        };
        assert_eq!(f.auth.check(&u, Access::Read, b"a", b""), Ok(()));
        assert_eq!(
            f.auth.check(&u, Access::Write, b"a", b""),
            Err(Error::PermissionDenied)
        );
        let stale = AuthInfo {
            revision: u.revision - 1,
            ..u.clone()
        };
        assert_eq!(
            f.auth.check(&stale, Access::Read, b"a", b""),
            Err(Error::AuthOldRevision)
        );
        assert_eq!(
            f.auth.check(&AuthInfo::default(), Access::Read, b"a", b""),
            Err(Error::UserEmpty)
        );
        assert_eq!(f.auth.check_admin(&u), Err(Error::PermissionDenied));
        let nobody = AuthInfo {
            username: "nobody".into(),
            revision: u.revision,
        };
        assert_eq!(f.auth.check_admin(&nobody), Err(Error::UserNotFound));

        // A token is assigned at its entry's index and dies with its user.
        let token = f
            .apply(Request::Authenticate(InternalAuthenticateRequest {
                name: "u".into(),
                simple_token: "abcdefghijklmnop".into(),
            }))
            .expect("authenticate")
            .expect("a token");
        assert_eq!(token, format!("abcdefghijklmnop.{}", f.index));
        assert_eq!(
            f.auth.info_from_token(&token).map(|i| i.username),
            Some("u".into())
        );
        f.apply(Request::AuthUserDelete(AuthUserDeleteRequest {
            name: "u".into(),
        }))
        .expect("delete u");
        assert_eq!(f.auth.info_from_token(&token), None);
    }

    #[test]
    fn errors_carry_etcds_codes_and_texts() {
        assert_eq!(Error::PermissionDenied.code(), Code::PermissionDenied);
        assert_eq!(Error::InvalidAuthToken.code(), Code::Unauthenticated);
        assert_eq!(Error::UserNotFound.code(), Code::FailedPrecondition);
        assert_eq!(Error::AuthOldRevision.code(), Code::InvalidArgument);
        assert_eq!(
            Error::AuthOldRevision.to_string(),
            "etcdserver: revision of auth store is old"
        );
        assert_eq!(
            Error::PermissionDenied.store_message(),
            "auth: permission denied"
        );
        assert_eq!(Error::UserNotFound.store_message(), "auth: user not found");
    }
}
