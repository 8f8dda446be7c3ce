//! The `range` benchmark: the same range request over and over, linearizable
//! or serializable.

use anyhow::{bail, Result};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::RangeRequest;
use tonic::transport::Channel;
use tonic::Status;

use crate::cli::RangeArgs;
use crate::runner::Workload;

pub struct RangeWorkload {
    request: RangeRequest,
}

impl RangeWorkload {
    /// The workload and the line etcd prints before running it.
    pub fn new(args: &RangeArgs) -> Result<(RangeWorkload, &'static str)> {
        let (serializable, banner) = match args.consistency.as_str() {
            "l" => (false, "bench with linearizable range"),
            "s" => (true, "bench with serializable range"),
            other => {
                bail!("--consistency must be l (linearizable) or s (serializable), got {other:?}")
            }
        };
        let request = RangeRequest {
            key: args.key.as_bytes().to_vec(),
            range_end: args
                .end_range
                .as_deref()
                .unwrap_or_default()
                .as_bytes()
                .to_vec(),
            limit: args.limit,
            serializable,
            count_only: args.count_only,
            ..Default::default()
        };
        Ok((RangeWorkload { request }, banner))
    }
}

impl Workload for RangeWorkload {
    async fn issue(&self, kv: &mut KvClient<Channel>, _index: usize) -> Result<(), Status> {
        kv.range(self.request.clone()).await.map(drop)
    }
}
