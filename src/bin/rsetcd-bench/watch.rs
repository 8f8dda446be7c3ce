//! The `watch` benchmark, as etcd's: `--streams` watch streams spread over
//! the connections, `--watch-per-stream` watchers on each, the watchers
//! spread round-robin over `--watched-key-total` keys; then `--put-total`
//! puts to those keys from every client, and every event each watcher is
//! owed is counted as it arrives. Each put's value is the time it was sent,
//! so an event's latency is the time from its put being sent to the event
//! reaching its watcher (etcd's tool records none); the events summary is
//! events per second over the whole delivery.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::watch_request::RequestUnion;
use rsetcd::proto::etcdserverpb::{PutRequest, WatchCreateRequest, WatchRequest, WatchResponse};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use crate::cli::WatchArgs;
use crate::put::{run_seed, splitmix64, varint_key};
use crate::runner::Workload;

/// The keys watched, and how many watchers each has.
pub struct WatchedKeys {
    keys: Vec<Vec<u8>>,
    watchers: HashMap<Vec<u8>, usize>,
}

impl WatchedKeys {
    pub fn new(args: &WatchArgs) -> Result<WatchedKeys> {
        if args.key_space_size <= 0 {
            bail!(
                "expected positive --key-space-size, got ({})",
                args.key_space_size
            );
        }
        if args.watched_key_total == 0
            || args.streams == 0
            || args.watch_per_stream == 0
            || args.put_total == 0
        {
            bail!("--watched-key-total, --streams, --watch-per-stream and --put-total must be at least 1");
        }
        let seed = run_seed();
        let keys = (0..args.watched_key_total)
            .map(|i| {
                let index = if args.sequential_keys {
                    i as u64 % args.key_space_size as u64
                } else {
                    splitmix64(seed.wrapping_add(i as u64)) % args.key_space_size as u64
                };
                varint_key(index, args.key_size)
            })
            .collect::<Vec<_>>();
        let mut watchers = HashMap::new();
        for i in 0..args.streams * args.watch_per_stream {
            *watchers.entry(keys[i % keys.len()].clone()).or_default() += 1;
        }
        Ok(WatchedKeys { keys, watchers })
    }

    /// Events the watchers are owed for `puts` puts (put i goes to key i
    /// modulo the key count, as etcd's tool does).
    pub fn events_owed(&self, puts: usize) -> usize {
        (0..puts)
            .map(|i| self.watchers[&self.keys[i % self.keys.len()]])
            .sum()
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One open watch stream: its requests' sender (kept so the stream stays
/// open) and its answers.
pub struct Stream {
    _requests: mpsc::Sender<WatchRequest>,
    answers: Streaming<WatchResponse>,
}

/// Opens the streams and their watchers, one `created` answer awaited per
/// watcher; returns the streams and each creation's latency in seconds.
pub async fn make_watches(
    keys: &WatchedKeys,
    args: &WatchArgs,
    channels: &[Channel],
) -> Result<(Vec<Stream>, Vec<f64>)> {
    let mut streams = Vec::with_capacity(args.streams);
    let mut latencies = Vec::with_capacity(args.streams * args.watch_per_stream);
    for s in 0..args.streams {
        let mut client = WatchClient::new(channels[s % channels.len()].clone())
            .max_decoding_message_size(usize::MAX);
        let (tx, rx) = mpsc::channel(args.watch_per_stream.max(1));
        let create = |w: usize| WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: keys.keys[(s * args.watch_per_stream + w) % keys.keys.len()].clone(),
                ..Default::default()
            })),
        };
        // the first create goes with the call: etcd (Go's gRPC) sends the
        // stream's headers only with its first answer
        let mut started = Instant::now();
        tx.send(create(0)).await.context("queue a watch")?;
        let mut answers = client
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .context("open a watch stream")?
            .into_inner();
        for w in 0..args.watch_per_stream {
            if w > 0 {
                started = Instant::now();
                tx.send(create(w))
                    .await
                    .context("the watch stream closed")?;
            }
            loop {
                let answer = answers
                    .message()
                    .await
                    .context("watch stream")?
                    .context("the watch stream ended")?;
                if answer.created {
                    break;
                }
            }
            latencies.push(started.elapsed().as_secs_f64());
        }
        streams.push(Stream {
            _requests: tx,
            answers,
        });
    }
    Ok((streams, latencies))
}

