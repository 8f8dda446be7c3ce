//! `etcdctl del [options] <key> [range_end]`: deletes a key or a range and
//! prints how many keys went (and, with `--prev-kv`, which).

use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::DeleteRangeRequest;

use crate::command::{Invocation, KeyRangeFlags};
use crate::exit::{CtlResult, ExitError};
use crate::flags::FlagSet;
use crate::global::{self, Client};

pub async fn run(mut inv: Invocation) -> CtlResult {
    let request = delete_request(&inv.flags, &inv.byte_args())?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut client = Client::new(config);
    let response = client
        .call(request, false, |channel, req| async move {
            KvClient::new(channel).delete_range(req).await
        })
        .await?;
    printer.del(&response)
}

/// etcdctl's `getDelOp` turned into the request clientv3 sends.
pub fn delete_request(flags: &FlagSet, args: &[Vec<u8>]) -> CtlResult<DeleteRangeRequest> {
    if args.is_empty() || args.len() > 2 {
        return Err(ExitError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    let (key, range_end) = KeyRangeFlags::from_flags(flags)?.key_range(&args[0], args.get(1))?;
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: flags.bool("prev-kv"),
    })
}
