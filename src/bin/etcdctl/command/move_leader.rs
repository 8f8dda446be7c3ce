//! `etcdctl move-leader <transferee-member-id>`: only the leader can hand
//! over leadership, so, as etcd does, each endpoint is asked for its status
//! until one says it leads, and the transfer is sent to that endpoint. The
//! whole search and the transfer share one `--command-timeout`.

use tokio::time::Instant;

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{MoveLeaderRequest, StatusRequest};

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client, ClientConfig};

pub async fn run(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args("move-leader command needs 1 argument"));
    }
    let target = gofmt::parse_uint(&inv.args[0], 16, 64)
        .map_err(|err| ExitError::bad_args(err.to_string()))?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let deadline = Instant::now() + config.command_timeout;

    let mut leader = None;
    for endpoint in &config.endpoints {
        let mut client = Client::with_deadline(
            ClientConfig {
                endpoints: vec![endpoint.clone()],
                ..config.clone()
            },
            deadline,
        );
        let status = client
            .call(StatusRequest {}, true, |channel, req| async move {
                MaintenanceClient::new(channel).status(req).await
            })
            .await?;
        let member_id = status.header.as_ref().map_or(0, |h| h.member_id);
        if member_id == status.leader {
            leader = Some((client, status.leader));
            break;
        }
    }
    let Some((mut client, leader_id)) = leader else {
        return Err(ExitError::bad_args(format!(
            "no leader endpoint given at [{}]",
            config.endpoints.join(" ")
        )));
    };
    let response = client
        .call(
            MoveLeaderRequest { target_id: target },
            false,
            |channel, req| async move { MaintenanceClient::new(channel).move_leader(req).await },
        )
        .await?;
    printer.move_leader(leader_id, target, &response)
}
