//! Histories under faults (issue 15): clients spread over every member of
//! a cluster issue Put, Range (linearizable and serializable), Delete and
//! Txn compare-and-swaps on a few contended keys; leases are granted, kept
//! alive and revoked; two lockers take a lock and increment a counter
//! under it; a watch on every member records the committed writes. The
//! faults (`FAULTS`): members killed, paused, cut off one way or both,
//! their links delayed or lossy (`support::proxy`), all restarted at once,
//! leadership moved, compactions and defrags, members removed and new ones
//! added in their place, crashes at durable steps (`failpoint`, on the
//! `--features failpoints` build). `support::history` checks that the
//! history is linearizable, the watches sound, the leases and locks kept.
//!
//! The suite runs two short runs. A campaign:
//! `ROBUSTNESS_RUNS=20 ROBUSTNESS_SECONDS=30 ROBUSTNESS_MEMBERS=5
//! ROBUSTNESS_FAULTS=kill,partition-two-way,failpoint ROBUSTNESS_PER_FAULT=1
//! ROBUSTNESS_SEED=7 cargo test --test integration robustness::kv_history_stays -- --nocapture`
//! (PER_FAULT: that many runs of each fault alone; a table per fault at
//! the end; `ROBUSTNESS_FAILPOINTS=a,b` narrows the crash points).
//! `ROBUSTNESS_SERVER=etcd` runs it against etcd 3.4.
//! A failing run keeps its history, watches and member logs in a directory
//! it names, with the seed that replays its choices.

use crate::support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::*;
use rsetcd::proto::mvccpb::event::EventType;
use rsetcd::proto::v3lockpb::lock_client::LockClient;
use rsetcd::proto::v3lockpb::{LockRequest, UnlockRequest};
use support::cluster::{Cluster, Flavor, Link, PeerProxy};
use support::history::{self, Acquired, Call, Event, Kv, Op, Ret, WatchResponse};
use support::powerfail::PowerFailFs;
use support::proxy::{heal_all, isolate};
use tonic::transport::{Channel, Endpoint};

const PREFIX: &str = "lin/";
/// Keys attached to leases (before PREFIX: one watch range covers both).
const LEASE_PREFIX: &str = "lease/";
/// The lock the lockers take (its keys are `lock/l/<lease>`) and the
/// counter its holders increment; after PREFIX, inside the watch range.
const LOCK_NAME: &str = "lock/l";
const LOCK_COUNTER: &str = "lock/n";
/// The end of the watch range: the leased, KV and lock keys.
const WATCH_END: &[u8] = b"lock0";
const LOCKERS: usize = 2;
/// The clusters' election timeout.
const ELECTION_TIMEOUT: Duration = Duration::from_millis(1000);
/// How long past its expiry a leased key may still be seen: the lessor's
/// expiry checks (500 ms), the revoke's trip through raft, the watch,
/// on a loaded machine.
const LEASE_SLACK: Duration = Duration::from_millis(3000);
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
/// `stop`; every call recorded. `generations[member]` counts the times
/// the member was replaced by a new one on the same ports: each
/// generation's serializable reads are checked apart.
async fn client(
    id: usize,
    member: usize,
    url: String,
    seed: u64,
    began: Instant,
    stop: Arc<AtomicBool>,
    generations: Arc<Vec<AtomicUsize>>,
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
        let generation = generations[member].load(Ordering::Acquire);
        let invoke = began.elapsed().as_nanos() as u64;
        let ret = send(&mut kv, &call).await;
        let done = began.elapsed().as_nanos() as u64;
        // replaced while the call was out: which one answered is unknown,
        // so the read is checked alone
        let answered_by = if generations[member].load(Ordering::Acquire) == generation {
            member + 100 * generation
        } else {
            usize::MAX - (id << 32) - n
        };
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
            member: answered_by,
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
/// `progress` is the next revision it waits for: compactions stay below.
async fn watcher(
    url: String,
    began: Instant,
    until: Arc<AtomicI64>,
    progress: Arc<AtomicI64>,
    responses: Arc<Mutex<Vec<WatchResponse>>>,
) {
    let mut next = 1;
    loop {
        let target = until.load(Ordering::Acquire);
        if target > 0 && next > target {
            return;
        }
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let _ = tx.send(watch_everything(next, true)).await;
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
            if message.created {
                continue;
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
                at: began.elapsed().as_nanos() as u64,
            });
            progress.store(next, Ordering::Release);
        }
        drop(tx);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A watch on every key a run writes (leased, KV and lock keys) from
/// revision `from`.
fn watch_everything(from: i64, progress_notify: bool) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: LEASE_PREFIX.as_bytes().to_vec(),
                range_end: WATCH_END.to_vec(),
                start_revision: from,
                progress_notify,
                ..Default::default()
            },
        )),
    }
}

/// A new watch through `url` from revision `from` (or, below a compaction,
/// from the compaction revision) until revision `until`: where it started
/// and its events up to `until`.
async fn rewatch(url: &str, mut from: i64, until: i64) -> Result<(i64, Vec<Event>), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    'attempt: while Instant::now() < deadline {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let _ = tx.send(watch_everything(from, false)).await;
        let mut client = WatchClient::new(channel(url));
        let Ok(answers) = client
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mut answers = answers.into_inner();
        let mut events = Vec::new();
        while Instant::now() < deadline {
            let message =
                match tokio::time::timeout(Duration::from_secs(1), answers.message()).await {
                    Ok(Ok(Some(m))) => m,
                    Ok(_) => continue 'attempt,
                    Err(_) => continue,
                };
            if message.canceled {
                if message.compact_revision > from {
                    from = message.compact_revision;
                    continue 'attempt;
                }
                return Err(format!("canceled: {}", message.cancel_reason));
            }
            for e in &message.events {
                let kv = e.kv.clone().unwrap_or_default();
                if kv.mod_revision > until {
                    return Ok((from, events));
                }
                events.push(Event {
                    rev: kv.mod_revision,
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    kv: (e.r#type == EventType::Put as i32).then(|| kv_of(&kv)),
                });
            }
            if events.last().is_some_and(|e| e.rev >= until) {
                return Ok((from, events));
            }
        }
    }
    Err(format!("did not reach revision {until} in 30 s"))
}