/// What the event phase measured.
pub struct Delivery {
    pub elapsed: Duration,
    pub latencies: Vec<f64>,
    pub missing: usize,
    /// Streams that ended early, or watchers canceled, by reason.
    pub failures: HashMap<String, usize>,
}

/// Counts the events arriving on `streams` until `owed` have arrived or
/// `deadline` passes, while `puts` runs; the elapsed time runs from the
/// start to the last event.
pub async fn deliver(
    streams: Vec<Stream>,
    owed: usize,
    puts: impl std::future::Future<Output = Result<()>>,
    wait_after_puts: Duration,
) -> Result<Delivery> {
    let received = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = watch::channel(false);
    let done_tx = Arc::new(done_tx);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut stream in streams {
        let received = received.clone();
        let done_tx = done_tx.clone();
        let mut done_rx = done_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut last = started;
            let mut ended = None;
            loop {
                tokio::select! {
                    _ = done_rx.changed() => break,
                    answer = stream.answers.message() => {
                        let answer = match answer {
                            Ok(Some(a)) => a,
                            Ok(None) => {
                                ended = Some("a watch stream ended".to_string());
                                break;
                            }
                            Err(status) => {
                                ended = Some(format!("a watch stream failed: {}", rsetcd::client::status_text(&status)));
                                break;
                            }
                        };
                        if answer.canceled {
                            ended = Some(format!("a watcher was canceled: {}", answer.cancel_reason));
                        }
                        let now = now_nanos();
                        for event in &answer.events {
                            let sent = event
                                .kv
                                .as_ref()
                                .and_then(|kv| kv.value.get(..8))
                                .map_or(now, |b| u64::from_be_bytes(b.try_into().unwrap_or_default()));
                            latencies.push(Duration::from_nanos(now.saturating_sub(sent)).as_secs_f64());
                        }
                        if !answer.events.is_empty() {
                            last = Instant::now();
                            let total = received.fetch_add(answer.events.len(), Ordering::AcqRel)
                                + answer.events.len();
                            if total >= owed {
                                let _ = done_tx.send(true);
                                break;
                            }
                        }
                    }
                }
            }
            (latencies, last, ended)
        }));
    }
    puts.await?;
    let mut done = done_rx.clone();
    let _ = tokio::time::timeout(wait_after_puts, done.wait_for(|d| *d)).await;
    let _ = done_tx.send(true);
    let mut latencies = Vec::with_capacity(owed);
    let mut last = started;
    let mut failures: HashMap<String, usize> = HashMap::new();
    for task in tasks {
        let (l, t, ended) = task.await.context("a watch receiver failed")?;
        latencies.extend(l);
        last = last.max(t);
        if let Some(why) = ended {
            *failures.entry(why).or_default() += 1;
        }
    }
    let got = received.load(Ordering::Acquire);
    Ok(Delivery {
        elapsed: last - started,
        latencies,
        missing: owed.saturating_sub(got),
        failures,
    })
}

/// The puts of the event phase: put i writes key i (modulo the keys) with
/// the time it is sent as its value.
pub struct WatchedPuts {
    keys: Vec<Vec<u8>>,
}

impl WatchedPuts {
    pub fn new(keys: &WatchedKeys) -> WatchedPuts {
        WatchedPuts {
            keys: keys.keys.clone(),
        }
    }
}

impl Workload for WatchedPuts {
    async fn issue(&self, kv: &mut KvClient<Channel>, index: usize) -> Result<(), Status> {
        kv.put(PutRequest {
            key: self.keys[index % self.keys.len()].clone(),
            value: now_nanos().to_be_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn keys(args: &[&str]) -> Result<WatchedKeys> {
        let cli = Cli::try_parse_from(["benchmark", "watch"].iter().chain(args)).expect("parses");
        let Command::Watch(w) = cli.command else {
            panic!("expected watch");
        };
        WatchedKeys::new(&w)
    }

    #[test]
    fn watchers_spread_over_the_keys_and_events_are_counted_per_watcher() {
        let k = keys(&[
            "--streams=4",
            "--watch-per-stream=5",
            "--watched-key-total=10",
            "--key-space-size=10",
            "--sequential-keys",
        ])
        .unwrap();
        assert_eq!(k.keys.len(), 10);
        assert!(k.watchers.values().all(|&n| n == 2));
        // 25 puts over 10 keys, two watchers each
        assert_eq!(k.events_owed(25), 50);
        assert!(keys(&["--key-space-size=0"]).is_err());
    }
}
