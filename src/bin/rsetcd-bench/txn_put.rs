//! The `txn-put` benchmark, as etcd's: each txn puts `--txn-ops` keys (the
//! zigzag varints of consecutive indexes modulo the key space) with one
//! random value. `--compare` (ours; etcd's tool has none) guards each txn
//! with a compare on its first key that always holds, so the server
//! evaluates a compare as well: the issue's "txn (compare + put)" row.

use anyhow::{bail, Result};
use rsetcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::request_op::Request;
use rsetcd::proto::etcdserverpb::{Compare, PutRequest, RequestOp, TxnRequest};
use tonic::transport::Channel;
use tonic::Status;

use crate::cli::TxnPutArgs;
use crate::put::{random_value, varint_key};
use crate::runner::Workload;

pub struct TxnPutWorkload {
    key_size: usize,
    value: Vec<u8>,
    key_space: u64,
    ops: usize,
    compare: bool,
}

impl TxnPutWorkload {
    pub fn new(args: &TxnPutArgs) -> Result<TxnPutWorkload> {
        if args.key_space_size <= 0 {
            bail!(
                "expected positive --key-space-size, got ({})",
                args.key_space_size
            );
        }
        if args.txn_ops as i64 > args.key_space_size {
            bail!(
                "expected --txn-ops no larger than --key-space-size, got txn-ops({}) key-space-size({})",
                args.txn_ops,
                args.key_space_size
            );
        }
        Ok(TxnPutWorkload {
            key_size: args.key_size,
            value: random_value(args.val_size),
            key_space: args.key_space_size as u64,
            ops: args.txn_ops,
            compare: args.compare,
        })
    }

    fn request(&self, index: usize) -> TxnRequest {
        let keys: Vec<Vec<u8>> = (0..self.ops)
            .map(|j| {
                varint_key(
                    (index * self.ops + j) as u64 % self.key_space,
                    self.key_size,
                )
            })
            .collect();
        let compare = if self.compare {
            vec![Compare {
                result: CompareResult::Greater as i32,
                target: CompareTarget::Mod as i32,
                key: keys[0].clone(),
                target_union: Some(TargetUnion::ModRevision(-1)),
                ..Default::default()
            }]
        } else {
            Vec::new()
        };
        let success = keys
            .into_iter()
            .map(|key| RequestOp {
                request: Some(Request::RequestPut(PutRequest {
                    key,
                    value: self.value.clone(),
                    ..Default::default()
                })),
            })
            .collect();
        TxnRequest {
            compare,
            success,
            failure: Vec::new(),
        }
    }
}

impl Workload for TxnPutWorkload {
    async fn issue(&self, kv: &mut KvClient<Channel>, index: usize) -> Result<(), Status> {
        let response = kv.txn(self.request(index)).await?.into_inner();
        if !response.succeeded {
            return Err(Status::aborted("the txn's compare failed"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn workload(args: &[&str]) -> Result<TxnPutWorkload> {
        let cli = Cli::try_parse_from(["benchmark", "txn-put"].iter().chain(args)).expect("parses");
        let Command::TxnPut(txn) = cli.command else {
            panic!("expected txn-put");
        };
        TxnPutWorkload::new(&txn)
    }

    #[test]
    fn txns_put_consecutive_keys_with_an_optional_compare() {
        let txn = workload(&["--txn-ops=2", "--key-space-size=3", "--compare"]).unwrap();
        let r = txn.request(1);
        let keys: Vec<Vec<u8>> = r
            .success
            .iter()
            .map(|op| match &op.request {
                Some(Request::RequestPut(p)) => p.key.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        // indexes 2 and 3 % 3 = 0: zigzag 4 and 0
        assert_eq!(keys, vec![vec![4, 0, 0, 0, 0, 0, 0, 0], vec![0; 8]]);
        assert_eq!(r.compare.len(), 1);
        assert!(workload(&[]).unwrap().request(0).compare.is_empty());
        assert!(workload(&["--txn-ops=2"]).is_err());
    }
}
