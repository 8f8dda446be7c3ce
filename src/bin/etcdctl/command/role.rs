//! `etcdctl role add|delete|get|list|grant-permission|revoke-permission`.
//! etcdctl runs these without a command timeout. Permission ranges follow
//! etcdctl's `permRange`: `--prefix` and `--from-key` widen the key, and
//! an empty key with either means every key (`\0` to `\0`).

use rsetcd::client::prefix_end;
use rsetcd::proto::authpb::{permission, Permission};
use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
use rsetcd::proto::etcdserverpb::{
    AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest, AuthRoleGrantPermissionRequest,
    AuthRoleListRequest, AuthRoleRevokePermissionRequest,
};

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::flags::FlagSet;
use crate::global::{self, Client};
use crate::printer::HeaderOnly;

pub async fn add(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "role add command requires role name as its argument",
        ));
    }
    let name = inv.args[0].clone();
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthRoleAddRequest { name: name.clone() };
    let response = Client::unbounded(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).role_add(req).await
        })
        .await?;
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(change, format!("Role {name} created\n").as_bytes())
}

pub async fn delete(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "role delete command requires role name as its argument",
        ));
    }
    let name = inv.args[0].clone();
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthRoleDeleteRequest { role: name.clone() };
    let response = Client::unbounded(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).role_delete(req).await
        })
        .await?;
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(change, format!("Role {name} deleted\n").as_bytes())
}

pub async fn get(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "role get command requires role name as its argument",
        ));
    }
    let name = inv.args[0].clone();
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthRoleGetRequest { role: name.clone() };
    let response = Client::unbounded(config)
        .call(request, true, |channel, req| async move {
            AuthClient::new(channel).role_get(req).await
        })
        .await?;
    printer.role_get(&name, &response)
}

pub async fn list(mut inv: Invocation) -> CtlResult {
    if !inv.args.is_empty() {
        return Err(ExitError::bad_args(
            "role list command requires no arguments",
        ));
    }
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let response = Client::unbounded(config)
        .call(AuthRoleListRequest {}, true, |channel, req| async move {
            AuthClient::new(channel).role_list(req).await
        })
        .await?;
    printer.role_list(&response)
}

pub async fn grant_permission(mut inv: Invocation) -> CtlResult {
    if inv.args.len() < 3 {
        return Err(ExitError::bad_args(
            "role grant command requires role name, permission type, and key [endkey] as its argument",
        ));
    }
    let name = inv.args[0].clone();
    let perm_type = permission_type(&inv.args[1])?;
    let (key, range_end) = perm_range(&inv.flags, &inv.byte_args()[2..])?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthRoleGrantPermissionRequest {
        name: name.clone(),
        perm: Some(Permission {
            perm_type,
            key,
            range_end,
        }),
    };
    let response = Client::unbounded(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).role_grant_permission(req).await
        })
        .await?;
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(change, format!("Role {name} updated\n").as_bytes())
}

pub async fn revoke_permission(mut inv: Invocation) -> CtlResult {
    if inv.args.len() < 2 {
        return Err(ExitError::bad_args(
            "role revoke-permission command requires role name and key [endkey] as its argument",
        ));
    }
    let name = inv.args[0].clone();
    let typed_key = inv.byte_args()[1].clone();
    let (key, range_end) = perm_range(&inv.flags, &inv.byte_args()[1..])?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let request = AuthRoleRevokePermissionRequest {
        role: name.clone(),
        key,
        range_end: range_end.clone(),
    };
    let response = Client::unbounded(config)
        .call(request, false, |channel, req| async move {
            AuthClient::new(channel).role_revoke_permission(req).await
        })
        .await?;
    // The message shows the key as typed and the computed range end.
    let mut simple = Vec::new();
    if range_end.is_empty() {
        simple.extend_from_slice(b"Permission of key ");
        simple.extend_from_slice(&typed_key);
    } else {
        simple.extend_from_slice(b"Permission of range [");
        simple.extend_from_slice(&typed_key);
        simple.extend_from_slice(b", ");
        if range_end != [0] {
            simple.extend_from_slice(&range_end);
            simple.push(b')');
        } else {
            simple.extend_from_slice(b"<open ended>");
        }
    }
    simple.extend_from_slice(format!(" is revoked from role {name}\n").as_bytes());
    let change = HeaderOnly {
        response: &response,
        header: response.header.as_ref(),
    };
    printer.auth_change(change, &simple)
}