/// The faults a run can inject. A `-leader` variant aims at the leader,
/// the plain one at a random member.
const FAULTS: [&str; 19] = [
    // kill -9, then restarted on the same data dir
    "kill",
    "kill-leader",
    // SIGSTOP, then SIGCONT
    "pause",
    "pause-leader",
    // nothing reaches the member (it still sends)
    "partition",
    "partition-leader",
    // nothing reaches it and nothing it sends gets through
    "partition-two-way",
    "partition-two-way-leader",
    // everything it sends and receives held back 50-300 ms
    "delay",
    // its links lose segments: TCP resends them 200 ms later, now and
    // then a connection is reset
    "loss",
    // every member killed at once, then all restarted
    "restart-all",
    // leadership moved three times in a row (MoveLeader)
    "move-leader",
    // a compaction up to what every watch has delivered
    "compact",
    // a defragmentation of a random member
    "defrag",
    // removed from the cluster (MemberRemove), then a new member with an
    // empty data dir added in its place (MemberAdd, same ports)
    "member-replace",
    "member-replace-leader",
    // a crash at a durable step (FAILPOINTS), then a restart: needs the
    // failpoints build (`failpoints_etcd`)
    "failpoint",
    // killed and every write it had not fsynced lost (its data dir on
    // `support::powerfail`; root and FUSE), then restarted
    "power-loss",
    // the same for every member at once
    "power-loss-all",
];

/// The crash points of src/failpoint.rs.
const FAILPOINTS: [&str; 16] = [
    "raftBeforeSave",
    "walBeforeFsync",
    "raftAfterSave",
    "applyAfterPublish",
    "backendBeforeCommit",
    "backendAfterCommit",
    "compactBeforeCommitBatch",
    "compactAfterCommitBatch",
    "defragBeforeCopy",
    "defragBeforeRename",
    "raftMidSnapshotSend",
    "raftMidSnapshotReceive",
    "raftAfterReceiveSnap",
    "raftAfterSaveSnap",
    "raftBeforeApplySnap",
    "raftAfterApplySnap",
];

/// Our etcd built with `--features failpoints`: $RSETCD_FAILPOINTS_ETCD,
/// else target/failpoints/etcd (where .ci/run puts it).
fn failpoints_etcd() -> String {
    let path = std::env::var("RSETCD_FAILPOINTS_ETCD")
        .unwrap_or_else(|_| format!("{}/target/failpoints/etcd", env!("CARGO_MANIFEST_DIR")));
    assert!(
        std::path::Path::new(&path).is_file(),
        "{path}: no failpoints build; make one with `cargo build --features failpoints --bin etcd && mkdir -p target/failpoints && cp target/debug/etcd target/failpoints/`"
    );
    let modified = |p: &str| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&path) < modified(support::common::OUR_ETCD) {
        eprintln!(
            "warning: {path} is older than {}: the failpoints build may not be of this code",
            support::common::OUR_ETCD
        );
    }
    path
}

/// A leased key as the leaser left it.
#[derive(Clone, Debug)]
struct Leased {
    key: String,
    /// The TTL (s) the last grant or keep-alive answered.
    ttl: i64,
    /// When the last renewal that surely happened (the grant or an
    /// answered keep-alive) was sent, and when it was answered.
    renewed_sent: u64,
    renewed_done: u64,
    /// A keep-alive went unanswered: it may have renewed later, so only
    /// the "not too early" bound holds.
    uncertain: bool,
    /// Revoked by the leaser: the revision the revoke answered with.
    revoked_at: Option<i64>,
    /// A revoke went unanswered, sent then: it may have deleted the key
    /// from then on.
    revoke_sent: Option<u64>,
}

/// Grants short leases, attaches a key to each, keeps some alive a little
/// and revokes some, through the members in turn, until `stop`.
async fn leaser(
    urls: Vec<String>,
    seed: u64,
    began: Instant,
    stop: Arc<AtomicBool>,
) -> Vec<Leased> {
    let mut rng = Rng(seed ^ 0x1ea5e);
    let now = || began.elapsed().as_nanos() as u64;
    let mut out = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let ch = channel(&urls[n % urls.len()]);
        let mut lease = LeaseClient::new(ch.clone());
        let sent = now();
        let grant = tokio::time::timeout(
            CALL_TIMEOUT,
            lease.lease_grant(LeaseGrantRequest { ttl: 1, id: 0 }),
        )
        .await;
        let Ok(Ok(grant)) = grant else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue; // a lease that may exist has no key: nothing to check
        };
        let grant = grant.into_inner();
        let key = format!("{LEASE_PREFIX}{n}");
        let put = PutRequest {
            key: key.clone().into_bytes(),
            value: b"leased".to_vec(),
            lease: grant.id,
            ..Default::default()
        };
        let attached = matches!(
            tokio::time::timeout(CALL_TIMEOUT, KvClient::new(ch.clone()).put(put)).await,
            Ok(Ok(_))
        );
        let mut leased = Leased {
            key,
            ttl: grant.ttl,
            renewed_sent: sent,
            renewed_done: now(),
            uncertain: !attached,
            revoked_at: None,
            revoke_sent: None,
        };
        for _ in 0..rng.below(3) {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            let sent = now();
            let _ = tx.send(LeaseKeepAliveRequest { id: grant.id }).await;
            let answer = async {
                let mut answers = lease
                    .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
                    .await?
                    .into_inner();
                answers.message().await
            };
            match tokio::time::timeout(CALL_TIMEOUT, answer).await {
                Ok(Ok(Some(r))) if r.ttl > 0 => {
                    leased.ttl = r.ttl;
                    leased.renewed_sent = sent;
                    leased.renewed_done = now();
                }
                _ => leased.uncertain = true,
            }
        }
        if rng.below(4) == 0 {
            let sent = now();
            let revoke = tokio::time::timeout(
                CALL_TIMEOUT,
                lease.lease_revoke(LeaseRevokeRequest { id: grant.id }),
            )
            .await;
            match revoke {
                Ok(Ok(r)) => leased.revoked_at = Some(rev(&r.into_inner().header)),
                _ => leased.revoke_sent = Some(sent),
            }
        }
        if attached {
            out.push(leased);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    out
}

