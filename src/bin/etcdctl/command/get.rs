//! `etcdctl get [options] <key> [range_end]`: reads a key or a range.

use rsetcd::gofmt;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rsetcd::proto::etcdserverpb::RangeRequest;

use crate::command::{Invocation, KeyRangeFlags};
use crate::exit::{CtlResult, ExitError};
use crate::flags::FlagSet;
use crate::global::{self, Client};
use crate::printer::Format;

pub async fn run(mut inv: Invocation) -> CtlResult {
    let request = range_request(&inv.flags, &inv.byte_args())?;
    let (config, mut printer) = global::client_config(&mut inv.flags, &inv.inherited)?;
    let mut client = Client::new(config);
    let response = client
        .call(request, true, |channel, req| async move {
            KvClient::new(channel).range(req).await
        })
        .await?;
    if inv.flags.bool("count-only") && printer.format != Format::Fields {
        return Err(ExitError::bad_args(
            "--count-only is only for `--write-out=fields`",
        ));
    }
    if inv.flags.bool("print-value-only") {
        if printer.format != Format::Simple {
            return Err(ExitError::bad_args(
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        printer.value_only = true;
    }
    printer.get(&response)
}

/// etcdctl's `getGetOp` turned into the request clientv3 sends.
pub fn range_request(flags: &FlagSet, args: &[Vec<u8>]) -> CtlResult<RangeRequest> {
    let Some(first) = args.first() else {
        return Err(ExitError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    };
    let key_range_flags = KeyRangeFlags::from_flags(flags)?;
    let keys_only = flags.bool("keys-only");
    let count_only = flags.bool("count-only");
    if keys_only && count_only {
        return Err(ExitError::bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    let consistency = flags.string("consistency");
    let serializable = match consistency.as_str() {
        "s" => true,
        "l" => false,
        other => {
            return Err(ExitError::bad_feature(format!(
                "unknown consistency flag {}",
                gofmt::quote(other.as_bytes())
            )))
        }
    };
    let (key, range_end) = key_range_flags.key_range(first, args.get(1))?;
    let order_flag = flags.string("order");
    let mut order = match order_flag.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => {
            return Err(ExitError::bad_feature(format!(
                "bad sort order {order_flag}"
            )))
        }
    };
    let target_flag = flags.string("sort-by");
    let target = match target_flag.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => {
            return Err(ExitError::bad_feature(format!(
                "bad sort target {target_flag}"
            )))
        }
    };
    // The server already returns keys in ascending order (clientv3 WithSort).
    if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None;
    }
    let revision = flags.int("rev");
    Ok(RangeRequest {
        key,
        range_end,
        limit: flags.int("limit"),
        revision: revision.max(0),
        sort_order: order as i32,
        sort_target: target as i32,
        serializable,
        keys_only,
        count_only,
        ..RangeRequest::default()
    })
}
