//! `etcdctl defrag [--cluster] [--data-dir <dir>]`: defragments each
//! endpoint's backend in turn (a member defragments only itself), or with
//! `--data-dir` the backend of a stopped member, as `etcdutl defrag` does.

use std::path::Path;

use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::DefragmentRequest;

use crate::command::{endpoint, Invocation};
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client, ClientConfig};

pub async fn run(mut inv: Invocation) -> CtlResult {
    let data_dir = inv.flags.string("data-dir");
    if !data_dir.is_empty() {
        return offline(Path::new(&data_dir));
    }
    let (config, _printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let endpoints = endpoint::endpoints(&config, inv.flags.bool("cluster")).await?;
    let mut failures = 0;
    for endpoint in endpoints {
        match defragment(&config, &endpoint).await {
            Ok(()) => println!("Finished defragmenting etcd member[{endpoint}]"),
            Err(text) => {
                eprintln!("Failed to defragment etcd member[{endpoint}] ({text})");
                failures += 1;
            }
        }
    }
    if failures != 0 {
        return Err(ExitError::error(String::new()).silent());
    }
    Ok(())
}

/// Defragments one member, within its own `--command-timeout`. The error
/// is the text etcdctl prints for it.
pub async fn defragment(config: &ClientConfig, endpoint: &str) -> Result<(), String> {
    let mut client = Client::new(ClientConfig {
        endpoints: vec![endpoint.to_string()],
        ..config.clone()
    });
    client
        .call(DefragmentRequest {}, false, |channel, req| async move {
            MaintenanceClient::new(channel).defragment(req).await
        })
        .await
        .map(|_| ())
        .map_err(|err| err.text)
}

/// etcd 3.5 still defragments a data dir itself, after a warning that the
/// flag moves to `etcdutl`.
fn offline(data_dir: &Path) -> CtlResult {
    eprint!(
        "Use `etcdutl defrag` instead. The --data-dir is going to be decomissioned in v3.6.\n\n"
    );
    rsetcd::etcdutl::defrag::defrag(data_dir).map_err(|err| ExitError::error(err.to_string()))
}
