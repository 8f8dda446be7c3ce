//! Auth set-ups the tests share, in etcd's order of steps: user `root`
//! with the root role, auth on, a role with permissions and a user that
//! holds it, tokens.

#![allow(dead_code)]

use anyhow::Context as _;
use rsetcd::proto::authpb::Permission;
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::{
    AuthEnableRequest, AuthRoleAddRequest, AuthRoleGrantPermissionRequest, AuthUserAddRequest,
    AuthUserGrantRoleRequest, AuthenticateRequest,
};
use tonic::transport::Channel;

/// The password every test gives `root`.
pub const ROOT_PASSWORD: &str = "rootpw";

/// `message` with `token` in etcd's metadata key (as is without one).
pub fn authorized<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    match token {
        Some(t) => crate::support::common::with_token(message, t),
        None => tonic::Request::new(message),
    }
}

/// `message` as user `token` sends it; an empty token sends none (a
/// caller without credentials).
pub fn as_user<T>(message: T, token: &str) -> tonic::Request<T> {
    authorized(message, (!token.is_empty()).then_some(token))
}

/// Adds user `root` (password `ROOT_PASSWORD`) and grants it the root role.
pub async fn add_root(auth: &mut AuthClient<Channel>) -> anyhow::Result<()> {
    auth.user_add(AuthUserAddRequest {
        name: "root".into(),
        password: ROOT_PASSWORD.into(),
        ..Default::default()
    })
    .await
    .context("add root")?;
    auth.user_grant_role(AuthUserGrantRoleRequest {
        user: "root".into(),
        role: "root".into(),
    })
    .await
    .context("grant root")?;
    Ok(())
}

/// Turns auth on.
pub async fn enable(auth: &mut AuthClient<Channel>) -> anyhow::Result<()> {
    auth.auth_enable(AuthEnableRequest {})
        .await
        .context("enable")?;
    Ok(())
}

/// Adds role `role` with `perms` and user `user` (`password`) holding it;
/// `token` authorizes the calls once auth is on.
pub async fn add_user_with_role(
    auth: &mut AuthClient<Channel>,
    token: Option<&str>,
    user: &str,
    password: &str,
    role: &str,
    perms: &[Permission],
) -> anyhow::Result<()> {
    let add_role = AuthRoleAddRequest { name: role.into() };
    auth.role_add(authorized(add_role, token))
        .await
        .with_context(|| format!("add role {role}"))?;
    for perm in perms {
        let grant = AuthRoleGrantPermissionRequest {
            name: role.into(),
            perm: Some(perm.clone()),
        };
        auth.role_grant_permission(authorized(grant, token))
            .await
            .with_context(|| format!("grant {perm:?} to {role}"))?;
    }
    let add_user = AuthUserAddRequest {
        name: user.into(),
        password: password.into(),
        ..Default::default()
    };
    auth.user_add(authorized(add_user, token))
        .await
        .with_context(|| format!("add user {user}"))?;
    let grant = AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    };
    auth.user_grant_role(authorized(grant, token))
        .await
        .with_context(|| format!("grant {role} to {user}"))?;
    Ok(())
}

/// A token for `user`.
pub async fn token(channel: &Channel, user: &str, password: &str) -> anyhow::Result<String> {
    let r = AuthenticateRequest {
        name: user.into(),
        password: password.into(),
    };
    Ok(AuthClient::new(channel.clone())
        .authenticate(r)
        .await
        .with_context(|| format!("authenticate {user}"))?
        .into_inner()
        .token)
}
