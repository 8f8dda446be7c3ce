//! `etcdctl member add|list|remove|update|promote`: the Cluster service.
//! As etcd does, arguments are checked before the client is built, peer
//! URLs are checked by etcd's client rules before they are sent (clientv3
//! fails fast on them), and the result is printed only after the call, so
//! an output format the command cannot print fails after the change is made.

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::cluster_client::ClusterClient;
use rsetcd::proto::etcdserverpb::{
    MemberAddRequest, MemberAddResponse, MemberListRequest, MemberPromoteRequest,
    MemberRemoveRequest, MemberUpdateRequest,
};

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client};
use crate::printer::Format;

pub async fn add(mut inv: Invocation) -> CtlResult {
    if inv.args.is_empty() {
        return Err(ExitError::bad_args("member name not provided"));
    }
    if inv.args.len() > 1 {
        // Peer URLs given as arguments are a common slip: point at the flag.
        let mut message = String::from("too many arguments");
        for arg in &inv.args {
            if arg.to_lowercase().starts_with("http") {
                message.push_str(&format!(", did you mean --peer-urls={arg}"));
            }
        }
        return Err(ExitError::bad_args(message));
    }
    let name = inv.args[0].clone();
    let peer_urls = peer_urls_flag(&inv)?;
    let urls = split_urls(&peer_urls);
    let is_learner = inv.flags.bool("learner");
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    check_urls(&urls)?;
    let request = MemberAddRequest {
        peer_ur_ls: urls,
        is_learner,
    };
    let response = Client::new(config)
        .call(request, false, |channel, req| async move {
            ClusterClient::new(channel).member_add(req).await
        })
        .await?;
    printer.member_add(&response)?;
    if printer.format == Format::Simple {
        print!("{}", new_member_environment(&name, &peer_urls, &response));
    }
    Ok(())
}

pub async fn list(mut inv: Invocation) -> CtlResult {
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    // etcd 3.5's client asks for a linearizable list.
    let response = Client::new(config)
        .call(
            MemberListRequest { linearizable: true },
            true,
            |channel, req| async move { ClusterClient::new(channel).member_list(req).await },
        )
        .await?;
    printer.member_list(&response)
}

pub async fn remove(mut inv: Invocation) -> CtlResult {
    let id = member_id_arg(&inv.args)?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let response = Client::new(config)
        .call(
            MemberRemoveRequest { id },
            false,
            |channel, req| async move { ClusterClient::new(channel).member_remove(req).await },
        )
        .await?;
    printer.member_remove(id, &response)
}

pub async fn update(mut inv: Invocation) -> CtlResult {
    let id = member_id_arg(&inv.args)?;
    let urls = split_urls(&peer_urls_flag(&inv)?);
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    check_urls(&urls)?;
    let request = MemberUpdateRequest {
        id,
        peer_ur_ls: urls,
    };
    let response = Client::new(config)
        .call(request, false, |channel, req| async move {
            ClusterClient::new(channel).member_update(req).await
        })
        .await?;
    printer.member_update(id, &response)
}

pub async fn promote(mut inv: Invocation) -> CtlResult {
    let id = member_id_arg(&inv.args)?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let response = Client::new(config)
        .call(
            MemberPromoteRequest { id },
            false,
            |channel, req| async move { ClusterClient::new(channel).member_promote(req).await },
        )
        .await?;
    printer.member_promote(id, &response)
}

/// `<memberID>`: exactly one hexadecimal ID.
fn member_id_arg(args: &[String]) -> CtlResult<u64> {
    if args.len() != 1 {
        return Err(ExitError::bad_args("member ID is not provided"));
    }
    gofmt::parse_uint(&args[0], 16, 64).map_err(|err| {
        ExitError::bad_args(format!("bad member ID arg ({err}), expecting ID in Hex"))
    })
}

fn peer_urls_flag(inv: &Invocation) -> CtlResult<String> {
    let value = inv.flags.string("peer-urls");
    if value.is_empty() {
        return Err(ExitError::bad_args("member peer urls not provided"));
    }
    Ok(value)
}

fn split_urls(value: &str) -> Vec<String> {
    value.split(',').map(str::to_string).collect()
}

/// clientv3 checks peer URLs (`types.NewURLs`) before sending them.
fn check_urls(urls: &[String]) -> CtlResult {
    rsetcd::config::check_url_list(urls.iter().map(String::as_str)).map_err(ExitError::error)
}

/// The settings that start the new member, printed after `member add` in
/// simple format: the cluster is every member's peer URLs, the new one
/// under the name it was added with.
fn new_member_environment(name: &str, peer_urls: &str, response: &MemberAddResponse) -> String {
    let new_id = response.member.as_ref().map_or(0, |m| m.id);
    let mut cluster = Vec::new();
    for member in &response.members {
        let member_name = if member.id == new_id {
            name
        } else {
            member.name.as_str()
        };
        for url in &member.peer_ur_ls {
            cluster.push(format!("{member_name}={url}"));
        }
    }
    format!(
        "\nETCD_NAME={}\nETCD_INITIAL_CLUSTER={}\nETCD_INITIAL_ADVERTISE_PEER_URLS={}\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        gofmt::quote(name.as_bytes()),
        gofmt::quote(cluster.join(",").as_bytes()),
        gofmt::quote(peer_urls.as_bytes()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsetcd::proto::etcdserverpb::Member;

    #[test]
    fn member_ids_parse_as_etcd_does() {
        assert_eq!(
            member_id_arg(&["8e9e05c52164694d".into()]),
            Ok(0x8e9e05c52164694d)
        );
        assert_eq!(
            member_id_arg(&["zz".into()]).unwrap_err().message,
            "bad member ID arg (strconv.ParseUint: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
        assert_eq!(
            member_id_arg(&[]).unwrap_err().message,
            "member ID is not provided"
        );
    }

    #[test]
    fn new_member_environment_names_the_new_member() {
        let member = |id, name: &str, url: &str| Member {
            id,
            name: name.to_string(),
            peer_ur_ls: vec![url.to_string()],
            client_ur_ls: Vec::new(),
            is_learner: false,
        };
        let response = MemberAddResponse {
            header: None,
            member: Some(member(2, "", "http://b:2380")),
            members: vec![
                member(1, "a", "http://a:2380"),
                member(2, "", "http://b:2380"),
            ],
        };
        assert_eq!(
            new_member_environment("b", "http://b:2380", &response),
            "\nETCD_NAME=\"b\"\nETCD_INITIAL_CLUSTER=\"a=http://a:2380,b=http://b:2380\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"http://b:2380\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n"
        );
    }
}
