//! The Lock and Election services end to end, against our `etcd` and, where
//! answers are deterministic, against the real etcd 3.4 (the oracle):
//! mutual exclusion under concurrent clients, no lock for an expired lease,
//! cleanup when a waiting client goes away, leadership passing on resign
//! and on lease expiry as Observe reports it, and etcd's exact answers and
//! error texts.

use crate::support::common;

use std::fmt::Debug;
use std::time::{Duration, Instant};

use common::{ServerKind, ServerOptions, TestServer};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseLeasesRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
};
use rsetcd::proto::v3electionpb::election_client::ElectionClient;
use rsetcd::proto::v3electionpb::{
    CampaignRequest, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest, ResignRequest,
};
use rsetcd::proto::v3lockpb::lock_client::LockClient;
use rsetcd::proto::v3lockpb::{LockRequest, UnlockRequest};
use tonic::transport::Channel;
use tonic::{Code, Response, Status, Streaming};

/// How long any single step may take before the test fails.
const STEP: Duration = Duration::from_secs(20);

#[derive(Clone)]
struct Clients {
    lock: LockClient<Channel>,
    election: ElectionClient<Channel>,
    lease: LeaseClient<Channel>,
    kv: KvClient<Channel>,
}

impl Clients {
    async fn connect(server: &TestServer) -> anyhow::Result<Clients> {
        let channel = Channel::from_shared(server.client_url.clone())?
            .connect()
            .await?;
        Ok(Clients {
            lock: LockClient::new(channel.clone()),
            election: ElectionClient::new(channel.clone()),
            lease: LeaseClient::new(channel.clone()),
            kv: KvClient::new(channel),
        })
    }

    /// A lease with the given TTL; `id` 0 lets the server choose.
    async fn grant(&mut self, ttl: i64, id: i64) -> i64 {
        self.lease
            .lease_grant(LeaseGrantRequest { ttl, id })
            .await
            .expect("lease grant")
            .into_inner()
            .id
    }

