//! `etcdctl elect <election-name> [proposal]`: campaigns with clientv3's
//! concurrency election and, once leader, prints the leader key and holds
//! the leadership until SIGINT/SIGTERM; with `-l`, prints every leader
//! (and each new proposal of the leader) until a signal.

use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::RangeRequest;

use crate::command::Invocation;
use crate::concurrency::election::{self, Election};
use crate::concurrency::session::{Session, DEFAULT_TTL};
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client, SharedClient};
use crate::lessor;
use crate::printer::Printer;
use crate::shutdown::{ShutdownSignals, CONTEXT_CANCELED};
use crate::watcher::Watcher;

pub async fn run(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 && inv.args.len() != 2 {
        return Err(ExitError::bad_args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    let listen = inv.flags.bool("listen");
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let first_timeout = lessor::first_keep_alive_timeout(&config);
    let client = Client::unbounded(config).shared();
    let name = inv.args[0].clone();
    match inv.args.get(1) {
        None if !listen => Err(ExitError::bad_args("no proposal argument but -l not set")),
        None => observe(&client, &printer, &name, first_timeout).await,
        Some(_) if listen => Err(ExitError::bad_args("proposal given but -l is set")),
        Some(proposal) => campaign(&client, &printer, &name, proposal, first_timeout).await,
    }
}

/// Prints each leader until a signal; following may not fail otherwise.
async fn observe(
    client: &SharedClient,
    printer: &Printer,
    name: &str,
    first_timeout: std::time::Duration,
) -> CtlResult {
    // etcd's observer opens a session it never uses; so do we, to send
    // the same requests.
    let _session = Session::new(client, DEFAULT_TTL, first_timeout).await?;
    let mut signals = ShutdownSignals::register()?;
    let mut leaders = election::observe(client.clone(), name);
    loop {
        tokio::select! {
            leader = leaders.recv() => match leader {
                Some(leader) => printer.get(&leader)?,
                None => return Err(ExitError::error("elect: observer lost")),
            },
            () = signals.recv() => return Ok(()),
        }
    }
}

async fn campaign(
    client: &SharedClient,
    printer: &Printer,
    name: &str,
    proposal: &str,
    first_timeout: std::time::Duration,
) -> CtlResult {
    let mut session = Session::new(client, DEFAULT_TTL, first_timeout).await?;
    let mut election = Election::new(&session, name);
    let mut signals = ShutdownSignals::register()?;
    let mut watcher = Watcher::new(client.clone(), false);

    let elected = {
        let campaign = election.campaign(client, &mut watcher, proposal.as_bytes());
        tokio::pin!(campaign);
        tokio::select! {
            result = &mut campaign => Some(result),
            () = signals.recv() => None,
        }
    };
    match elected {
        Some(result) => result?,
        None => {
            if election.is_campaigning() {
                let _ = election.resign(client).await;
            }
            return Err(ExitError::error(CONTEXT_CANCELED));
        }
    }

    let request = RangeRequest {
        key: election.key().to_vec(),
        ..RangeRequest::default()
    };
    let leader = tokio::select! {
        result = async {
            client
                .lock()
                .await
                .call(request, true, |channel, req| async move {
                    KvClient::new(channel).range(req).await
                })
                .await
        } => result?,
        () = signals.recv() => return Err(ExitError::error(CONTEXT_CANCELED)),
    };
    printer.get(&leader)?;

    tokio::select! {
        () = signals.recv() => {}
        () = session.done() => return Err(ExitError::error("elect: session expired")),
    }
    Ok(election.resign(client).await?)
}