/// Takes the lock `LOCK_NAME` through one member with a 3 s lease, reads
/// the counter, writes one more while its lock key exists, and lets go
/// (Unlock, then the lease revoked), until `stop`. Returns the answered
/// Locks.
async fn locker(id: usize, url: String, stop: Arc<AtomicBool>) -> Vec<Acquired> {
    let mut acquired = Vec::new();
    let mut ch = channel(&url);
    while !stop.load(Ordering::Relaxed) {
        let grant = tokio::time::timeout(
            CALL_TIMEOUT,
            LeaseClient::new(ch.clone()).lease_grant(LeaseGrantRequest { ttl: 3, id: 0 }),
        )
        .await;
        let Ok(Ok(grant)) = grant else {
            ch = channel(&url);
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let lease = grant.into_inner().id;
        let mut locks = LockClient::new(ch.clone());
        let lock = locks.lock(LockRequest {
            name: LOCK_NAME.as_bytes().to_vec(),
            lease,
        });
        // another holder may keep it until its lease runs out
        if let Ok(Ok(held)) = tokio::time::timeout(Duration::from_secs(10), lock).await {
            let held = held.into_inner();
            let key = held.key.clone();
            acquired.push(Acquired {
                key: String::from_utf8_lossy(&key).into_owned(),
                rev: rev(&held.header),
            });
            let mut kv = KvClient::new(ch.clone());
            let read = kv.range(RangeRequest {
                key: LOCK_COUNTER.as_bytes().to_vec(),
                ..Default::default()
            });
            if let Ok(Ok(r)) = tokio::time::timeout(CALL_TIMEOUT, read).await {
                let count: i64 = r.into_inner().kvs.first().map_or(0, |kv| {
                    String::from_utf8_lossy(&kv.value).parse().unwrap_or(-1)
                });
                let increment = kv.txn(TxnRequest {
                    // only while this holder's key exists
                    compare: vec![Compare {
                        result: compare::CompareResult::Greater as i32,
                        target: compare::CompareTarget::Version as i32,
                        key: key.clone(),
                        target_union: Some(compare::TargetUnion::Version(0)),
                        ..Default::default()
                    }],
                    success: vec![RequestOp {
                        request: Some(request_op::Request::RequestPut(PutRequest {
                            key: LOCK_COUNTER.as_bytes().to_vec(),
                            value: (count + 1).to_string().into_bytes(),
                            ..Default::default()
                        })),
                    }],
                    failure: vec![],
                });
                let _ = tokio::time::timeout(CALL_TIMEOUT, increment).await;
            }
            let unlock = locks.unlock(UnlockRequest { key });
            let _ = tokio::time::timeout(CALL_TIMEOUT, unlock).await;
        } else {
            ch = channel(&url);
        }
        let mut leases = LeaseClient::new(ch.clone());
        let revoke = leases.lease_revoke(LeaseRevokeRequest { id: lease });
        let _ = tokio::time::timeout(CALL_TIMEOUT, revoke).await;
        tokio::time::sleep(Duration::from_millis(20 * (id as u64 + 1))).await;
    }
    acquired
}

/// When a lease renewed at `renewed` (ns) with `ttl` expires at the
/// latest: a new leader's lessor extends every live lease to an election
/// timeout plus its TTL from its election (etcd's Promote), and a fault
/// (`faults`: start and end, ns) may bring a new leader until two election
/// timeouts after it ends.
fn latest_expiry(renewed: u64, ttl: Duration, faults: &[(u64, u64)]) -> u64 {
    let ttl = ttl.as_nanos() as u64;
    let et = ELECTION_TIMEOUT.as_nanos() as u64;
    let mut expiry = renewed + ttl;
    for &(start, end) in faults {
        if start <= expiry {
            expiry = expiry.max(end + 2 * et + et + ttl);
        }
    }
    expiry
}

/// Leased keys against the watches: each is deleted, not before its TTL
/// ran out from its last renewal, and (when every renewal's outcome is
/// known) not after `latest_expiry` plus `LEASE_SLACK`; a revoke deletes
/// the key at the revision the revoke answered with.
fn check_leases(
    leased: &[Leased],
    watched: &[Vec<WatchResponse>],
    faults: &[(u64, u64)],
) -> Vec<String> {
    // each leased key's delete: its revision and earliest arrival
    let mut deleted: HashMap<&str, (i64, u64)> = HashMap::new();
    for w in watched {
        for r in w {
            for e in r.events.iter().filter(|e| e.kv.is_none()) {
                let entry = deleted.entry(&e.key).or_insert((e.rev, r.at));
                entry.1 = entry.1.min(r.at);
            }
        }
    }
    let mut problems = Vec::new();
    for l in leased {
        let Some(&(rev, at)) = deleted.get(l.key.as_str()) else {
            problems.push(format!("{l:?}: its key was never deleted"));
            continue;
        };
        if let Some(revoked) = l.revoked_at {
            if rev != revoked {
                problems.push(format!(
                    "{l:?}: revoked at revision {revoked}, its key deleted at {rev}"
                ));
            }
            continue;
        }
        let ttl = Duration::from_secs(l.ttl.max(0) as u64).as_nanos() as u64;
        // 50 ms: the arrival is measured on another task's clock read
        let earliest = (l.renewed_sent + ttl).min(l.revoke_sent.unwrap_or(u64::MAX));
        if at + 50_000_000 < earliest {
            problems.push(format!(
                "{l:?}: deleted {:?} after its last renewal was sent, before its TTL",
                Duration::from_nanos(at.saturating_sub(l.renewed_sent))
            ));
        }
        let expiry = latest_expiry(l.renewed_done, Duration::from_nanos(ttl), faults);
        if !l.uncertain && at > expiry + LEASE_SLACK.as_nanos() as u64 {
            problems.push(format!(
                "{l:?}: its key outlived the lease's latest expiry by {:?}",
                Duration::from_nanos(at - expiry)
            ));
        }
    }
    problems
}

/// What faults act on besides the cluster.
struct Rig<'a> {
    /// Each member's peer port proxy (the network).
    proxies: Vec<PeerProxy>,
    /// How many times each member was replaced by a new one.
    generations: Arc<Vec<AtomicUsize>>,
    /// Each watch's next revision: compactions stay below them all.
    progress: Vec<Arc<AtomicI64>>,
    /// Each member's failpoints endpoint port, on the failpoints build.
    failpoints: Option<Vec<u16>>,
    /// Each member's disk, when a power-loss fault is in the run (they
    /// outlive the cluster: unmounting waits for the members to go).
    disks: &'a [Mutex<PowerFailFs>],
    /// What a fault saw go wrong.
    problems: Mutex<Vec<String>>,
}