    /// The keys under `prefix`, in key order.
    async fn keys(&mut self, prefix: &str) -> Vec<String> {
        let mut end = prefix.as_bytes().to_vec();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let resp = self
            .kv
            .range(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: end,
                keys_only: true,
                ..Default::default()
            })
            .await
            .expect("range")
            .into_inner();
        resp.kvs
            .into_iter()
            .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
            .collect()
    }

    /// Waits (bounded) until the keys under `prefix` are `expected`.
    async fn wait_keys(&mut self, prefix: &str, expected: &[String]) {
        let deadline = Instant::now() + STEP;
        loop {
            let keys = self.keys(prefix).await;
            if keys == expected {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "keys under {prefix}: {keys:?}, expected {expected:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn lease_count(&mut self) -> usize {
        self.lease
            .lease_leases(LeaseLeasesRequest {})
            .await
            .expect("lease leases")
            .into_inner()
            .leases
            .len()
    }
}

/// Starts a server (blocking work, kept off the async runtime's threads).
async fn start(kind: ServerKind, options: ServerOptions) -> (TestServer, Clients) {
    let server = tokio::task::spawn_blocking(move || TestServer::start(kind, &options))
        .await
        .expect("start task")
        .unwrap_or_else(|e| panic!("start {kind:?}: {e:#}"));
    let clients = Clients::connect(&server).await.expect("connect");
    (server, clients)
}

/// The kinds to run a test against: ours, and etcd 3.4 when installed.
fn kinds() -> Vec<ServerKind> {
    let mut kinds = vec![ServerKind::Ours];
    if common::reference_available() {
        kinds.push(ServerKind::Reference);
    } else {
        eprintln!(
            "skipping the etcd 3.4 comparison: {} not found",
            common::REFERENCE_ETCD
        );
    }
    kinds
}

async fn step<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(STEP, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {STEP:?}"))
}

fn key_str(key: &[u8]) -> String {
    String::from_utf8_lossy(key).into_owned()
}

/// Reads the counter (0 when absent).
async fn counter(kv: &mut KvClient<Channel>) -> u64 {
    let resp = kv
        .range(RangeRequest {
            key: b"counter".to_vec(),
            ..Default::default()
        })
        .await
        .expect("get counter")
        .into_inner();
    match resp.kvs.first() {
        Some(kv) => String::from_utf8_lossy(&kv.value)
            .parse()
            .expect("counter is a number"),
        None => 0,
    }
}

async fn lock_counter_never_loses_an_update_body() {
    const CLIENTS: u64 = 8;
    const ROUNDS: u64 = 25;
    for kind in kinds() {
        let (_server, clients) = start(kind, ServerOptions::default()).await;
        let mut tasks = Vec::new();
        for _ in 0..CLIENTS {
            let mut c = clients.clone();
            tasks.push(tokio::spawn(async move {
                let lease = c.grant(60, 0).await;
                for _ in 0..ROUNDS {
                    let held = step(
                        "lock",
                        c.lock.lock(LockRequest {
                            name: b"counter-lock".to_vec(),
                            lease,
                        }),
                    )
                    .await
                    .expect("lock")
                    .into_inner();
                    let n = counter(&mut c.kv).await;
                    c.kv.put(PutRequest {
                        key: b"counter".to_vec(),
                        value: (n + 1).to_string().into_bytes(),
                        ..Default::default()
                    })
                    .await
                    .expect("put counter");
                    c.lock
                        .unlock(UnlockRequest { key: held.key })
                        .await
                        .expect("unlock");
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let mut c = clients.clone();
        assert_eq!(counter(&mut c.kv).await, CLIENTS * ROUNDS, "{kind:?}");
        assert!(c.keys("counter-lock/").await.is_empty(), "{kind:?}");
    }
}

/// The Jepsen scenario (etcd 3.4.3's bug, still in 3.4.23): a waiter whose
/// lease expires before its turn must not get the lock.
async fn lock_is_never_granted_to_an_expired_lease_body() {
    let (_server, mut c) = start(ServerKind::Ours, ServerOptions::default()).await;
    let long = c.grant(60, 0).await;
    let short = c.grant(2, 0).await;
    let held = c
        .lock
        .lock(LockRequest {
            name: b"jepsen".to_vec(),
            lease: long,
        })
        .await
        .expect("first lock")
        .into_inner();
    let mut waiter_client = c.lock.clone();
    let waiter = tokio::spawn(async move {
        waiter_client
            .lock(LockRequest {
                name: b"jepsen".to_vec(),
                lease: short,
            })
            .await
    });
    // Hold the lock well past the waiter's TTL (and the leader's grace).
    tokio::time::sleep(Duration::from_secs(6)).await;
    c.lock
        .unlock(UnlockRequest { key: held.key })
        .await
        .expect("unlock");
    let answer = step("waiter", waiter).await.expect("waiter task");
    let status = answer.expect_err("a lock for an expired lease was granted");
    assert_eq!(status.code(), Code::Unknown);
    assert_eq!(status.message(), "mutex: session is expired");
    assert!(c.keys("jepsen/").await.is_empty());
    let ttl = c
        .lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: short,
            keys: false,
        })
        .await
        .expect("time to live")
        .into_inner();
    assert_eq!(ttl.ttl, -1, "the short lease is gone");
}

/// A client that stops waiting for a lock or for leadership leaves no key
/// behind (etcd's Mutex.Lock and Election.Campaign delete their key on a
/// cancelled context), so later contenders are not blocked by it.
async fn waiters_that_go_away_leave_no_key_body() {
    for kind in kinds() {
        let (_server, mut c) = start(kind, ServerOptions::default()).await;
        let holder = c.grant(60, 0x100).await;
        let quitter = c.grant(60, 0x200).await;
        let held = c
            .lock
            .lock(LockRequest {
                name: b"q".to_vec(),
                lease: holder,
            })
            .await
            .expect("lock")
            .into_inner();
        let mut lock = c.lock.clone();
        let gave_up = tokio::time::timeout(
            Duration::from_secs(1),
            lock.lock(LockRequest {
                name: b"q".to_vec(),
                lease: quitter,
            }),
        )
        .await;
        assert!(gave_up.is_err(), "{kind:?}: the lock is held");
        c.wait_keys("q/", &["q/100".to_string()]).await;
        c.lock
            .unlock(UnlockRequest { key: held.key })
            .await
            .expect("unlock");
        assert!(c.keys("q/").await.is_empty(), "{kind:?}");

        c.election
            .campaign(campaign("eq", holder, "lead"))
            .await
            .expect("campaign");
        let mut election = c.election.clone();
        let gave_up = tokio::time::timeout(
            Duration::from_secs(1),
            election.campaign(campaign("eq", quitter, "wait")),
        )
        .await;
        assert!(gave_up.is_err(), "{kind:?}: the election has a leader");
        c.wait_keys("eq/", &["eq/100".to_string()]).await;
    }
}

/// Reads the next Observe message.
async fn next_leader(stream: &mut Streaming<LeaderResponse>) -> LeaderResponse {
    step("observe", stream.message())
        .await
        .expect("observe stream")
        .expect("observe stream ended")
}

/// Observes election `name` from a task: every message, in order.
fn observe_in_background(
    c: &Clients,
    name: &str,
) -> tokio::sync::mpsc::UnboundedReceiver<LeaderResponse> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let mut election = c.election.clone();
    let request = leader_of(name);
    tokio::spawn(async move {
        let mut stream = election
            .observe(request)
            .await
            .expect("observe")
            .into_inner();
        while let Ok(Some(r)) = stream.message().await {
            if tx.send(r).is_err() {
                return;
            }
        }
    });
    rx
}

/// The observed (key, value) of a leader message.
fn observed(r: &LeaderResponse) -> (String, String) {
    let kv = r.kv.as_ref().expect("leader kv");
    (key_str(&kv.key), key_str(&kv.value))
}

fn campaign(name: &str, lease: i64, value: &str) -> CampaignRequest {
    CampaignRequest {
        name: name.as_bytes().to_vec(),
        lease,
        value: value.as_bytes().to_vec(),
    }
}

fn leader_of(name: &str) -> LeaderRequest {
    LeaderRequest {
        name: name.as_bytes().to_vec(),
    }
}

async fn current_leader(c: &mut Clients, name: &str) -> Result<(String, String), Status> {
    let r = c.election.leader(leader_of(name)).await?.into_inner();
    Ok(observed(&r))
}

/// Two candidates; the first leads, proclaims, resigns; the second leads
/// until its lease expires; a third takes over. Observe reports each
/// leader and value in order. Identical on etcd 3.4.
async fn election_leadership_passes_on_resign_and_on_lease_expiry_body() {
    let mut transcripts = Vec::new();
    for kind in kinds() {
        let (_server, mut c) = start(kind, ServerOptions::default()).await;
        let a = c.grant(60, 0xa).await;
        let b = c.grant(5, 0xb).await;
        let cc = c.grant(60, 0xc).await;
        // etcd sends the stream's headers with its first message, so the
        // call itself only returns once there is a leader.
        let mut observe = observe_in_background(&c, "e");
        // let the observer start before the first leader appears
        tokio::time::sleep(Duration::from_millis(300)).await;

        let a_key = c
            .election
            .campaign(campaign("e", a, "a1"))
            .await
            .expect("campaign a")
            .into_inner()
            .leader
            .expect("leader key");
        let mut el = c.election.clone();
        let b_campaign = tokio::spawn(async move { el.campaign(campaign("e", b, "b1")).await });
        c.wait_keys("e/", &["e/a".to_string(), "e/b".to_string()])
            .await;
        assert_eq!(
            current_leader(&mut c, "e").await.expect("leader"),
            ("e/a".to_string(), "a1".to_string())
        );
        c.election
            .proclaim(ProclaimRequest {
                leader: Some(a_key.clone()),
                value: b"a2".to_vec(),
            })
            .await
            .expect("proclaim");
        assert!(!b_campaign.is_finished(), "{kind:?}: b leads while a does");
        c.election
            .resign(ResignRequest {
                leader: Some(a_key),
            })
            .await
            .expect("resign");
        let b_key = step("b's campaign", b_campaign)
            .await
            .expect("campaign task")
            .expect("campaign b")
            .into_inner()
            .leader
            .expect("leader key");
        assert_eq!(key_str(&b_key.key), "e/b");
        assert_eq!(
            current_leader(&mut c, "e").await.expect("leader"),
            ("e/b".to_string(), "b1".to_string())
        );

        // b's lease is not kept alive: its expiry hands over to c.
        let c_key = step("c's campaign", c.election.campaign(campaign("e", cc, "c1")))
            .await
            .expect("campaign c")
            .into_inner()
            .leader
            .expect("leader key");
        assert_eq!(key_str(&c_key.key), "e/c");
        let mut seen = Vec::new();
        for _ in 0..4 {
            let r = step("observe", observe.recv())
                .await
                .expect("observe stream");
            seen.push(observed(&r));
        }
        let expected: Vec<(String, String)> =
            [("e/a", "a1"), ("e/a", "a2"), ("e/b", "b1"), ("e/c", "c1")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(seen, expected, "{kind:?}");

        c.election
            .resign(ResignRequest {
                leader: Some(c_key),
            })
            .await
            .expect("resign c");
        let none = current_leader(&mut c, "e")
            .await
            .expect_err("no leader after the last resign");
        assert_eq!(none.code(), Code::Unknown);
        assert_eq!(none.message(), "election: no leader");
        transcripts.push((kind, seen));
    }
    if let [(_, ours), (_, reference)] = &transcripts[..] {
        assert_eq!(ours, reference);
    }
}

/// One request's answer as comparable text: the message, or code and text.
fn answer<T: Debug>(r: Result<Response<T>, Status>) -> String {
    match r {
        Ok(resp) => format!("{:?}", resp.into_inner()),
        Err(s) => format!("error {:?}: {}", s.code(), s.message()),
    }
}

/// The same requests to ours and to etcd 3.4 (same member and cluster IDs,
/// client-chosen lease IDs): byte-identical answers, headers included.
async fn lock_election_transcript(kind: ServerKind) -> Vec<String> {
    let options = ServerOptions {
        name: "diff".to_string(),
        peer_identity_url: Some("http://127.0.0.1:1".to_string()),
        extra_args: Vec::new(),
        env: Vec::new(),
    };
    let (_server, mut c) = start(kind, options).await;
    let mut out = Vec::new();
    let la = c.grant(60, 0x1a).await;
    let lb = c.grant(60, 0x1b).await;
    let lock = |name: &str, lease: i64| LockRequest {
        name: name.as_bytes().to_vec(),
        lease,
    };

    out.push(answer(c.lock.lock(lock("l", 0x999)).await));
    let held = c.lock.lock(lock("l", la)).await;
    let held_key = held.as_ref().map(|r| r.get_ref().key.clone()).ok();
    out.push(answer(held));
    // the same lease again: the same key, already held
    out.push(answer(c.lock.lock(lock("l", la)).await));
    out.push(answer(c.lock.lock(lock("", lb)).await));
    out.push(answer(
        c.lock.unlock(UnlockRequest { key: Vec::new() }).await,
    ));
    out.push(answer(
        c.lock
            .unlock(UnlockRequest {
                key: b"missing".to_vec(),
            })
            .await,
    ));
    if let Some(key) = held_key {
        out.push(answer(c.lock.unlock(UnlockRequest { key }).await));
    }

    // lease 0: the server grants a session lease of its own
    let before = c.lease_count().await;
    let granted = c.lock.lock(lock("l0", 0)).await.expect("lock with lease 0");
    out.push(format!(
        "lease-0 lock key starts with l0/: {}",
        granted.get_ref().key.starts_with(b"l0/")
    ));
    out.push(format!(
        "leases granted: {}",
        c.lease_count().await - before
    ));

    out.push(answer(c.election.leader(leader_of("e")).await));
    out.push(answer(
        c.election
            .proclaim(ProclaimRequest {
                leader: None,
                value: b"x".to_vec(),
            })
            .await,
    ));
    out.push(answer(
        c.election.resign(ResignRequest { leader: None }).await,
    ));
    out.push(answer(c.election.campaign(campaign("e", 0x777, "v")).await));
    let first = c.election.campaign(campaign("e", la, "v1")).await;
    let leader = first
        .as_ref()
        .ok()
        .and_then(|r| r.get_ref().leader.clone())
        .unwrap_or_default();
    out.push(answer(first));
    let mut observe = c
        .election
        .observe(leader_of("e"))
        .await
        .expect("observe")
        .into_inner();
    out.push(format!("{:?}", next_leader(&mut observe).await));
    // campaigning again with another value proclaims it
    out.push(answer(c.election.campaign(campaign("e", la, "v2")).await));
    out.push(format!("{:?}", next_leader(&mut observe).await));
    out.push(answer(
        c.election
            .proclaim(ProclaimRequest {
                leader: Some(LeaderKey {
                    rev: 1,
                    ..leader.clone()
                }),
                value: b"x".to_vec(),
            })
            .await,
    ));
    out.push(answer(
        c.election
            .proclaim(ProclaimRequest {
                leader: Some(leader.clone()),
                value: b"v3".to_vec(),
            })
            .await,
    ));
    out.push(format!("{:?}", next_leader(&mut observe).await));
    out.push(answer(c.election.leader(leader_of("e")).await));
    let mut el = c.election.clone();
    let second = tokio::spawn(async move { el.campaign(campaign("e", lb, "w")).await });
    c.wait_keys("e/", &["e/1a".to_string(), "e/1b".to_string()])
        .await;
    out.push(answer(
        c.election
            .resign(ResignRequest {
                leader: Some(LeaderKey {
                    rev: 1,
                    ..leader.clone()
                }),
            })
            .await,
    ));
    out.push(answer(
        c.election
            .resign(ResignRequest {
                leader: Some(leader),
            })
            .await,
    ));
    out.push(answer(step("second campaign", second).await.expect("task")));
    out.push(format!("{:?}", next_leader(&mut observe).await));
    out.push(answer(c.election.leader(leader_of("e")).await));
    out
}

async fn answers_match_etcd_body() {
    if !common::reference_available() {
        eprintln!("skipping: {} not found", common::REFERENCE_ETCD);
        return;
    }
    let ours = lock_election_transcript(ServerKind::Ours).await;
    let reference = lock_election_transcript(ServerKind::Reference).await;
    for (i, (o, r)) in ours.iter().zip(&reference).enumerate() {
        assert_eq!(o, r, "answer {i} differs");
    }
    assert_eq!(ours.len(), reference.len());
}

/// Every test ends within this time, even if a server never answers: a
/// hung test fails (and its servers are killed by their guards) instead of
/// holding up the whole suite.
async fn within_deadline(body: impl std::future::Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(180), body)
        .await
        .expect("test did not finish within 180 s");
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_counter_never_loses_an_update() {
    within_deadline(lock_counter_never_loses_an_update_body()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_is_never_granted_to_an_expired_lease() {
    within_deadline(lock_is_never_granted_to_an_expired_lease_body()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waiters_that_go_away_leave_no_key() {
    within_deadline(waiters_that_go_away_leave_no_key_body()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn election_leadership_passes_on_resign_and_on_lease_expiry() {
    within_deadline(election_leadership_passes_on_resign_and_on_lease_expiry_body()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_match_etcd() {
    within_deadline(answers_match_etcd_body()).await;
}
