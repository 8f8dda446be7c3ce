//! `etcdctl lease grant|revoke|timetolive|list|keep-alive`. Grant and
//! revoke run under `--command-timeout`; the others, like etcd's, wait as
//! long as the cluster takes.

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseLeasesRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest,
};

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError, EXIT_BAD_CONNECTION};
use crate::global::{self, Client, RpcError};
use crate::lessor;
use crate::printer::{lease_id_text, Format};

pub async fn grant(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "lease grant command needs TTL argument",
        ));
    }
    let ttl = gofmt::parse_int(&inv.args[0], 10)
        .map_err(|err| ExitError::bad_args(format!("bad TTL ({err})")))?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let response = Client::new(config)
        .call(
            LeaseGrantRequest { ttl, id: 0 },
            true,
            |channel, req| async move { LeaseClient::new(channel).lease_grant(req).await },
        )
        .await
        .map_err(|err| failed("failed to grant lease", err))?;
    printer.lease_grant(&response)
}

pub async fn revoke(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args("lease revoke command needs 1 argument"));
    }
    let id = lease_from_arg(&inv.args[0])?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let response = Client::new(config)
        .call(LeaseRevokeRequest { id }, true, |channel, req| async move {
            LeaseClient::new(channel).lease_revoke(req).await
        })
        .await
        .map_err(|err| failed("failed to revoke lease", err))?;
    printer.lease_revoke(id, &response)
}

pub async fn time_to_live(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "lease timetolive command needs lease ID as argument",
        ));
    }
    let keys = inv.flags.bool("keys");
    // etcdctl builds its client before it reads the lease ID.
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let id = lease_from_arg(&inv.args[0])?;
    let response = Client::unbounded(config)
        .call(
            LeaseTimeToLiveRequest { id, keys },
            true,
            |channel, req| async move { LeaseClient::new(channel).lease_time_to_live(req).await },
        )
        .await
        .map_err(bad_connection)?;
    printer.lease_time_to_live(&response, keys)
}

pub async fn list(mut inv: Invocation) -> CtlResult {
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let response = Client::unbounded(config)
        .call(LeaseLeasesRequest {}, true, |channel, req| async move {
            LeaseClient::new(channel).lease_leases(req).await
        })
        .await
        .map_err(bad_connection)?;
    printer.lease_list(&response)
}

pub async fn keep_alive(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args(
            "lease keep-alive command needs lease ID as argument",
        ));
    }
    let id = lease_from_arg(&inv.args[0])?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let first_timeout = lessor::first_keep_alive_timeout(&config);
    let client = Client::unbounded(config).shared();
    if inv.flags.bool("once") {
        let response = lessor::keep_alive_once(&client, id)
            .await
            .map_err(bad_connection)?;
        return printer.lease_keep_alive(&response);
    }
    let mut renewals = lessor::keep_alive(client, id, first_timeout);
    while let Some(response) = renewals.recv().await {
        printer.lease_keep_alive(&response)?;
    }
    if printer.format == Format::Simple {
        println!("lease {} expired or revoked.", lease_id_text(id));
    }
    Ok(())
}

/// etcdctl's `leaseFromArgs`: a lease ID in hex.
fn lease_from_arg(arg: &str) -> CtlResult<i64> {
    gofmt::parse_int(arg, 16).map_err(|err| {
        ExitError::bad_args(format!("bad lease ID arg ({err}), expecting ID in Hex"))
    })
}

/// A failed grant or revoke, wrapped in etcdctl's words (a client that
/// could not log in fails as etcdctl's client constructor does).
fn failed(what: &str, err: RpcError) -> ExitError {
    if err.exit_code == EXIT_BAD_CONNECTION {
        return err.into();
    }
    ExitError::error(format!("{what} ({})", err.text))
}

fn bad_connection(err: RpcError) -> ExitError {
    ExitError::new(EXIT_BAD_CONNECTION, err.text)
}