/// One fault from `FAULTS`, then the cluster healed. Returns when it
/// began and ended (ns since `began`), and whether it happened (a crash
/// point may not be reached).
async fn inject(
    cluster: &mut Cluster,
    rig: &Rig<'_>,
    fault: &str,
    rng: &mut Rng,
    log: &mut Vec<String>,
    began: Instant,
) -> ((u64, u64), bool) {
    let n = cluster.members.len();
    let mut happened = true;
    let target = if fault.ends_with("-leader") {
        cluster
            .leader(Duration::from_secs(10))
            .await
            .unwrap_or_else(|_| rng.below(n))
    } else {
        rng.below(n)
    };
    let hold = Duration::from_millis(500 + rng.below(2000) as u64);
    let start = began.elapsed().as_nanos() as u64;
    let pids: Vec<u32> = cluster.members.iter().map(|m| m.pid()).collect();
    let what = match fault {
        "restart-all" => {
            for m in &mut cluster.members {
                m.kill9();
            }
            tokio::time::sleep(hold).await;
            for i in 0..n {
                cluster.restart(i).expect("restart");
            }
            for m in &mut cluster.members {
                m.wait_serving(Duration::from_secs(30))
                    .await
                    .expect("a restarted member serves");
            }
            format!("for {hold:?}")
        }
        "move-leader" => {
            for _ in 0..3 {
                let Ok(leader) = cluster.leader(Duration::from_secs(10)).await else {
                    continue;
                };
                let to = (leader + 1 + rng.below(n - 1)) % n;
                let id = match cluster.members[to].status().await {
                    Ok(s) => s.header.map_or(0, |h| h.member_id),
                    Err(_) => continue,
                };
                if let Ok(mut m) = cluster.members[leader].maintenance().await {
                    let moved = m.move_leader(MoveLeaderRequest { target_id: id });
                    let _ = tokio::time::timeout(CALL_TIMEOUT, moved).await;
                }
                tokio::time::sleep(hold / 3).await;
            }
            format!("3 times, {:?} apart", hold / 3)
        }
        "compact" => compact(cluster, rig, rng, target).await,
        "defrag" => {
            defragment(cluster, target).await;
            format!("m{}", target + 1)
        }
        "failpoint" => {
            let (what, crashed) = crash_at_failpoint(cluster, rig, rng, target).await;
            happened = crashed;
            what
        }
        "power-loss" | "power-loss-all" => {
            let hit: Vec<usize> = match fault {
                "power-loss" => vec![target],
                _ => (0..n).collect(),
            };
            let mut lost = 0;
            for &i in &hit {
                cluster.members[i].kill9();
                let cut = rig.disks[i].lock().unwrap().power_cut();
                lost += cut.expect("power cut").iter().map(|f| f.1).sum::<u64>();
            }
            tokio::time::sleep(hold).await;
            for &i in &hit {
                cluster.restart(i).expect("restart");
            }
            for &i in &hit {
                cluster.members[i]
                    .wait_serving(Duration::from_secs(30))
                    .await
                    .expect("a member restarted after a power loss serves");
            }
            let names: Vec<String> = hit.iter().map(|i| format!("m{}", i + 1)).collect();
            format!(
                "{} ({lost} unsynced bytes lost) for {hold:?}",
                names.join(", ")
            )
        }
        f if f.starts_with("member-replace") => replace_member(cluster, rig, target).await,
        f if f.starts_with("partition-two-way") => {
            isolate(&rig.proxies, &pids, target, Link::Cut);
            tokio::time::sleep(hold).await;
            heal_all(&rig.proxies);
            format!("m{} for {hold:?}", target + 1)
        }
        "delay" => {
            let by = Duration::from_millis(50 + rng.below(250) as u64);
            isolate(&rig.proxies, &pids, target, Link::Delay(by));
            tokio::time::sleep(hold * 2).await;
            heal_all(&rig.proxies);
            format!("m{} by {by:?} for {:?}", target + 1, hold * 2)
        }
        "loss" => {
            isolate(&rig.proxies, &pids, target, Link::Lossy);
            tokio::time::sleep(hold * 2).await;
            heal_all(&rig.proxies);
            format!("m{} for {:?}", target + 1, hold * 2)
        }
        f if f.starts_with("partition") => {
            rig.proxies[target].cut();
            tokio::time::sleep(hold).await;
            rig.proxies[target].heal();
            format!("m{} for {hold:?}", target + 1)
        }
        f if f.starts_with("kill") => {
            cluster.members[target].kill9();
            tokio::time::sleep(hold).await;
            cluster.restart(target).expect("restart");
            cluster.members[target]
                .wait_serving(Duration::from_secs(30))
                .await
                .expect("a restarted member serves");
            format!("m{} for {hold:?}", target + 1)
        }
        _ => {
            cluster.members[target]
                .signal(Signal::SIGSTOP)
                .expect("SIGSTOP");
            tokio::time::sleep(hold).await;
            cluster.members[target]
                .signal(Signal::SIGCONT)
                .expect("SIGCONT");
            format!("m{} for {hold:?}", target + 1)
        }
    };
    log.push(format!("{fault} {what}"));
    ((start, began.elapsed().as_nanos() as u64), happened)
}

