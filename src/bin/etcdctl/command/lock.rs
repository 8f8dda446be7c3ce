//! `etcdctl lock <lockname> [exec-command arg1 arg2 ...]`: takes the named
//! lock with clientv3's concurrency mutex (a session lease of `--ttl`
//! seconds), then either prints the lock key and holds the lock until
//! SIGINT/SIGTERM, or runs the command while holding it and exits with the
//! command's status.

use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::{RangeRequest, RangeResponse};

use crate::command::Invocation;
use crate::concurrency::mutex::Mutex;
use crate::concurrency::session::Session;
use crate::exit::{CtlResult, ExitError, EXIT_ERROR};
use crate::global::{self, Client, RpcError, SharedClient};
use crate::lessor;
use crate::process::{self, Exec};
use crate::shutdown::{ShutdownSignals, CONTEXT_CANCELED};
use crate::watcher::Watcher;

pub async fn run(mut inv: Invocation) -> CtlResult {
    let Some((name, command)) = inv.args.split_first() else {
        return Err(ExitError::bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let (name, command) = (name.clone(), command.to_vec());
    let ttl = inv.flags.int("ttl");
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let first_timeout = lessor::first_keep_alive_timeout(&config);
    let client = Client::unbounded(config).shared();

    let mut session = Session::new(&client, ttl, first_timeout)
        .await
        .map_err(ExitError::from)?;
    let mut mutex = Mutex::new(&session, &name);
    let mut signals = ShutdownSignals::register()?;
    let mut watcher = Watcher::new(client.clone(), false);

    let locked = {
        let lock = mutex.lock(&client, &mut watcher);
        tokio::pin!(lock);
        tokio::select! {
            result = &mut lock => Some(result),
            () = signals.recv() => None,
        }
    };
    match locked {
        Some(result) => result?,
        None => {
            // Cancelled while waiting: take our place in the queue back.
            if mutex.is_queued() {
                let _ = mutex.unlock(&client).await;
            }
            return Err(ExitError::error(CONTEXT_CANCELED));
        }
    }

    if !command.is_empty() {
        return run_locked(&client, &mut mutex, command).await;
    }

    let held = tokio::select! {
        result = get(&client, mutex.key()) => result?,
        () = signals.recv() => return Err(ExitError::error(CONTEXT_CANCELED)),
    };
    if held.kvs.is_empty() {
        return Err(ExitError::error("lock lost on init"));
    }
    printer.get(&held)?;

    tokio::select! {
        () = signals.recv() => Ok(mutex.unlock(&client).await?),
        () = session.done() => Err(ExitError::error("session expired")),
    }
}

/// Runs the command while holding the lock, then releases it. Signals are
/// caught meanwhile and do not stop the command.
async fn run_locked(client: &SharedClient, mutex: &mut Mutex, command: Vec<String>) -> CtlResult {
    let exec = Exec {
        args: command,
        env_under: vec![
            (
                "ETCD_LOCK_KEY".to_string(),
                String::from_utf8_lossy(mutex.key()).into_owned(),
            ),
            (
                "ETCD_LOCK_REV".to_string(),
                mutex.header().map_or(0, |h| h.revision).to_string(),
            ),
        ],
        ..Exec::default()
    };
    let ran = process::run(exec).await;
    let unlocked = mutex.unlock(client).await;
    if let Err(failure) = ran {
        // etcdctl exits with the command's own status (Go's -1 for a
        // signal becomes 255).
        let code = if failure.started {
            failure.exit_status & 0xff
        } else {
            EXIT_ERROR
        };
        return Err(ExitError::new(code, failure.text));
    }
    Ok(unlocked?)
}

async fn get(client: &SharedClient, key: &[u8]) -> Result<RangeResponse, RpcError> {
    let request = RangeRequest {
        key: key.to_vec(),
        ..RangeRequest::default()
    };
    client
        .lock()
        .await
        .call(request, true, |channel, req| async move {
            KvClient::new(channel).range(req).await
        })
        .await
}
