//! `etcdctl user add|delete|get|list|passwd|grant-role|revoke-role`. As in
//! etcdctl, arguments are checked and a new password is read (prompted
//! twice on the terminal, or one word from stdin with
//! `--interactive=false`) before the client is set up.

use std::io::Read as _;

use rsetcd::proto::authpb::UserAddOptions;
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::{
    AuthRoleGetRequest, AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserDeleteRequest,
    AuthUserGetRequest, AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest,
};

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client};
use crate::password;
use crate::printer::HeaderOnly;

pub async fn add(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "user add command requires user name as its argument",
        ));
    }
    let arg = inv.args[0].clone();
    let from_flag = inv.flags.string("new-user-password");
    let (name, password, no_password) = if inv.flags.bool("no-password") {
        (arg, String::new(), true)
    } else if !from_flag.is_empty() {
        (arg, from_flag, false)
    } else {
        match arg.split_once(':') {
            Some((name, password)) => {
                if name.is_empty() {
                    return Err(ExitError::bad_args("empty user name is not allowed"));
                }
                (name.to_string(), password.to_string(), false)
            }
            None => {
                let password = new_password(&inv, &arg)?;
                (arg, password, false)
            }
        }
    };
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthUserAddRequest {
        name: name.clone(),
        password,
        options: Some(UserAddOptions { no_password }),
    };
    let response = Client::new(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).user_add(req).await
        })
        .await?;
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(change, format!("User {name} created\n").as_bytes())
}

pub async fn delete(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "user delete command requires user name as its argument",
        ));
    }
    let name = inv.args[0].clone();
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthUserDeleteRequest { name: name.clone() };
    let response = Client::new(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).user_delete(req).await
        })
        .await?;
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(change, format!("User {name} deleted\n").as_bytes())
}

pub async fn get(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "user get command requires user name as its argument",
        ));
    }
    let name = inv.args[0].clone();
    let detail = inv.flags.bool("detail");
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut client = Client::new(config);
    let request = AuthUserGetRequest { name: name.clone() };
    let response = client
        .call(request, true, |channel, req| async move {
            AuthClient::new(channel).user_get(req).await
        })
        .await?;
    if !detail {
        return printer.user_get(&name, &response);
    }
    // etcdctl prints the name itself, then each role in the chosen format.
    println!("User: {name}");
    for role in &response.roles {
        println!();
        let request = AuthRoleGetRequest { role: role.clone() };
        let role_response = client
            .call(request, true, |channel, req| async move {
                AuthClient::new(channel).role_get(req).await
            })
            .await?;
        printer.role_get(role, &role_response)?;
    }
    Ok(())
}

pub async fn list(mut inv: Invocation) -> CtlResult {
    if !inv.args.is_empty() {
        return Err(ExitError::bad_args(
            "user list command requires no arguments",
        ));
    }
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let response = Client::new(config)
        .call(AuthUserListRequest {}, true, |channel, req| async move {
            AuthClient::new(channel).user_list(req).await
        })
        .await?;
    printer.user_list(&response)
}

pub async fn passwd(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "user passwd command requires user name as its argument",
        ));
    }
    let name = inv.args[0].clone();
    let password = new_password(&inv, &name)?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthUserChangePasswordRequest { name, password };
    let response = Client::new(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).user_change_password(req).await
        })
        .await?;
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(change, b"Password updated\n")
}

pub async fn grant_role(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 2 {
        return Err(ExitError::bad_args(
            "user grant command requires user name and role name as its argument",
        ));
    }
    let (user, role) = (inv.args[0].clone(), inv.args[1].clone());
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthUserGrantRoleRequest {
        user: user.clone(),
        role: role.clone(),
    };
    let response = Client::new(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).user_grant_role(req).await
        })
        .await?;
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(
        change,
        format!("Role {role} is granted to user {user}\n").as_bytes(),
    )
}

pub async fn revoke_role(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 2 {
        return Err(ExitError::bad_args(
            "user revoke-role requires user name and role name as its argument",
        ));
    }
    let (user, role) = (inv.args[0].clone(), inv.args[1].clone());
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthUserRevokeRoleRequest {
        name: user.clone(),
        role: role.clone(),
    };
    let response = Client::new(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).user_revoke_role(req).await
        })
        .await?;
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(
        change,
        format!("Role {role} is revoked from user {user}\n").as_bytes(),
    )
}

/// A new password for `name`: asked twice on the terminal, or with
/// `--interactive=false` one word from stdin (Go's `fmt.Scanf("%s")`).
fn new_password(inv: &Invocation, name: &str) -> CtlResult<String> {
    if !inv.flags.bool("interactive") {
        return Ok(scan_word());
    }
    let asked = |prompt: String| {
        password::ask(&prompt)
            .map_err(|err| ExitError::bad_args(format!("failed to ask password: {err}")))
    };
    let first = asked(format!("Password of {name}: "))?;
    if first.is_empty() {
        return Err(ExitError::bad_args("empty password"));
    }
    let second = asked(format!("Type password of {name} again for confirmation: "))?;
    if first != second {
        return Err(ExitError::bad_args("given passwords are different"));
    }
    Ok(first)
}

/// `fmt.Scanf("%s", &s)` on stdin: spaces skipped, then the bytes up to
/// the next space or newline (nothing if a newline comes first).
fn scan_word() -> String {
    let mut stdin = std::io::stdin().lock();
    let mut word = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = stdin.read(&mut byte) {
        match byte[0] {
            b' ' | b'\t' | b'\r' if word.is_empty() => continue,
            b' ' | b'\t' | b'\r' | b'\n' => break,
            b => word.push(b),
        }
    }
    String::from_utf8_lossy(&word).into_owned()
}
