//! `etcdctl endpoint health|status|hashkv`: checks each endpoint on its
//! own. Health, as etcd 3.5 does it, is a linearizable get of "health" (a
//! permission error still proves the member commits) followed by a check
//! for raised alarms.

use std::time::Instant;

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::alarm_request::AlarmAction;
use rsetcd::proto::etcdserverpb::cluster_client::ClusterClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{
    AlarmRequest, AlarmType, HashKvRequest, MemberListRequest, RangeRequest, StatusRequest,
};

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client, ClientConfig};
use crate::printer::{EndpointHashKv, EndpointHealth, EndpointStatus};

pub async fn health(mut inv: Invocation) -> CtlResult {
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let endpoints = endpoints(&config, inv.flags.bool("cluster")).await?;
    let checks = endpoints.into_iter().map(|endpoint| {
        let config = ClientConfig {
            endpoints: vec![endpoint.clone()],
            ..config.clone()
        };
        check_health(endpoint, config)
    });
    let results = futures::future::join_all(checks).await;
    printer.endpoint_health(&results)?;
    if results.iter().any(|h| !h.error.is_empty()) {
        return Err(ExitError::error("unhealthy cluster"));
    }
    Ok(())
}

async fn check_health(endpoint: String, config: ClientConfig) -> EndpointHealth {
    let mut client = Client::new(config);
    let started = Instant::now();
    let request = RangeRequest {
        key: b"health".to_vec(),
        ..RangeRequest::default()
    };
    let result = client
        .call(request, true, |channel, req| async move {
            KvClient::new(channel).range(req).await
        })
        .await;
    let took = gofmt::format_duration(started.elapsed());
    let mut report = EndpointHealth {
        endpoint,
        health: false,
        took,
        error: String::new(),
    };
    match result {
        Ok(_) => report.health = true,
        Err(err) if global::is_permission_denied(&err) => report.health = true,
        Err(err) => report.error = err.text,
    }
    if report.health {
        let alarms = client
            .call(
                AlarmRequest {
                    action: AlarmAction::Get as i32,
                    member_id: 0,
                    alarm: AlarmType::None as i32,
                },
                true,
                |channel, req| async move { MaintenanceClient::new(channel).alarm(req).await },
            )
            .await;
        match alarms {
            Ok(resp) if !resp.alarms.is_empty() => {
                report.health = false;
                report.error = String::from("Active Alarm(s): ");
                for alarm in &resp.alarms {
                    report
                        .error
                        .push_str(match AlarmType::try_from(alarm.alarm) {
                            Ok(AlarmType::Nospace) => "NOSPACE ",
                            Ok(AlarmType::Corrupt) => "CORRUPT ",
                            _ => "UNKNOWN ",
                        });
                }
            }
            Ok(_) => {}
            Err(_) => {
                report.health = false;
                report.error = String::from("Unable to fetch the alarm list");
            }
        }
    }
    report
}

pub async fn status(mut inv: Invocation) -> CtlResult {
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let endpoints = endpoints(&config, inv.flags.bool("cluster")).await?;
    let mut list = Vec::new();
    let mut failed = false;
    for endpoint in endpoints {
        let mut client = Client::new(ClientConfig {
            endpoints: vec![endpoint.clone()],
            ..config.clone()
        });
        let result = client
            .call(StatusRequest {}, true, |channel, req| async move {
                MaintenanceClient::new(channel).status(req).await
            })
            .await;
        match result {
            Ok(status) => list.push(EndpointStatus { endpoint, status }),
            Err(err) => {
                failed = true;
                eprintln!(
                    "Failed to get the status of endpoint {endpoint} ({})",
                    err.text
                );
            }
        }
    }
    printer.endpoint_status(&list)?;
    if failed {
        return Err(ExitError::error(String::new()).silent());
    }
    Ok(())
}

/// Each endpoint's KV history hash (up to `--rev`, 0 for all of it). An
/// endpoint that fails is reported and skipped; the command then fails with
/// the last error, after printing the hashes it got.
pub async fn hash_kv(mut inv: Invocation) -> CtlResult {
    let revision = inv.flags.int("rev");
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let endpoints = endpoints(&config, inv.flags.bool("cluster")).await?;
    let mut list = Vec::new();
    let mut last_error = None;
    for endpoint in endpoints {
        let mut client = Client::new(ClientConfig {
            endpoints: vec![endpoint.clone()],
            ..config.clone()
        });
        let result = client
            .call(
                HashKvRequest { revision },
                true,
                |channel, req| async move { MaintenanceClient::new(channel).hash_kv(req).await },
            )
            .await;
        match result {
            Ok(response) => list.push(EndpointHashKv { endpoint, response }),
            Err(err) => {
                eprintln!(
                    "Failed to get the hash of endpoint {endpoint} ({})",
                    err.text
                );
                last_error = Some(err.text);
            }
        }
    }
    printer.endpoint_hash_kv(&list)?;
    match last_error {
        Some(text) => Err(ExitError::error(text)),
        None => Ok(()),
    }
}

/// `--endpoints`, or with `--cluster` every member's client URLs.
pub async fn endpoints(config: &ClientConfig, cluster: bool) -> CtlResult<Vec<String>> {
    if !cluster {
        return Ok(config.endpoints.clone());
    }
    let mut client = Client::new(config.clone());
    let members = client
        .call(
            // etcd 3.5's client lists members linearizably.
            MemberListRequest { linearizable: true },
            true,
            |channel, req| async move { ClusterClient::new(channel).member_list(req).await },
        )
        .await
        .map_err(|err| {
            ExitError::error(format!(
                "failed to fetch endpoints from etcd cluster member list: {}",
                err.text
            ))
        })?;
    Ok(members
        .members
        .into_iter()
        .flat_map(|m| m.client_ur_ls)
        .collect())
}