/// Compacts through member `target` up to a revision every watch has
/// delivered (a watch resumes past it), physically or not.
async fn compact(cluster: &mut Cluster, rig: &Rig<'_>, rng: &mut Rng, target: usize) -> String {
    let below = rig
        .progress
        .iter()
        .map(|p| p.load(Ordering::Acquire))
        .min()
        .unwrap_or(0);
    let revision = below - 1 - rng.below(20) as i64;
    let physical = rng.below(2) == 0;
    if revision > 1 {
        if let Ok(mut kv) = cluster.members[target].kv().await {
            let compact = kv.compact(CompactionRequest { revision, physical });
            let _ = tokio::time::timeout(Duration::from_secs(10), compact).await;
        }
    }
    format!("to {revision} (physical: {physical}) via m{}", target + 1)
}

async fn defragment(cluster: &mut Cluster, target: usize) {
    if let Ok(mut m) = cluster.members[target].maintenance().await {
        let defrag = m.defragment(DefragmentRequest {});
        let _ = tokio::time::timeout(Duration::from_secs(30), defrag).await;
    }
}

/// Arms a random crash point (src/failpoint.rs) on a member through its
/// failpoints endpoint, makes the member reach it (a defrag, a compaction,
/// a follower held back until the leader's log no longer has what it
/// needs, so a snapshot is sent), waits for the crash (the panic aborts
/// the process; on a power-fail disk the power is cut too, so what was
/// written and not synced is lost) and restarts the member. Says what
/// happened, and whether the member crashed there.
async fn crash_at_failpoint(
    cluster: &mut Cluster,
    rig: &Rig<'_>,
    rng: &mut Rng,
    target: usize,
) -> (String, bool) {
    let ports = rig
        .failpoints
        .as_ref()
        .expect("failpoint faults run on the failpoints build");
    let n = cluster.members.len();
    // ROBUSTNESS_FAILPOINTS narrows the choice (a comma-separated list)
    let chosen: Vec<&str> = match std::env::var("ROBUSTNESS_FAILPOINTS") {
        Ok(list) => FAILPOINTS
            .iter()
            .copied()
            .filter(|p| list.split(',').any(|l| l == *p))
            .collect(),
        Err(_) => FAILPOINTS.to_vec(),
    };
    assert!(
        !chosen.is_empty(),
        "ROBUSTNESS_FAILPOINTS names no point of {FAILPOINTS:?}"
    );
    let point = chosen[rng.below(chosen.len())];
    let snapshot = point.contains("Snap");
    // the leader sends snapshots, a follower receives them
    let sender = point == "raftMidSnapshotSend";
    let leader = match snapshot {
        true => cluster.leader(Duration::from_secs(10)).await.ok(),
        false => None,
    };
    let target = match (sender, leader) {
        (true, Some(leader)) => leader,
        (false, Some(leader)) if leader == target => (target + 1) % n,
        _ => target,
    };
    // the member that falls behind and gets a snapshot
    let behind = match sender {
        true => (target + 1 + rng.below(n - 1)) % n,
        false => target,
    };
    if snapshot {
        rig.proxies[behind].cut();
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let endpoint = format!("127.0.0.1:{}", ports[target]);
    let armed = support::http::request("PUT", &endpoint, &format!("/{point}"), "panic").await;
    if snapshot {
        rig.proxies[behind].heal();
    }
    let name = cluster.members[target].name.clone();
    if !matches!(armed, Ok((204, _))) {
        return (format!("{point} on {name}: not armed ({armed:?})"), false);
    }
    if point.starts_with("defrag") {
        defragment(cluster, target).await;
    } else if point.starts_with("compact") {
        compact(cluster, rig, rng, target).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.members[target].is_running() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if cluster.members[target].is_running() {
        let _ = support::http::request("DELETE", &endpoint, &format!("/{point}"), "").await;
        // it may have fired just before the DELETE
        tokio::time::sleep(Duration::from_millis(200)).await;
        if cluster.members[target].is_running() {
            return (format!("{point} on {name}: not reached in 10 s"), false);
        }
    }
    let mut lost = String::new();
    if let Some(disk) = rig.disks.get(target) {
        let cut = disk.lock().unwrap().power_cut().expect("power cut");
        let bytes: u64 = cut.iter().map(|f| f.1).sum();
        lost = format!(" and the power cut ({bytes} unsynced bytes lost)");
    }
    let tail = cluster.members[target].log_tail();
    if !tail.contains(point) {
        rig.problems.lock().unwrap().push(format!(
            "{name} exited while {point} was armed, but not there:\n{tail}"
        ));
    }
    cluster.restart(target).expect("restart");
    cluster.members[target]
        .wait_serving(Duration::from_secs(30))
        .await
        .expect("a member restarted after a crash serves");
    (
        format!("{point} on {name}: crashed there{lost}, restarted"),
        true,
    )
}

/// Removes member `target` (MemberRemove through another member, retried
/// until the member list no longer has it), stops it, adds a new member
/// on the same peer URL and starts it with an empty data dir. Says what
/// happened.
async fn replace_member(cluster: &mut Cluster, rig: &Rig<'_>, target: usize) -> String {
    let n = cluster.members.len();
    let name = cluster.members[target].name.clone();
    let peer_url = cluster.members[target].peer_url();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempt = 0;
    // find its id, then remove it
    let removed = loop {
        attempt += 1;
        let via = (target + attempt) % n;
        if via == target {
            continue;
        }
        if Instant::now() > deadline {
            break false;
        }
        let Ok(mut c) = cluster.members[via].cluster().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let list = c.member_list(MemberListRequest::default());
        let Ok(Ok(list)) = tokio::time::timeout(CALL_TIMEOUT, list).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let Some(id) = list
            .into_inner()
            .members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.id)
        else {
            break true;
        };
        let remove = c.member_remove(MemberRemoveRequest { id });
        let _ = tokio::time::timeout(CALL_TIMEOUT, remove).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    if !removed {
        return format!("{name}: not removed in 30 s, left as it was");
    }
    cluster.members[target].kill9();
    let generation = rig.generations[target].fetch_add(1, Ordering::AcqRel) + 1;
    let new_name = format!("m{}g{generation}", target + 1);
    // add the new member on the same peer URL
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        attempt += 1;
        let via = (target + attempt) % n;
        if via == target {
            continue;
        }
        assert!(
            Instant::now() < deadline,
            "{new_name} could not be added in 30 s"
        );
        let Ok(mut c) = cluster.members[via].cluster().await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let add = c.member_add(MemberAddRequest {
            peer_ur_ls: vec![peer_url.clone()],
            is_learner: false,
        });
        match tokio::time::timeout(CALL_TIMEOUT, add).await {
            Ok(Ok(_)) => break,
            // an earlier add whose answer was lost took effect
            Ok(Err(e)) if e.message().contains("Peer URLs already exists") => break,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    cluster
        .replace(target, &new_name)
        .expect("start the new member");
    cluster.members[target]
        .wait_serving(Duration::from_secs(60))
        .await
        .expect("the new member serves");
    format!("{name} removed, {new_name} added in its place")
}

/// One run: load, faults, then the checks. Returns what went wrong.
async fn run(
    flavor: Flavor,
    members: usize,
    seed: u64,
    seconds: u64,
    faults: &[String],
    injected: &mut Vec<String>,
) -> Result<(String, usize), String> {
    let mut rng = Rng(seed);
    // Progress notifications every 500 ms: the watches check that none is
    // ahead of the events delivered.
    let mut args = vec![
        "--heartbeat-interval=100",
        "--election-timeout=1000",
        "--experimental-watch-progress-notify-interval=500ms",
    ];
    // Crash points need our failpoints build, each member with its
    // endpoint; snapshots often enough that a member held back gets one.
    let failpoints = match faults.iter().any(|f| f == "failpoint") {
        true => {
            assert!(flavor == Flavor::Ours, "failpoints are ours only");
            args.extend([
                "--snapshot-count=200",
                "--experimental-snapshot-catchup-entries=100",
            ]);
            let ports = (0..members)
                .map(|_| support::ports::free_port())
                .collect::<anyhow::Result<Vec<u16>>>()
                .map_err(|e| format!("ports: {e:#}"))?;
            Some((failpoints_etcd(), ports))
        }
        false => None,
    };
    // Power cuts need every member's data dir on a disk that loses
    // unsynced writes.
    let disk_dir = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let mut disks = Vec::new();
    if faults.iter().any(|f| f.starts_with("power-loss")) {
        assert!(
            PowerFailFs::available(),
            "power-loss faults need root and /dev/fuse"
        );
        for i in 0..members {
            let disk = disk_dir.path().join(format!("disk{i}"));
            let mount = disk_dir.path().join(format!("mnt{i}"));
            let fs = PowerFailFs::mount(&disk, &mount).map_err(|e| format!("mount: {e:#}"))?;
            disks.push(Mutex::new(fs));
        }
    }
    // Every member's peer port behind a proxy the run can cut.
    let (mut cluster, proxies) =
        Cluster::start_behind_proxies_with(flavor, members, &args, |i, m| {
            if !disks.is_empty() {
                m.data_dir = disk_dir.path().join(format!("mnt{i}")).join(&m.name);
                m.log_dir = Some(disk_dir.path().to_path_buf());
            }
            if let Some((binary, ports)) = &failpoints {
                m.binary = Some(binary.clone());
                m.extra_env = vec![(
                    "FAILPOINTS_HTTP".to_string(),
                    format!("127.0.0.1:{}", ports[i]),
                )];
            }
        })
        .await
        .map_err(|e| format!("start: {e:#}"))?;
    let urls: Vec<String> = cluster.members.iter().map(|m| m.client_url()).collect();
    let began = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let until = Arc::new(AtomicI64::new(0));
    let watches: Vec<Arc<Mutex<Vec<WatchResponse>>>> =
        urls.iter().map(|_| Default::default()).collect();
    let rig = Rig {
        proxies,
        generations: Arc::new(urls.iter().map(|_| AtomicUsize::new(0)).collect()),
        progress: urls.iter().map(|_| Arc::new(AtomicI64::new(1))).collect(),
        failpoints: failpoints.map(|(_, ports)| ports),
        disks: &disks,
        problems: Mutex::default(),
    };
    let watchers: Vec<_> = urls
        .iter()
        .zip(&watches)
        .zip(&rig.progress)
        .map(|((u, w), p)| {
            tokio::spawn(watcher(
                u.clone(),
                began,
                until.clone(),
                p.clone(),
                w.clone(),
            ))
        })
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
                rig.generations.clone(),
            ))
        })
        .collect();

    let leases = tokio::spawn(leaser(urls.clone(), seed, began, stop.clone()));
    let lockers: Vec<_> = (0..LOCKERS)
        .map(|id| {
            tokio::spawn(locker(
                id,
                urls[(id + 1) % urls.len()].clone(),
                stop.clone(),
            ))
        })
        .collect();

    let mut fault_log = Vec::new();
    let mut fault_windows = Vec::new();
    let deadline = began + Duration::from_secs(seconds);
    while Instant::now() + Duration::from_secs(3) < deadline && !faults.is_empty() {
        tokio::time::sleep(Duration::from_millis(500 + rng.below(1500) as u64)).await;
        let fault = faults[rng.below(faults.len())].clone();
        let (window, happened) =
            inject(&mut cluster, &rig, &fault, &mut rng, &mut fault_log, began).await;
        if happened {
            injected.push(fault.clone());
        }
        fault_windows.push(window);
    }
    tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
    stop.store(true, Ordering::Relaxed);
    let mut ops = Vec::new();
    for c in clients {
        ops.extend(c.await.map_err(|e| format!("client: {e}"))?);
    }

    let leased = leases.await.map_err(|e| format!("leaser: {e}"))?;
    let mut acquired = Vec::new();
    for l in lockers {
        acquired.extend(l.await.map_err(|e| format!("locker: {e}"))?);
    }
    // Every lease runs out: wait until no leased key is left (or past the
    // latest a key may live).
    let latest = leased
        .iter()
        .map(|l| {
            let ttl = Duration::from_secs(l.ttl.max(0) as u64);
            latest_expiry(l.renewed_done, ttl, &fault_windows)
        })
        .max()
        .unwrap_or(0)
        + LEASE_SLACK.as_nanos() as u64;
    let mut kv = KvClient::new(channel(&urls[0]));
    loop {
        let left = kv
            .range(RangeRequest {
                key: LEASE_PREFIX.as_bytes().to_vec(),
                range_end: b"lease0".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().count);
        if left.as_ref().is_ok_and(|&c| c == 0) || began.elapsed().as_nanos() as u64 > latest {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Every key read last, linearizably, through the first member.
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
    let mut problems = std::mem::take(&mut *rig.problems.lock().unwrap());
    // a member that died on its own is a bug, whatever the history says
    for m in &mut cluster.members {
        if !m.is_running() {
            problems.push(format!("{} exited on its own:\n{}", m.name, m.log_tail()));
        }
    }
    for (i, w) in watched.iter().enumerate() {
        problems.extend(history::check_watch(&format!("watch via m{}", i + 1), w));
    }
    problems.extend(check_leases(&leased, &watched, &fault_windows));
    let histories: Vec<Vec<Event>> = watched
        .iter()
        .map(|w| w.iter().flat_map(|r| r.events.clone()).collect())
        .collect();
    // The KV model covers the client keys; leased keys are checked above.
    let kv_history: Vec<Event> = histories[0]
        .iter()
        .filter(|e| e.key.starts_with(PREFIX))
        .cloned()
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
    problems.extend(history::check_locks(
        &format!("{LOCK_NAME}/"),
        LOCK_COUNTER,
        &acquired,
        &histories[0],
    ));
    // Resumable, and history never rewritten (a power loss must not lose
    // what was committed): a new watch on every member from the start
    // lists what the run's watches saw.
    for (i, url) in urls.iter().enumerate() {
        match rewatch(url, 1, final_rev).await {
            Ok((from, events)) => {
                // From a compaction revision on, its own revision is left
                // out: etcd's compaction drops a key's tombstone at exactly
                // that revision (keyIndex.compact), once the member has
                // deleted its records, which each member does in its own
                // time (and our watch ring may still hold the event).
                let first = if from > 1 { from + 1 } else { from };
                let seen: Vec<&Event> = histories[0]
                    .iter()
                    .filter(|e| e.rev >= first && e.rev <= final_rev)
                    .collect();
                let again: Vec<&Event> = events.iter().filter(|e| e.rev >= first).collect();
                if seen != again {
                    let at = seen
                        .iter()
                        .zip(&again)
                        .position(|(a, b)| a != b)
                        .unwrap_or(seen.len().min(again.len()));
                    problems.push(format!(
                        "a new watch via m{} from revision {from} lists other events than the run's watches, from event {at} on ({} and {} events): {:?} / {:?}",
                        i + 1,
                        again.len(),
                        seen.len(),
                        again.get(at),
                        seen.get(at)
                    ));
                }
            }
            Err(e) => problems.push(format!("a new watch via m{}: {e}", i + 1)),
        }
    }
    let head = histories[0].last().map_or(0, |e| e.rev);
    let report = history::check(&ops, &kv_history, head);
    problems.extend(report.violations.iter().cloned());
    let summary = format!(
        "seed {seed}: {} calls ({} unknown: {} took effect), {} committed events, {} leased keys, {} locks held, faults: {}",
        report.ops,
        report.unknown_applied + report.unknown_not_applied,
        report.unknown_applied,
        kv_history.len(),
        leased.len(),
        acquired.len(),
        fault_log.join(", ")
    );
    if problems.is_empty() {
        return Ok((summary, report.ops));
    }
    // Keep what replays and explains it.
    let keep = std::env::temp_dir().join(format!("rsetcd-robustness-{seed}"));
    let _ = std::fs::create_dir_all(&keep);
    let _ = std::fs::write(keep.join("problems.txt"), problems.join("\n"));
    let _ = std::fs::write(keep.join("leases.txt"), format!("{leased:#?}"));
    let _ = std::fs::write(keep.join("locks.txt"), format!("{acquired:#?}"));
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

/// Runs `runs` runs from `first_seed` on; with `per_fault`, that many of
/// each fault alone. Prints a line per run and a table per fault kind;
/// panics after the last run when any found a problem.
async fn campaign(
    flavor: Flavor,
    members: usize,
    first_seed: u64,
    runs: u64,
    seconds: u64,
    faults: &[String],
    per_fault: bool,
) {
    for f in faults {
        assert!(
            FAULTS.contains(&f.as_str()),
            "unknown fault {f:?} (one of {})",
            FAULTS.join(", ")
        );
    }
    let plans: Vec<Vec<String>> = match per_fault {
        true => faults.iter().map(|f| vec![f.clone()]).collect(),
        false => vec![faults.to_vec()],
    };
    let mut seed = first_seed;
    let mut failed = Vec::new();
    // per fault kind: runs that injected it, injections, failed runs,
    // calls checked in those runs
    let mut kinds: std::collections::BTreeMap<String, [usize; 4]> = Default::default();
    for plan in &plans {
        for _ in 0..runs {
            let mut injected = Vec::new();
            let (ok, ops) = match run(flavor, members, seed, seconds, plan, &mut injected).await {
                Ok((summary, ops)) => {
                    eprintln!("robustness: {summary}");
                    (true, ops)
                }
                Err(problems) => {
                    eprintln!("robustness: FAILED {problems}");
                    failed.push(problems);
                    (false, 0)
                }
            };
            let mut distinct = injected.clone();
            distinct.sort();
            distinct.dedup();
            for k in &distinct {
                let row = kinds.entry(k.clone()).or_default();
                row[0] += 1;
                row[1] += injected.iter().filter(|i| *i == k).count();
                row[2] += usize::from(!ok);
                row[3] += ops;
            }
            seed = seed.wrapping_add(1);
        }
    }
    let table: Vec<String> = kinds
        .iter()
        .map(|(k, r)| format!("| {k} | {} | {} | {} | {} |", r[0], r[1], r[2], r[3]))
        .collect();
    eprintln!(
        "robustness campaign: {members} members, seeds {first_seed}..{seed}, {seconds} s per run, {} runs, {} failed\n| fault | runs | injections | failed runs | calls checked in those runs |\n|---|---|---|---|---|\n{}",
        plans.len() as u64 * runs,
        failed.len(),
        table.join("\n")
    );
    assert!(
        failed.is_empty(),
        "robustness: {} runs failed:\n{}",
        failed.len(),
        failed.join("\n\n")
    );
}

fn seed_from_env() -> u64 {
    env_or(
        "ROBUSTNESS_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64),
    )
}

/// The suite's short run, or a campaign the ROBUSTNESS_* variables
/// describe (module doc).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kv_history_stays_linearizable_under_faults() {
    // power cuts where FUSE can be mounted (root)
    let default = match PowerFailFs::available() {
        true => "kill,pause,partition-two-way,member-replace,compact,power-loss-all",
        false => "kill,pause,partition-two-way,member-replace,compact",
    };
    let faults: Vec<String> = env_or("ROBUSTNESS_FAULTS", default.to_string())
        .split(',')
        .filter(|f| !f.is_empty())
        .map(str::to_string)
        .collect();
    // ROBUSTNESS_SERVER=etcd runs the same against etcd 3.4: the checker
    // must find nothing there either.
    let flavor = match std::env::var("ROBUSTNESS_SERVER").as_deref() {
        Ok("etcd") => Flavor::Reference,
        _ => Flavor::Ours,
    };
    campaign(
        flavor,
        env_or("ROBUSTNESS_MEMBERS", 3),
        seed_from_env(),
        env_or("ROBUSTNESS_RUNS", 1),
        env_or("ROBUSTNESS_SECONDS", 12),
        &faults,
        env_or("ROBUSTNESS_PER_FAULT", 0) == 1,
    )
    .await;
}

/// The suite's short run of crashes at durable steps, on the failpoints
/// build ($RSETCD_FAILPOINTS_ETCD, which .ci/run sets; without it,
/// target/failpoints/etcd, and the test is skipped when that is missing).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kv_history_survives_crashes_at_durable_steps() {
    if std::env::var_os("RSETCD_FAILPOINTS_ETCD").is_none()
        && !std::path::Path::new(&format!(
            "{}/target/failpoints/etcd",
            env!("CARGO_MANIFEST_DIR")
        ))
        .is_file()
    {
        eprintln!(
            "skipped: no failpoints build (.ci/run makes one; or `cargo build --features failpoints --bin etcd && mkdir -p target/failpoints && cp target/debug/etcd target/failpoints/`)"
        );
        return;
    }
    campaign(
        Flavor::Ours,
        3,
        seed_from_env(),
        1,
        15,
        &["failpoint".to_string()],
        false,
    )
    .await;
}
