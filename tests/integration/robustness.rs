//! Histories under faults (issue 15): clients spread over every member of
//! a cluster issue Put, Range (linearizable and serializable), Delete and
//! Txn compare-and-swaps on a few contended keys while members are killed
//! (-9, then restarted) and paused (SIGSTOP/SIGCONT); a watch on every
//! member records the committed writes; `support::history` checks that
//! the history is linearizable and the watches are sound.
//!
//! The test suite runs one short run. A campaign:
//! `ROBUSTNESS_RUNS=20 ROBUSTNESS_SECONDS=60 ROBUSTNESS_FAULTS=kill,pause,kill-leader,pause-leader
//! ROBUSTNESS_SEED=7 cargo test --test integration robustness:: -- --nocapture`.
//! `ROBUSTNESS_SERVER=etcd` runs it against etcd 3.4.
//! A failing run keeps its history, watches and member logs in a directory
//! it names, with the seed that replays its choices.

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::*;
use rsetcd::proto::mvccpb::event::EventType;
use support::cluster::{Cluster, Flavor};
use support::history::{self, Call, Event, Kv, Op, Ret, WatchResponse};
use tonic::transport::{Channel, Endpoint};

const PREFIX: &str = "lin/";
const KEYS: usize = 6;
const CLIENTS: usize = 8;
/// A call not answered within this is recorded as unknown.
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// splitmix64: the run's choices from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn kv_of(kv: &rsetcd::proto::mvccpb::KeyValue) -> Kv {
    Kv {
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        mod_rev: kv.mod_revision,
        create_rev: kv.create_revision,
        version: kv.version,
    }
}

fn rev(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().map_or(0, |h| h.revision)
}

