//! The `lease-keepalive` benchmark. As etcd's tool by default: each client
//! grants one lease (TTL 100 s) and renews it with KeepAliveOnce (a stream
//! opened for one renewal) until `--total` renewals are done. With
//! `--leases N` (ours): N leases are granted first, spread over the
//! clients, and each client keeps one stream open and renews its leases in
//! turn, as an application's client library does. `--server-pid` (ours,
//! local servers only) reports the server's CPU time per renewal from
//! /proc.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rsetcd::client::status_text;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
use tonic::transport::Channel;
use tonic::Status;

use crate::cli::LeaseKeepaliveArgs;

/// What one phase measured: wall time, latencies (s), errors.
pub struct Phase {
    pub elapsed: Duration,
    pub latencies: Vec<f64>,
    pub errors: HashMap<String, usize>,
}

pub struct Outcome {
    /// The grants of `--leases` (none in etcd's mode: its grants are not
    /// reported either).
    pub grants: Option<Phase>,
    pub renewals: Phase,
    /// Server CPU seconds spent during the renewals, with `--server-pid`.
    pub server_cpu: Option<f64>,
}

pub async fn run(
    args: &LeaseKeepaliveArgs,
    channels: &[Channel],
    clients: usize,
) -> Result<Outcome> {
    if args.leases > 0 && args.leases < clients {
        bail!("--leases must be 0 or at least --clients ({clients})");
    }
    let lease_clients: Vec<LeaseClient<Channel>> = (0..clients)
        .map(|i| LeaseClient::new(channels[i % channels.len()].clone()))
        .collect();
    // leases per client: one in etcd's mode
    let per_client: Vec<usize> = (0..clients)
        .map(|i| {
            if args.leases == 0 {
                1
            } else {
                args.leases / clients + usize::from(i < args.leases % clients)
            }
        })
        .collect();
    let ttl = args.ttl;
    let started = Instant::now();
    let grants: Vec<_> = lease_clients
        .iter()
        .cloned()
        .zip(per_client)
        .map(|(mut c, n)| {
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(n);
                let mut latencies = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    let resp = c
                        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
                        .await
                        .map_err(|s| anyhow::anyhow!("lease grant: {}", status_text(&s)))?;
                    latencies.push(t.elapsed().as_secs_f64());
                    ids.push(resp.into_inner().id);
                }
                anyhow::Ok((ids, latencies))
            })
        })
        .collect();
    let mut leases = Vec::with_capacity(clients);
    let mut grant_latencies = Vec::new();
    for g in grants {
        let (ids, latencies) = g.await.context("grant task")??;
        leases.push(ids);
        grant_latencies.extend(latencies);
    }
    let grants = (args.leases > 0).then(|| Phase {
        elapsed: started.elapsed(),
        latencies: grant_latencies,
        errors: HashMap::new(),
    });

    let cpu_before = args.server_pid.map(cpu_seconds).transpose()?;
    let next = Arc::new(AtomicUsize::new(0));
    let total = args.total;
    let one_stream = args.leases > 0;
    let started = Instant::now();
    let tasks: Vec<_> = lease_clients
        .into_iter()
        .zip(leases)
        .map(|(c, ids)| {
            let next = next.clone();
            tokio::spawn(renew(c, ids, next, total, one_stream))
        })
        .collect();
    let mut latencies = Vec::with_capacity(total);
    let mut errors: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let (l, e) = t.await.context("keep-alive task")?;
        latencies.extend(l);
        for (k, n) in e {
            *errors.entry(k).or_default() += n;
        }
    }
    let elapsed = started.elapsed();
    let server_cpu = match (args.server_pid, cpu_before) {
        (Some(pid), Some(before)) => Some(cpu_seconds(pid)? - before),
        _ => None,
    };
    Ok(Outcome {
        grants,
        renewals: Phase {
            elapsed,
            latencies,
            errors,
        },
        server_cpu,
    })
}

/// One client's renewals until `total` are taken: KeepAliveOnce each time
/// (etcd's mode), or requests on one open stream.
async fn renew(
    mut client: LeaseClient<Channel>,
    ids: Vec<i64>,
    next: Arc<AtomicUsize>,
    total: usize,
    one_stream: bool,
) -> (Vec<f64>, HashMap<String, usize>) {
    let mut latencies = Vec::new();
    let mut errors: HashMap<String, usize> = HashMap::new();
    let mut stream = None;
    let mut turn = 0usize;
    while next.fetch_add(1, Ordering::Relaxed) < total {
        let id = ids[turn % ids.len()];
        turn += 1;
        let t = Instant::now();
        let result = if one_stream {
            renew_on_stream(&mut client, &mut stream, id).await
        } else {
            // KeepAliveOnce: a stream for this renewal alone
            renew_on_stream(&mut client, &mut None, id).await
        };
        match result {
            Ok(()) => latencies.push(t.elapsed().as_secs_f64()),
            Err(s) => {
                stream = None;
                *errors.entry(status_text(&s)).or_default() += 1;
            }
        }
    }
    (latencies, errors)
}

type KeepAliveStream = (
    tokio::sync::mpsc::Sender<LeaseKeepAliveRequest>,
    tonic::Streaming<rsetcd::proto::etcdserverpb::LeaseKeepAliveResponse>,
);

async fn renew_on_stream(
    client: &mut LeaseClient<Channel>,
    stream: &mut Option<KeepAliveStream>,
    id: i64,
) -> Result<(), Status> {
    let closed = |_| Status::unavailable("keep-alive stream closed");
    match stream {
        Some((tx, _)) => tx
            .send(LeaseKeepAliveRequest { id })
            .await
            .map_err(closed)?,
        None => {
            // the request goes first: Go's gRPC server (etcd) sends the
            // response headers only with its first answer
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            tx.send(LeaseKeepAliveRequest { id })
                .await
                .map_err(closed)?;
            let responses = client
                .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                .await?
                .into_inner();
            *stream = Some((tx, responses));
        }
    }
    let Some((_, responses)) = stream.as_mut() else {
        return Err(Status::internal("no stream"));
    };
    match responses.message().await? {
        Some(r) if r.ttl > 0 => Ok(()),
        Some(_) => Err(Status::not_found("lease expired or revoked")),
        None => Err(Status::unavailable("keep-alive stream ended")),
    }
}

/// utime + stime of a process, in seconds (/proc/PID/stat, fields 14 and
/// 15, in clock ticks).
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("--server-pid {pid}: read /proc/{pid}/stat"))?;
    // the command name (field 2) may hold spaces: count after its ')'
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("unexpected /proc stat format")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // after ')' come field 3 (state) onwards: utime is field 14
    let ticks = |i: usize| -> Result<f64> {
        Ok(fields
            .get(i - 3)
            .context("short /proc stat")?
            .parse::<f64>()?)
    };
    // /proc counts in USER_HZ, 100 on every Linux ABI
    Ok((ticks(14)? + ticks(15)?) / 100.0)
}
