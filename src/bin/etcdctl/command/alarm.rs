//! `etcdctl alarm list|disarm`: the cluster's raised alarms (NOSPACE,
//! CORRUPT), and clearing them. Disarming every alarm is clientv3's
//! `AlarmDisarm` with an empty member: list, then deactivate each one.

use rsetcd::proto::etcdserverpb::alarm_request::AlarmAction;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{AlarmRequest, AlarmResponse, AlarmType};

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client, RpcError};

pub async fn list(mut inv: Invocation) -> CtlResult {
    if !inv.args.is_empty() {
        return Err(ExitError::bad_args(
            "alarm list command accepts no arguments",
        ));
    }
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut client = Client::new(config);
    let response = alarm(&mut client, AlarmAction::Get, 0, AlarmType::None as i32).await?;
    printer.alarm(&response)
}

pub async fn disarm(mut inv: Invocation) -> CtlResult {
    if !inv.args.is_empty() {
        return Err(ExitError::bad_args(
            "alarm disarm command accepts no arguments",
        ));
    }
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut client = Client::new(config);
    let raised = alarm(&mut client, AlarmAction::Get, 0, AlarmType::None as i32).await?;
    // clientv3 gathers the deactivated alarms into a response of its own,
    // which has no header.
    let mut disarmed = AlarmResponse::default();
    for member in raised.alarms {
        let response = alarm(
            &mut client,
            AlarmAction::Deactivate,
            member.member_id,
            member.alarm,
        )
        .await?;
        disarmed.alarms.extend(response.alarms);
    }
    printer.alarm(&disarmed)
}

async fn alarm(
    client: &mut Client,
    action: AlarmAction,
    member_id: u64,
    alarm: i32,
) -> Result<AlarmResponse, RpcError> {
    let request = AlarmRequest {
        action: action as i32,
        member_id,
        alarm,
    };
    // clientv3 retries Alarm calls on another endpoint (they are repeatable).
    client
        .call(request, true, |channel, req| async move {
            MaintenanceClient::new(channel).alarm(req).await
        })
        .await
}