/// Sends `call` and waits for its answer; an error or no answer in time
/// is `Unknown` (the call may still take effect).
async fn send(kv: &mut KvClient<Channel>, call: &Call) -> Ret {
    let request = async {
        Ok::<Ret, tonic::Status>(match call {
            Call::Put { key, value } => {
                let r = kv
                    .put(PutRequest {
                        key: key.clone().into_bytes(),
                        value: value.clone().into_bytes(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ret::Put {
                    rev: rev(&r.header),
                }
            }
            Call::Delete { key } => {
                let r = kv
                    .delete_range(DeleteRangeRequest {
                        key: key.clone().into_bytes(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ret::Delete {
                    rev: rev(&r.header),
                    deleted: r.deleted,
                }
            }
            Call::Get { key, serializable } => {
                let r = kv
                    .range(RangeRequest {
                        key: key.clone().into_bytes(),
                        serializable: *serializable,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ret::Get {
                    rev: rev(&r.header),
                    kv: r.kvs.first().map(kv_of),
                }
            }
            Call::CasValue { key, value, .. } | Call::CasModRev { key, value, .. } => {
                let (target, union) = match call {
                    // etcd fails a value compare on a missing key: absence
                    // is a create revision of 0
                    Call::CasValue { expect: None, .. } => (
                        compare::CompareTarget::Create,
                        compare::TargetUnion::CreateRevision(0),
                    ),
                    Call::CasValue {
                        expect: Some(v), ..
                    } => (
                        compare::CompareTarget::Value,
                        compare::TargetUnion::Value(v.clone().into_bytes()),
                    ),
                    Call::CasModRev { mod_rev, .. } => (
                        compare::CompareTarget::Mod,
                        compare::TargetUnion::ModRevision(*mod_rev),
                    ),
                    _ => unreachable!(),
                };
                let r = kv
                    .txn(TxnRequest {
                        compare: vec![Compare {
                            result: compare::CompareResult::Equal as i32,
                            target: target as i32,
                            key: key.clone().into_bytes(),
                            target_union: Some(union),
                            ..Default::default()
                        }],
                        success: vec![RequestOp {
                            request: Some(request_op::Request::RequestPut(PutRequest {
                                key: key.clone().into_bytes(),
                                value: value.clone().into_bytes(),
                                ..Default::default()
                            })),
                        }],
                        failure: vec![RequestOp {
                            request: Some(request_op::Request::RequestRange(RangeRequest {
                                key: key.clone().into_bytes(),
                                ..Default::default()
                            })),
                        }],
                    })
                    .await?
                    .into_inner();
                let seen = r.responses.iter().find_map(|o| match &o.response {
                    Some(response_op::Response::ResponseRange(g)) => Some(g.kvs.first().map(kv_of)),
                    _ => None,
                });
                Ret::Txn {
                    rev: rev(&r.header),
                    succeeded: r.succeeded,
                    kv: seen.flatten(),
                }
            }
        })
    };
    match tokio::time::timeout(CALL_TIMEOUT, request).await {
        Ok(Ok(ret)) => ret,
        _ => Ret::Unknown,
    }
}

fn channel(url: &str) -> Channel {
    Endpoint::from_shared(url.to_string())
        .expect("url")
        .connect_timeout(Duration::from_secs(1))
        .timeout(CALL_TIMEOUT)
        .connect_lazy()
}

/// One client: random calls on the shared keys through one member until
/// `stop`; every call recorded.
async fn client(
    id: usize,
    member: usize,
    url: String,
    seed: u64,
    began: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Op> {
    let mut rng = Rng(seed ^ (id as u64 + 1).wrapping_mul(0x2545_f491_4f6c_dd1d));
    let mut kv = KvClient::new(channel(&url));
    let mut seen: HashMap<String, Option<Kv>> = HashMap::new();
    let mut ops = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let key = format!("{PREFIX}k{}", rng.below(KEYS));
        let value = format!("c{id}-{n}");
        let last = seen.get(&key).cloned().flatten();
        let call = match rng.below(20) {
            0..=5 => Call::Put { key, value },
            6..=7 => Call::Delete { key },
            8..=11 => Call::Get {
                key,
                serializable: false,
            },
            12..=13 => Call::Get {
                key,
                serializable: true,
            },
            14..=16 => Call::CasValue {
                key,
                expect: last.map(|kv| kv.value),
                value,
            },
            _ => Call::CasModRev {
                key,
                mod_rev: last.map_or(0, |kv| kv.mod_rev),
                value,
            },
        };
        let invoke = began.elapsed().as_nanos() as u64;
        let ret = send(&mut kv, &call).await;
        let done = began.elapsed().as_nanos() as u64;
        match &ret {
            Ret::Get { kv, .. } | Ret::Txn { kv, .. } => {
                seen.insert(call.key().to_string(), kv.clone());
            }
            Ret::Unknown => {
                // the connection may be gone with the member: a fresh one
                kv = KvClient::new(channel(&url));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            _ => {}
        }
        ops.push(Op {
            client: id,
            member,
            call,
            invoke,
            done,
            ret,
        });
    }
    ops
}

/// A watch on every key from revision 1 through `member`, resumed from
/// the next revision whenever its stream breaks, until it has delivered
/// revision `until` (set once the clients have stopped).
async fn watcher(
    url: String,
    until: Arc<std::sync::atomic::AtomicI64>,
    responses: Arc<Mutex<Vec<WatchResponse>>>,
) {
    let mut next = 1;
    loop {
        let target = until.load(Ordering::Acquire);
        if target > 0 && next > target {
            return;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(watch_request::RequestUnion::CreateRequest(
                WatchCreateRequest {
                    key: PREFIX.as_bytes().to_vec(),
                    range_end: b"lin0".to_vec(),
                    start_revision: next,
                    ..Default::default()
                },
            )),
        };
        let _ = tx.send(create).await;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut client = WatchClient::new(channel(&url));
        let Ok(answers) = client.watch(stream).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut answers = answers.into_inner();
        loop {
            let target = until.load(Ordering::Acquire);
            if target > 0 && next > target {
                return;
            }
            let message =
                match tokio::time::timeout(Duration::from_millis(500), answers.message()).await {
                    Ok(Ok(Some(m))) => m,
                    Ok(_) => break,     // the stream ended or broke
                    Err(_) => continue, // nothing yet: look at the target again
                };
            if message.canceled {
                break;
            }
            if message.events.is_empty() {
                continue; // created
            }
            let events: Vec<Event> = message
                .events
                .iter()
                .map(|e| {
                    let kv = e.kv.clone().unwrap_or_default();
                    Event {
                        rev: kv.mod_revision,
                        key: String::from_utf8_lossy(&kv.key).into_owned(),
                        kv: (e.r#type == EventType::Put as i32).then(|| kv_of(&kv)),
                    }
                })
                .collect();
            next = events.last().map_or(next, |e| e.rev + 1);
            responses.lock().unwrap().push(WatchResponse {
                header_rev: rev(&message.header),
                events,
            });
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One fault from `faults`, then the member healed.
async fn inject(cluster: &mut Cluster, fault: &str, rng: &mut Rng, log: &mut Vec<String>) {
    let n = cluster.members.len();
    let target = match fault {
        "kill-leader" | "pause-leader" => cluster
            .leader(Duration::from_secs(10))
            .await
            .unwrap_or_else(|_| rng.below(n)),
        _ => rng.below(n),
    };
    let hold = Duration::from_millis(500 + rng.below(2000) as u64);
    log.push(format!("{fault} m{} for {hold:?}", target + 1));
    if fault.starts_with("kill") {
        cluster.members[target].kill9();
        tokio::time::sleep(hold).await;
        cluster.restart(target).expect("restart");
        cluster.members[target]
            .wait_serving(Duration::from_secs(30))
            .await
            .expect("a restarted member serves");
    } else {
        cluster.members[target]
            .signal(Signal::SIGSTOP)
            .expect("SIGSTOP");
        tokio::time::sleep(hold).await;
        cluster.members[target]
            .signal(Signal::SIGCONT)
            .expect("SIGCONT");
    }
}

/// One run: load, faults, then the checks. Returns what went wrong.
async fn run(flavor: Flavor, seed: u64, seconds: u64, faults: &[String]) -> Result<String, String> {
    let mut rng = Rng(seed);
    let mut cluster = Cluster::start(
        flavor,
        3,
        &["--heartbeat-interval=100", "--election-timeout=1000"],
    )
    .await
    .map_err(|e| format!("start: {e:#}"))?;
    let urls: Vec<String> = cluster.members.iter().map(|m| m.client_url()).collect();
    let began = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let until = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let watches: Vec<Arc<Mutex<Vec<WatchResponse>>>> =
        urls.iter().map(|_| Default::default()).collect();
    let watchers: Vec<_> = urls
        .iter()
        .zip(&watches)
        .map(|(u, w)| tokio::spawn(watcher(u.clone(), until.clone(), w.clone())))
        .collect();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|id| {
            let member = id % urls.len();
            tokio::spawn(client(
                id,
                member,
                urls[member].clone(),
                seed,
                began,
                stop.clone(),
            ))
        })
        .collect();

    let mut fault_log = Vec::new();
    let deadline = began + Duration::from_secs(seconds);
    while Instant::now() + Duration::from_secs(3) < deadline && !faults.is_empty() {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1500) as u64)).await;
        let fault = faults[rng.below(faults.len())].clone();
        inject(&mut cluster, &fault, &mut rng, &mut fault_log).await;
    }
    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = Vec::new();
    for c in clients {
        ops.extend(c.await.map_err(|e| format!("client: {e}"))?);
    }

    // Every key read last, linearizably, through the first member.
    let mut kv = KvClient::new(channel(&urls[0]));
    let mut final_rev = 0;
    for k in 0..KEYS {
        let call = Call::Get {
            key: format!("{PREFIX}k{k}"),
            serializable: false,
        };
        let invoke = began.elapsed().as_nanos() as u64;
        let ret = send(&mut kv, &call).await;
        if let Ret::Get { rev, .. } = ret {
            final_rev = final_rev.max(rev);
        }
        ops.push(Op {
            client: CLIENTS,
            member: 0,
            call,
            invoke,
            done: began.elapsed().as_nanos() as u64,
            ret,
        });
    }
    if final_rev == 0 {
        return Err("the final reads got no answer".into());
    }
    until.store(final_rev, Ordering::Release);
    for w in watchers {
        if tokio::time::timeout(Duration::from_secs(30), w)
            .await
            .is_err()
        {
            return Err(format!("a watch did not reach revision {final_rev}"));
        }
    }

    let watched: Vec<Vec<WatchResponse>> =
        watches.iter().map(|w| w.lock().unwrap().clone()).collect();
    let mut problems = Vec::new();
    for (i, w) in watched.iter().enumerate() {
        problems.extend(history::check_watch(&format!("watch via m{}", i + 1), w));
    }
    let histories: Vec<Vec<Event>> = watched
        .iter()
        .map(|w| w.iter().flat_map(|r| r.events.clone()).collect())
        .collect();
    for (i, h) in histories.iter().enumerate().skip(1) {
        if h != &histories[0] {
            let at = h
                .iter()
                .zip(&histories[0])
                .position(|(a, b)| a != b)
                .unwrap_or(h.len().min(histories[0].len()));
            problems.push(format!(
                "the watches via m1 and m{} differ at event {at} ({} and {} events)",
                i + 1,
                histories[0].len(),
                h.len()
            ));
        }
    }
    let report = history::check(&ops, &histories[0]);
    problems.extend(report.violations.iter().cloned());
    let summary = format!(
        "seed {seed}: {} calls ({} unknown: {} took effect), {} committed events, faults: {}",
        report.ops,
        report.unknown_applied + report.unknown_not_applied,
        report.unknown_applied,
        histories[0].len(),
        fault_log.join(", ")
    );
    if problems.is_empty() {
        return Ok(summary);
    }
    // Keep what replays and explains it.
    let keep = std::env::temp_dir().join(format!("rsetcd-robustness-{seed}"));
    let _ = std::fs::create_dir_all(&keep);
    let _ = std::fs::write(keep.join("history.txt"), format!("{ops:#?}"));
    let _ = std::fs::write(keep.join("watches.txt"), format!("{watched:#?}"));
    for m in &cluster.members {
        let _ = std::fs::write(keep.join(format!("{}.log", m.name)), m.all_logs());
    }
    Err(format!(
        "{summary}\n{} problems (history, watches and logs kept in {}):\n{}",
        problems.len(),
        keep.display(),
        problems.join("\n")
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kv_history_stays_linearizable_under_kills_and_pauses() {
    let runs: u64 = env_or("ROBUSTNESS_RUNS", 1);
    let seconds: u64 = env_or("ROBUSTNESS_SECONDS", 12);
    let faults: Vec<String> = env_or("ROBUSTNESS_FAULTS", "kill,pause".to_string())
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    for f in &faults {
        assert!(
            ["kill", "pause", "kill-leader", "pause-leader"].contains(&f.as_str()),
            "unknown fault {f:?} (kill, pause, kill-leader, pause-leader)"
        );
    }
    let first_seed: u64 = env_or(
        "ROBUSTNESS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    );
    // ROBUSTNESS_SERVER=etcd runs the same against etcd 3.4: the checker
    // must find nothing there either.
    let flavor = match std::env::var("ROBUSTNESS_SERVER").as_deref() {
        Ok("etcd") => Flavor::Reference,
        _ => Flavor::Ours,
    };
    for i in 0..runs {
        let seed = first_seed.wrapping_add(i);
        match run(flavor, seed, seconds, &faults).await {
            Ok(summary) => eprintln!("robustness: {summary}"),
            Err(problems) => panic!("robustness: {problems}"),
        }
    }
}
