//! Drives a workload: `--clients` tasks issue requests back to back until
//! `--total` have been issued, each recording its own latencies (no shared
//! state on the hot path besides one atomic counter), then merges them.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rsetcd::client::status_text;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::Status;

use crate::rate_limit::RateLimiter;
use crate::timeseries::Sample;

/// One kind of request. `index` is the request's sequence number in
/// 0..total, for workloads whose requests vary (e.g. sequential keys).
pub trait Workload: Send + Sync + 'static {
    fn issue(
        &self,
        kv: &mut KvClient<Channel>,
        index: usize,
    ) -> impl Future<Output = Result<(), Status>> + Send;
}

/// A successful request, in nanoseconds since the run started.
#[derive(Debug, Clone, Copy)]
struct Record {
    start_offset_nanos: u64,
    latency_nanos: u64,
}

/// Everything a run measured.
pub struct Outcome {
    pub elapsed: Duration,
    started_at: SystemTime,
    records: Vec<Record>,
    pub errors: HashMap<String, usize>,
}

impl Outcome {
    /// Latencies of successful requests in seconds (as etcd computes them).
    pub fn latencies_secs(&self) -> Vec<f64> {
        self.records
            .iter()
            .map(|record| Duration::from_nanos(record.latency_nanos).as_secs_f64())
            .collect()
    }

    /// Successful requests with wall-clock start times, for `--sample`.
    pub fn samples(&self) -> impl Iterator<Item = Sample> + '_ {
        let base = self
            .started_at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        self.records.iter().map(move |record| Sample {
            start_unix_nanos: base + record.start_offset_nanos as u128,
            latency: Duration::from_nanos(record.latency_nanos),
        })
    }
}

/// Runs `total` requests of `workload`, one task per KV client.
pub async fn run<W: Workload>(
    workload: Arc<W>,
    clients: Vec<KvClient<Channel>>,
    total: usize,
    limiter: Option<RateLimiter>,
) -> Result<Outcome> {
    if clients.is_empty() {
        bail!("--clients must be at least 1");
    }
    let per_client = total / clients.len() + 1;
    let next_index = Arc::new(AtomicUsize::new(0));
    let limiter = limiter.map(Arc::new);
    let started_at = SystemTime::now();
    let start = Instant::now();

    let tasks: Vec<_> = clients
        .into_iter()
        .map(|mut kv| {
            let workload = Arc::clone(&workload);
            let next_index = Arc::clone(&next_index);
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let mut records = Vec::with_capacity(per_client);
                let mut errors: HashMap<String, usize> = HashMap::new();
                loop {
                    let index = next_index.fetch_add(1, Ordering::Relaxed);
                    if index >= total {
                        break;
                    }
                    if let Some(limiter) = &limiter {
                        limiter.wait().await;
                    }
                    let request_start = Instant::now();
                    let result = workload.issue(&mut kv, index).await;
                    let latency = request_start.elapsed();
                    match result {
                        Ok(()) => records.push(Record {
                            start_offset_nanos: nanos(request_start - start),
                            latency_nanos: nanos(latency),
                        }),
                        Err(status) => *errors.entry(status_text(&status)).or_default() += 1,
                    }
                }
                (records, errors)
            })
        })
        .collect();

    let mut records = Vec::with_capacity(total);
    let mut errors: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        let (client_records, client_errors) = task.await.context("benchmark client failed")?;
        records.extend(client_records);
        for (message, count) in client_errors {
            *errors.entry(message).or_default() += count;
        }
    }
    Ok(Outcome {
        elapsed: start.elapsed(),
        started_at,
        records,
        errors,
    })
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}