/// clientv3's `StrToPermissionType`: read, write or readwrite, any case.
fn permission_type(text: &str) -> CtlResult<i32> {
    permission::Type::from_str_name(&text.to_uppercase())
        .map(|t| t as i32)
        .ok_or_else(|| ExitError::bad_args(format!("invalid permission type: {text}")))
}

/// etcdctl's `permRange` over `<key> [endkey]`.
fn perm_range(flags: &FlagSet, args: &[Vec<u8>]) -> CtlResult<(Vec<u8>, Vec<u8>)> {
    let prefix = flags.bool("prefix");
    let from_key = flags.bool("from-key");
    let exclusive = || ExitError::bad_args("--from-key and --prefix flags are mutually exclusive");
    let key = args[0].clone();
    if key.is_empty() {
        if prefix && from_key {
            return Err(exclusive());
        }
        // An empty key is the whole key space: "\0", open ended with a flag.
        let end = if prefix || from_key {
            vec![0]
        } else {
            Vec::new()
        };
        return Ok((vec![0], end));
    }
    if args.len() == 1 {
        let end = match (prefix, from_key) {
            (true, true) => return Err(exclusive()),
            (true, false) => prefix_end(&key),
            (false, true) => vec![0],
            (false, false) => Vec::new(),
        };
        return Ok((key, end));
    }
    if prefix {
        return Err(ExitError::bad_args(
            "unexpected endkey argument with --prefix flag",
        ));
    }
    if from_key {
        return Err(ExitError::bad_args(
            "unexpected endkey argument with --from-key flag",
        ));
    }
    Ok((key, args[1].clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::{FlagKind, FlagSpec};

    fn flags(prefix: bool, from_key: bool) -> FlagSet {
        let mut set = FlagSet::new([
            FlagSpec::new("prefix", FlagKind::Bool, "false", ""),
            FlagSpec::new("from-key", FlagKind::Bool, "false", ""),
        ]);
        set.set("prefix", &prefix.to_string()).unwrap();
        set.set("from-key", &from_key.to_string()).unwrap();
        set
    }

    fn range(prefix: bool, from_key: bool, args: &[&str]) -> CtlResult<(Vec<u8>, Vec<u8>)> {
        let args: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
        perm_range(&flags(prefix, from_key), &args)
    }

    #[test]
    fn ranges_follow_etcdctl() {
        assert_eq!(
            range(false, false, &["a"]).unwrap(),
            (b"a".to_vec(), vec![])
        );
        assert_eq!(
            range(false, false, &["a", "c"]).unwrap(),
            (b"a".to_vec(), b"c".to_vec())
        );
        assert_eq!(
            range(true, false, &["a/"]).unwrap(),
            (b"a/".to_vec(), b"a0".to_vec())
        );
        assert_eq!(
            range(false, true, &["z"]).unwrap(),
            (b"z".to_vec(), vec![0])
        );
        assert_eq!(range(true, false, &[""]).unwrap(), (vec![0], vec![0]));
        assert_eq!(range(false, false, &[""]).unwrap(), (vec![0], vec![]));
        assert_eq!(
            range(true, true, &["a"]).unwrap_err().message,
            "--from-key and --prefix flags are mutually exclusive"
        );
        assert_eq!(
            range(true, false, &["a", "b"]).unwrap_err().message,
            "unexpected endkey argument with --prefix flag"
        );
    }

    #[test]
    fn permission_types_ignore_case() {
        assert_eq!(permission_type("readWrite").unwrap(), 2);
        assert_eq!(
            permission_type("bogus").unwrap_err().message,
            "invalid permission type: bogus"
        );
    }
}
