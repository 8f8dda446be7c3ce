//! `etcdctl compaction [--physical] <revision>`: compacts the key history.

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::CompactionRequest;

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::global::{self, Client};

pub async fn run(mut inv: Invocation) -> CtlResult {
    if inv.args.len() != 1 {
        return Err(ExitError::bad_args("compaction command needs 1 argument"));
    }
    let revision =
        gofmt::parse_int(&inv.args[0], 10).map_err(|e| ExitError::error(e.to_string()))?;
    let request = CompactionRequest {
        revision,
        physical: inv.flags.bool("physical"),
    };
    let (config, _printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut client = Client::new(config);
    client
        .call(request, false, |channel, req| async move {
            KvClient::new(channel).compact(req).await
        })
        .await?;
    println!("compacted revision {revision}");
    Ok(())
}
