//! `etcdctl auth enable|disable|status`: switching authentication on and
//! off. `enable` creates the `root` role and grants it to the `root` user
//! when the server says it is missing, then tries again (etcdctl 3.5).

use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthStatusRequest,
    AuthUserGrantRoleRequest,
};

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client, RpcError};

/// The error AuthEnable answers while the root role does not exist.
const ROOT_ROLE_NOT_EXIST: &str = "etcdserver: root user does not have root role";

pub async fn enable(mut inv: Invocation) -> CtlResult {
    if !inv.args.is_empty() {
        return Err(ExitError::bad_args(
            "auth enable command does not accept any arguments",
        ));
    }
    let (config, _printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut client = Client::new(config);
    loop {
        match auth_enable(&mut client).await {
            Ok(()) => break,
            Err(err) if err.text == ROOT_ROLE_NOT_EXIST => {
                add_root_role(&mut client).await?;
            }
            Err(err) => return Err(err.into()),
        }
    }
    // etcdctl prints this whatever the output format.
    println!("Authentication Enabled");
    Ok(())
}

async fn auth_enable(client: &mut Client) -> Result<(), RpcError> {
    client
        .call(AuthEnableRequest {}, false, |channel, req| async move {
            AuthClient::new(channel).auth_enable(req).await
        })
        .await
        .map(|_| ())
}

async fn add_root_role(client: &mut Client) -> Result<(), RpcError> {
    let request = AuthRoleAddRequest {
        name: "root".to_string(),
    };
    client
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).role_add(req).await
        })
        .await?;
    let request = AuthUserGrantRoleRequest {
        user: "root".to_string(),
        role: "root".to_string(),
    };
    client
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).user_grant_role(req).await
        })
        .await?;
    Ok(())
}

pub async fn disable(mut inv: Invocation) -> CtlResult {
    if !inv.args.is_empty() {
        return Err(ExitError::bad_args(
            "auth disable command does not accept any arguments",
        ));
    }
    let (config, _printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    Client::new(config)
        .call(AuthDisableRequest {}, false, |channel, req| async move {
            AuthClient::new(channel).auth_disable(req).await
        })
        .await?;
    println!("Authentication Disabled");
    Ok(())
}

pub async fn status(mut inv: Invocation) -> CtlResult {
    if !inv.args.is_empty() {
        return Err(ExitError::bad_args(
            "auth status command does not accept any arguments",
        ));
    }
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let response = Client::new(config)
        .call(AuthStatusRequest {}, true, |channel, req| async move {
            AuthClient::new(channel).auth_status(req).await
        })
        .await?;
    printer.auth_status(&response)
}
