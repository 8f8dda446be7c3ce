//! `etcdctl put [options] <key> <value>`: writes one key (the value may come
//! from stdin), printing `OK` and, with `--prev-kv`, the previous pair.

use std::io::Read;

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::PutRequest;

use crate::command::Invocation;
use crate::exit::{CtlResult, ExitError};
use crate::flags::FlagSet;
use crate::global::{self, Client};

const NEEDS_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";

pub async fn run(mut inv: Invocation) -> CtlResult {
    let request = put_request(&inv.flags, &inv.byte_args(), true)?;
    let (config, printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut client = Client::new(config);
    let response = client
        .call(request, false, |channel, req| async move {
            KvClient::new(channel).put(req).await
        })
        .await?;
    printer.put(&response)
}

/// etcdctl's `getPutOp`: the request from arguments and flags. The value is
/// read from stdin when it is not an argument and `stdin_value` allows it.
pub fn put_request(flags: &FlagSet, args: &[Vec<u8>], stdin_value: bool) -> CtlResult<PutRequest> {
    let Some(key) = args.first() else {
        return Err(ExitError::bad_args(NEEDS_ARGS));
    };
    let ignore_value = flags.bool("ignore-value");
    if ignore_value && args.len() > 1 {
        return Err(ExitError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let mut value = Vec::new();
    if !ignore_value {
        value = match args.get(1) {
            Some(v) => v.clone(),
            None if stdin_value => {
                let mut input = Vec::new();
                let read = std::io::stdin().read_to_end(&mut input);
                if read.is_err() || input.is_empty() {
                    return Err(ExitError::bad_args(NEEDS_ARGS));
                }
                input
            }
            None => return Err(ExitError::bad_args(NEEDS_ARGS)),
        };
    }
    let lease = gofmt::parse_int(&flags.string("lease"), 16)
        .map_err(|err| ExitError::bad_args(format!("bad lease ID ({err}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: key.clone(),
        value,
        lease,
        prev_kv: flags.bool("prev-kv"),
        ignore_value,
        ignore_lease: flags.bool("ignore-lease"),
    })
}
