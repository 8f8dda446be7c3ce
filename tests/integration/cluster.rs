//! Multi-member clusters of real processes on 127.0.0.1: bootstrap as
//! Debian's etcdctl 3.4 sees it next to etcd 3.4, leader loss under load,
//! a paused leader, membership changes with learners, snapshot catch-up,
//! leader transfer, and a member of another cluster refused.
//!
//! The tests of this file run one at a time: each runs three or four
//! members, and elections are timed.

use crate::support;
use crate::support::process::Proc;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rsetcd::proto::etcdserverpb::{
    MemberAddRequest, MemberListRequest, MemberPromoteRequest, MemberRemoveRequest,
    MoveLeaderRequest, PutRequest, RangeRequest,
};
use support::cluster::{free_port, reference_available, Cluster, Flavor};

/// Held by each test for its whole run (tests of one binary run on
/// threads at once; a poisoned lock does not exist for tokio's Mutex).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const TIMING: [&str; 2] = ["--heartbeat-interval=100", "--election-timeout=1000"];

/// Debian's etcdctl 3.4: success, stdout, and for `endpoint health`
/// (which reports on stderr) stderr after it.
/// The value of `key` in the first linearizable read that succeeds
/// (a healed member may refuse a few first), within 20 s.
async fn first_linearizable_value(
    kv: &mut rsetcd::proto::etcdserverpb::kv_client::KvClient<tonic::transport::Channel>,
    key: &[u8],
) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let read = kv
            .range(RangeRequest {
                key: key.to_vec(),
                ..Default::default()
            })
            .await;
        match read {
            Ok(r) => return r.into_inner().kvs[0].value.clone(),
            Err(e) => assert!(Instant::now() < deadline, "never served a read: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A put of `key` = `value`, nothing else set.
fn put_request(key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> PutRequest {
    PutRequest {
        key: key.into(),
        value: value.into(),
        ..Default::default()
    }
}

fn etcdctl34(endpoints: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(crate::support::common::REFERENCE_ETCDCTL)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .args(args)
        .output()
        .expect("run /usr/bin/etcdctl");
    let mut text = String::from_utf8_lossy(&out.stdout).to_string();
    if args.contains(&"health") {
        text.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    (out.status.success(), text)
}

/// A table with the cells of `masked` columns (by header) replaced by `*`.
fn mask_columns(table: &str, masked: &[&str]) -> Vec<Vec<String>> {
    let rows: Vec<Vec<String>> = table
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let Some(header) = rows.first().cloned() else {
        return rows;
    };
    rows.into_iter()
        .enumerate()
        .map(|(i, row)| {
            row.into_iter()
                .zip(&header)
                .map(|(cell, h)| {
                    if i > 0 && masked.contains(&h.as_str()) {
                        "*".to_string()
                    } else {
                        cell
                    }
                })
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcdctl_34_sees_a_three_member_cluster_as_etcds() {
    let _serial = SERIAL.lock().await;
    if !reference_available()
        || !std::path::Path::new(crate::support::common::REFERENCE_ETCDCTL).exists()
    {
        eprintln!("SKIP: etcd 3.4 (etcd-server, etcd-client) is not installed");
        return;
    }
    // Same names, ports and token: etcd derives the same member and cluster
    // ids, so the tables must be the same, text for text.
    let ports: Vec<(u16, u16)> = (0..3)
        .map(|_| (free_port().unwrap(), free_port().unwrap()))
        .collect();
    let mut outputs = Vec::new();
    for flavor in [Flavor::Reference, Flavor::Ours] {
        let cluster = Cluster::start_on(flavor, &ports, &TIMING).await.unwrap();
        let first = format!("127.0.0.1:{}", ports[0].0);
        let (ok, list) = etcdctl34(&first, &["member", "list", "-w", "table"]);
        assert!(ok, "{flavor:?}: member list failed");
        let (ok, simple) = etcdctl34(&first, &["member", "list"]);
        assert!(ok);
        let (ok, status) = etcdctl34(&first, &["endpoint", "status", "--cluster", "-w", "table"]);
        assert!(
            ok,
            "{flavor:?}: endpoint status --cluster failed:\n{status}"
        );
        let (ok, health) = etcdctl34(&cluster.endpoints(), &["endpoint", "health", "--cluster"]);
        assert!(
            ok,
            "{flavor:?}: endpoint health --cluster failed:\n{health}"
        );
        let leaders = status.matches("|      true |").count();
        assert_eq!(leaders, 1, "{flavor:?}: exactly one leader:\n{status}");
        // Our etcdctl prints what Debian's prints, on either server.
        let ours_ctl = |args: &[&str]| {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_etcdctl"))
                .arg(format!("--endpoints={first}"))
                .args(args)
                .output()
                .expect("run our etcdctl");
            String::from_utf8_lossy(&out.stdout).to_string()
        };
        assert_eq!(
            ours_ctl(&["member", "list", "-w", "table"]),
            list,
            "{flavor:?}"
        );
        assert_eq!(ours_ctl(&["member", "list"]), simple, "{flavor:?}");
        let ours_status = ours_ctl(&["endpoint", "status", "--cluster", "-w", "table"]);
        let unstable = ["DB SIZE", "RAFT INDEX", "RAFT APPLIED INDEX", "RAFT TERM"];
        assert_eq!(
            mask_columns(&ours_status, &unstable),
            mask_columns(&status, &unstable),
            "{flavor:?}: our etcdctl's endpoint status --cluster:\n{ours_status}\nDebian's:\n{status}"
        );
        outputs.push((list, simple, status, health));
        drop(cluster);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (etcd, ours) = (&outputs[0], &outputs[1]);
    assert_eq!(ours.0, etcd.0, "member list -w table");
    assert_eq!(ours.1, etcd.1, "member list");
    let masked = [
        "VERSION",
        "DB SIZE",
        "IS LEADER",
        "RAFT TERM",
        "RAFT INDEX",
        "RAFT APPLIED INDEX",
    ];
    assert_eq!(
        mask_columns(&ours.2, &masked),
        mask_columns(&etcd.2, &masked),
        "endpoint status --cluster -w table:\nours:\n{}\netcd:\n{}",
        ours.2,
        etcd.2
    );
    let healthy = |s: &str| s.lines().filter(|l| l.contains("is healthy")).count();
    assert_eq!(healthy(&ours.3), 3, "{}", ours.3);
}

/// Writers that keep putting distinct keys through every member, retrying
/// on errors; returns the acknowledged keys.
fn spawn_writers(
    cluster: &Cluster,
    n: usize,
    stop: Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<String>>> {
    let urls: Vec<String> = cluster.members.iter().map(|m| m.client_url()).collect();
    (0..n)
        .map(|w| {
            let (urls, stop) = (urls.clone(), stop.clone());
            tokio::spawn(async move {
                let mut acked = Vec::new();
                let mut seq = 0u64;
                let mut target = w;
                while !stop.load(Ordering::Relaxed) {
                    let url = &urls[target % urls.len()];
                    let key = format!("w{w}/{seq:08}");
                    let put = async {
                        let ch = tonic::transport::Endpoint::from_shared(url.clone())?
                            .connect_timeout(Duration::from_millis(500))
                            .timeout(Duration::from_secs(3))
                            .connect()
                            .await?;
                        let mut kv = rsetcd::proto::etcdserverpb::kv_client::KvClient::new(ch);
                        kv.put(put_request(key.clone().into_bytes(), b"v".to_vec()))
                            .await?;
                        anyhow::Ok(())
                    };
                    match put.await {
                        Ok(()) => {
                            acked.push(key);
                            seq += 1;
                        }
                        Err(_) => {
                            target += 1;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                acked
            })
        })
        .collect()
}

/// Every key in `keys` is present in a serializable read on member `i`.
async fn assert_has_keys(cluster: &Cluster, i: usize, keys: &[String]) {
    let mut kv = cluster.members[i].kv().await.unwrap();
    let r = kv
        .range(RangeRequest {
            key: b"w".to_vec(),
            range_end: b"x".to_vec(),
            keys_only: true,
            serializable: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let have: std::collections::HashSet<Vec<u8>> = r.kvs.into_iter().map(|kv| kv.key).collect();
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !have.contains(k.as_bytes()))
        .collect();
    assert!(
        missing.is_empty(),
        "member {} lost {} acknowledged writes, e.g. {:?}",
        cluster.members[i].name,
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}

/// Waits until every running member has applied the same revision, then
/// checks their HashKV at it.
async fn assert_converged(cluster: &mut Cluster) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut revs = Vec::new();
        for m in cluster.members.iter_mut() {
            if m.is_running() {
                revs.push(m.hash_kv(0).await.map(|h| h.1).unwrap_or(-1));
            }
        }
        if revs.iter().all(|&r| r == revs[0] && r > 0) {
            let rev = revs[0];
            let mut hashes = BTreeMap::new();
            for m in cluster.members.iter_mut() {
                if m.is_running() {
                    hashes.insert(m.name.clone(), m.hash_kv(rev).await.unwrap().0);
                }
            }
            let first = *hashes.values().next().unwrap();
            assert!(
                hashes.values().all(|&h| h == first),
                "HashKV differs at revision {rev}: {hashes:?}"
            );
            return;
        }
        assert!(
            Instant::now() < deadline,
            "members never reached one revision: {revs:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_killed_under_load_loses_no_acknowledged_write() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(Flavor::Ours, 3, &TIMING).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers = spawn_writers(&cluster, 6, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let old = cluster.leader(Duration::from_secs(10)).await.unwrap();
    cluster.members[old].kill9();
    let killed_at = Instant::now();
    let new = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let took = killed_at.elapsed();
    assert_ne!(new, old);
    // 3 × the election timeout (1 s), measured from outside.
    assert!(took < Duration::from_secs(3), "new leader after {took:?}");
    // Writes resume: count acknowledgements after the election.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for w in writers {
        acked.extend(w.await.unwrap());
    }
    assert!(
        acked.len() > 100,
        "only {} writes acknowledged",
        acked.len()
    );
    cluster.restart(old).unwrap();
    cluster.members[old]
        .wait_serving(Duration::from_secs(30))
        .await
        .unwrap();
    assert_converged(&mut cluster).await;
    for i in 0..3 {
        assert_has_keys(&cluster, i, &acked).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_leader_serves_no_stale_read_and_the_majority_goes_on() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(Flavor::Ours, 3, &TIMING).await.unwrap();
    let mut kv = cluster.members[0].kv().await.unwrap();
    kv.put(put_request(b"k".to_vec(), b"before".to_vec()))
        .await
        .unwrap();
    let old = cluster.leader(Duration::from_secs(10)).await.unwrap();
    cluster.members[old].signal(Signal::SIGSTOP).unwrap();
    // A write sent through a follower now goes to the paused leader and is
    // lost; when a new leader is elected within two election timeouts
    // after it started, its timeout says why, as etcd's does. Sent half
    // an election timeout after the pause (followers still know the old
    // leader: they wait at least one timeout), the election (one to two
    // timeouts after the pause) falls inside that window even when the
    // machine is busy.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut through_follower = cluster.members[(old + 1) % 3].kv().await.unwrap();
    let lost_write = tokio::spawn(async move {
        through_follower
            .put(put_request(b"lost".to_vec(), b"?".to_vec()))
            .await
    });
    // The majority elects a leader and commits.
    let new = cluster.leader(Duration::from_secs(10)).await.unwrap();
    assert_ne!(new, old);
    let mut kv = cluster.members[new].kv().await.unwrap();
    kv.put(put_request(b"k".to_vec(), b"after".to_vec()))
        .await
        .unwrap();
    let err = lost_write
        .await
        .unwrap()
        .expect_err("a write forwarded to a paused leader cannot be acknowledged");
    assert_eq!(
        err.message(),
        "etcdserver: request timed out, possibly due to previous leader failure"
    );
    // Healed: the old leader must not answer a linearizable read with the
    // value from before the partition.
    cluster.members[old].signal(Signal::SIGCONT).unwrap();
    let mut kv = cluster.members[old].kv().await.unwrap();
    let v = first_linearizable_value(&mut kv, b"k").await;
    assert_eq!(v, b"after", "stale linearizable read from the old leader");
    assert_converged(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_removed_added_and_a_learner_promoted() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(Flavor::Ours, 3, &TIMING).await.unwrap();
    let mut api = cluster.members[0].cluster().await.unwrap();
    // Let the transport's connections age past etcd's 5 s health window,
    // which --strict-reconfig-check requires for adding a voter.
    tokio::time::sleep(Duration::from_secs(6)).await;

    // Remove a follower other than m1 (removing the leader works too, but
    // then the next request may go to a leader that is gone and time out,
    // as with etcd): it stops itself.
    let list = api
        .member_list(MemberListRequest { linearizable: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.members.len(), 3);
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let gone = if leader == 2 { 1 } else { 2 };
    let gone_name = cluster.members[gone].name.clone();
    let m3 = list
        .members
        .iter()
        .find(|m| m.name == gone_name)
        .unwrap()
        .id;
    // Retried on what a client retries (Unavailable: a timeout or an
    // election in between); anything else fails the test.
    let mut attempts = 0;
    while let Err(e) = api.member_remove(MemberRemoveRequest { id: m3 }).await {
        attempts += 1;
        if e.code() != tonic::Code::Unavailable || attempts == 3 {
            panic!("remove m3: {e}\nm1's log:\n{}", cluster.members[0].log());
        }
        eprintln!("remove m3: {e}; retrying");
    }
    let status = cluster.members[gone]
        .wait_exit(Duration::from_secs(20))
        .unwrap();
    assert!(status.success(), "a removed member exits cleanly: {status}");
    assert!(
        cluster.members[gone]
            .log()
            .contains("the member has been permanently removed from the cluster"),
        "{}",
        cluster.members[gone].log()
    );
    let err = api
        .member_remove(MemberRemoveRequest { id: m3 })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: member not found");

    // Add m4 as a voter; it joins with --initial-cluster-state existing.
    let (c4, p4) = (free_port().unwrap(), free_port().unwrap());
    let added = api
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![format!("http://127.0.0.1:{p4}")],
            is_learner: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.members.len(), 3, "m1, m2 and the unstarted m4");
    let m4 = cluster.join("m4", c4, p4).unwrap();
    cluster.members[m4]
        .wait_serving(Duration::from_secs(30))
        .await
        .unwrap();

    // Add a learner: it refuses writes, catches up, and is promoted.
    let (c5, p5) = (free_port().unwrap(), free_port().unwrap());
    let added = api
        .member_add(MemberAddRequest {
            peer_ur_ls: vec![format!("http://127.0.0.1:{p5}")],
            is_learner: true,
        })
        .await
        .unwrap()
        .into_inner();
    let m5_id = added.member.unwrap().id;
    // A second learner is one too many (etcd's maxLearners).
    let err = api
        .member_add(MemberAddRequest {
            peer_ur_ls: vec!["http://127.0.0.1:1".into()],
            is_learner: true,
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "etcdserver: too many learner members in cluster"
    );
    let m5 = cluster.join("m5", c5, p5).unwrap();
    let m5_url = cluster.members[m5].client_url();
    // A learner serves no linearizable read: wait for its published name.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = api
            .member_list(MemberListRequest { linearizable: true })
            .await
            .unwrap()
            .into_inner();
        if list.members.iter().any(|m| m.id == m5_id && m.name == "m5") {
            break;
        }
        assert!(Instant::now() < deadline, "learner never published itself");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut learner_kv = rsetcd::proto::etcdserverpb::kv_client::KvClient::connect(m5_url)
        .await
        .unwrap();
    let err = learner_kv
        .put(PutRequest {
            key: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: rpc not supported for learner");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match api.member_promote(MemberPromoteRequest { id: m5_id }).await {
            Ok(r) => {
                let r = r.into_inner();
                let m = r.members.iter().find(|m| m.id == m5_id).unwrap();
                assert!(!m.is_learner);
                break;
            }
            Err(e) => {
                assert_eq!(
                    e.message(),
                    "etcdserver: can only promote a learner member which is in sync with leader"
                );
                assert!(Instant::now() < deadline, "learner never caught up");
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let err = api
        .member_promote(MemberPromoteRequest { id: m5_id })
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "etcdserver: can only promote a learner member"
    );
    // The promoted member now takes writes, once it has applied its own
    // promotion: the leader answers the promote when it has applied it, and
    // until m5 applies it too, m5 still refuses as a learner (as etcd does,
    // its learner check reads the member's own applied membership).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match learner_kv
            .put(put_request(b"x".to_vec(), b"1".to_vec()))
            .await
        {
            Ok(_) => break,
            Err(e) if e.message() == "etcdserver: rpc not supported for learner" => {
                assert!(
                    Instant::now() < deadline,
                    "m5 never applied its promotion\nm5's log:\n{}",
                    cluster.members[m5].log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!(
                "put on the promoted m5: {e}\nm5's log:\n{}",
                cluster.members[m5].log()
            ),
        }
    }
    assert_converged(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_behind_the_compacted_log_catches_up_by_snapshot() {
    let _serial = SERIAL.lock().await;
    let mut args: Vec<&str> = TIMING.to_vec();
    // The leader keeps 100 entries below each snapshot (5,000 by default:
    // without the flag, 2,000 writes would leave member 3 in the log).
    args.extend([
        "--snapshot-count=200",
        "--experimental-snapshot-catchup-entries=100",
    ]);
    let mut cluster = Cluster::start(Flavor::Ours, 3, &args).await.unwrap();
    let status = cluster.members[2].terminate().unwrap();
    assert!(status.success());
    // 2,000 writes: the leader's log is compacted far past member 3.
    let urls = [
        cluster.members[0].client_url(),
        cluster.members[1].client_url(),
    ];
    let mut tasks = Vec::new();
    for w in 0..8 {
        let url = urls[w % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut kv = rsetcd::proto::etcdserverpb::kv_client::KvClient::connect(url)
                .await
                .unwrap();
            for i in 0..250 {
                kv.put(put_request(
                    format!("w{w}/{i:05}").into_bytes(),
                    vec![b'v'; 64],
                ))
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    cluster.restart(2).unwrap();
    cluster.members[2]
        .wait_serving(Duration::from_secs(60))
        .await
        .unwrap();
    assert_converged(&mut cluster).await;
    let log = cluster.members[2].log();
    assert!(
        log.contains("installed the leader's snapshot"),
        "member 3 should have caught up by snapshot:\n{log}"
    );
    let keys: Vec<String> = (0..8)
        .flat_map(|w| (0..250).map(move |i| format!("w{w}/{i:05}")))
        .collect();
    assert_has_keys(&cluster, 2, &keys).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_leader_and_graceful_stop_hand_over_leadership() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(Flavor::Ours, 3, &TIMING).await.unwrap();
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let target = (leader + 1) % 3;
    let target_id = cluster.members[target]
        .status()
        .await
        .unwrap()
        .header
        .unwrap()
        .member_id;
    // Only the leader moves leadership.
    let mut follower = cluster.members[target].maintenance().await.unwrap();
    let err = follower
        .move_leader(MoveLeaderRequest { target_id })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: not leader");
    let mut m = cluster.members[leader].maintenance().await.unwrap();
    let err = m
        .move_leader(MoveLeaderRequest { target_id: 42 })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: bad leader transferee");
    m.move_leader(MoveLeaderRequest { target_id })
        .await
        .unwrap();
    assert_eq!(
        cluster.leader(Duration::from_secs(5)).await.unwrap(),
        target
    );
    // A leader stopped with SIGTERM hands leadership over first.
    let started = Instant::now();
    cluster.members[target].terminate().unwrap();
    let log = cluster.members[target].log();
    assert!(log.contains("leadership transfer finished"), "{log}");
    let next = cluster.leader(Duration::from_secs(5)).await.unwrap();
    assert_ne!(next, target);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no election timeout was waited for"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_another_cluster_is_refused() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(Flavor::Ours, 3, &TIMING).await.unwrap();
    // m3's data is wiped and it comes back with another token: its ids and
    // cluster id differ, so the others refuse its traffic and it never
    // gets a leader.
    cluster.members[2].kill9();
    std::fs::remove_dir_all(&cluster.members[2].data_dir).unwrap();
    let m = &cluster.members[2];
    let initial = cluster
        .members
        .iter()
        .map(|x| format!("{}={}", x.name, x.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    let log_path = m.data_dir.with_extension("other.log");
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_etcd"));
    cmd.args([
        format!("--name={}", m.name),
        format!("--data-dir={}", m.data_dir.display()),
        format!("--listen-client-urls={}", m.client_url()),
        format!("--advertise-client-urls={}", m.client_url()),
        format!("--listen-peer-urls={}", m.peer_url()),
        format!("--initial-advertise-peer-urls={}", m.peer_url()),
        format!("--initial-cluster={initial}"),
        "--initial-cluster-token=another-token".to_string(),
    ]);
    let mut outsider = Proc::spawn(&m.name, cmd, &log_path).unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    outsider.kill9();
    let theirs = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        theirs.contains("request cluster ID mismatch"),
        "the outsider is told why:\n{theirs}"
    );
    let ours = cluster.members[0].log() + &cluster.members[1].log();
    assert!(
        ours.contains("request cluster ID mismatch"),
        "the cluster logs the refusal"
    );
    assert!(
        !theirs.contains("elected leader"),
        "the outsider must not join a quorum"
    );
}

/// The body of `path` on 127.0.0.1:`port`.
async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    Ok(support::http::get(&format!("127.0.0.1:{port}"), path)
        .await?
        .1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_turns_false_when_the_member_loses_its_leader() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(Flavor::Ours, 3, &TIMING).await.unwrap();
    let port = cluster.members[0].client_port;
    assert_eq!(
        http_get(port, "/health").await.unwrap(),
        r#"{"health":"true","reason":""}"#
    );
    // Without a quorum, check-quorum makes a leader step down and a
    // follower loses its leader: /health says so, as etcd 3.5's does.
    cluster.members[1].kill9();
    cluster.members[2].kill9();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let body = http_get(port, "/health").await.unwrap_or_default();
        if body == r#"{"health":"false","reason":"RAFT NO LEADER"}"# {
            break;
        }
        assert!(Instant::now() < deadline, "/health still says {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The serializable check does not need a leader.
    assert_eq!(
        http_get(port, "/health?serializable=true").await.unwrap(),
        r#"{"health":"true","reason":""}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_cut_off_commits_nothing_and_serves_no_stale_read() {
    let _serial = SERIAL.lock().await;
    let (mut cluster, proxies) = Cluster::start_behind_proxies(Flavor::Ours, 3, &TIMING)
        .await
        .unwrap();
    let mut kv = cluster.members[0].kv().await.unwrap();
    kv.put(put_request(b"k".to_vec(), b"before".to_vec()))
        .await
        .unwrap();
    let old = cluster.leader(Duration::from_secs(10)).await.unwrap();
    // Nothing reaches the old leader any more; it keeps running and keeps
    // serving its clients.
    proxies[old].cut();
    let others: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let new = cluster
        .leader_of(&others, Duration::from_secs(10))
        .await
        .unwrap();
    assert_ne!(new, old);
    let mut majority = cluster.members[new].kv().await.unwrap();
    majority
        .put(put_request(b"k".to_vec(), b"after".to_vec()))
        .await
        .unwrap();
    // The minority acknowledges no write and answers no linearizable read
    // (a stale "before" would be the bug).
    let minority = cluster.members[old].channel().await.unwrap();
    let mut write = rsetcd::proto::etcdserverpb::kv_client::KvClient::new(minority.clone());
    let mut read = rsetcd::proto::etcdserverpb::kv_client::KvClient::new(minority);
    let (w, r) = tokio::join!(
        write.put(put_request(b"minority".to_vec(), b"x".to_vec())),
        read.range(RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
    );
    assert!(w.is_err(), "the cut-off leader acknowledged a write");
    match r {
        Ok(r) => panic!(
            "the cut-off member served a linearizable read: {:?}",
            String::from_utf8_lossy(&r.into_inner().kvs[0].value)
        ),
        Err(e) => assert!(
            e.message().contains("request timed out") || e.message().contains("leader changed"),
            "{e}"
        ),
    }
    // Healed: it follows the new leader and reads the new value.
    proxies[old].heal();
    let mut kv = cluster.members[old].kv().await.unwrap();
    assert_eq!(first_linearizable_value(&mut kv, b"k").await, b"after");
    assert_converged(&mut cluster).await;
}

/// etcd's ensureLeadership (3.5.8, #15247): a leader cut off from the
/// others still believes it leads for an election timeout; a keep-alive it
/// answered then would extend a lease the majority is about to let
/// expire (and hand its lock to another client). It must confirm its
/// leadership first, so no keep-alive sent after the cut is answered with
/// a TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_leader_renews_no_lease() {
    use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
    use rsetcd::proto::etcdserverpb::{LeaseGrantRequest, LeaseKeepAliveRequest};
    let _serial = SERIAL.lock().await;
    let (mut cluster, proxies) = Cluster::start_behind_proxies(Flavor::Ours, 3, &TIMING)
        .await
        .unwrap();
    let old = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let mut lease = LeaseClient::new(cluster.members[old].channel().await.unwrap());
    let id = lease
        .lease_grant(LeaseGrantRequest { ttl: 5, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    let mut answers = lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = answers.message().await.unwrap().unwrap();
    assert_eq!(first.ttl, 5);
    proxies[old].cut();
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(20), answers.message()).await {
        Ok(Ok(Some(r))) => panic!("the cut-off leader renewed the lease: {r:?}"),
        Ok(Err(status)) => eprintln!("keep-alive refused: {status:?}"),
        Ok(Ok(None)) => {}
        Err(_) => panic!("the keep-alive was never answered"),
    }
    proxies[old].heal();
    assert_converged(&mut cluster).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_reconfig_check_refuses_changes_that_risk_the_quorum() {
    let _serial = SERIAL.lock().await;
    let mut cluster = Cluster::start(Flavor::Ours, 3, &TIMING).await.unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let down = (leader + 2) % 3;
    let up = (leader + 1) % 3;
    let up_id = cluster.members[up]
        .status()
        .await
        .unwrap()
        .header
        .unwrap()
        .member_id;
    cluster.members[down].kill9();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut api = cluster.members[leader].cluster().await.unwrap();
    // A new voter while a member is down: etcd's "unhealthy cluster".
    let err = api
        .member_add(MemberAddRequest {
            peer_ur_ls: vec!["http://127.0.0.1:1".into()],
            is_learner: false,
        })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "etcdserver: unhealthy cluster");
    // Removing the other live member would leave one of two: refused.
    let err = api
        .member_remove(MemberRemoveRequest { id: up_id })
        .await
        .unwrap_err();
    assert_eq!(
        err.message(),
        "etcdserver: re-configuration failed due to not enough started members"
    );
    // A learner does not count: it may be added.
    api.member_add(MemberAddRequest {
        peer_ur_ls: vec!["http://127.0.0.1:1".into()],
        is_learner: true,
    })
    .await
    .unwrap();
}

/// A ReadIndex request lost on its way to the leader is asked again, as
/// etcd asks every 500 ms (raft drops without a word the requests it
/// cannot serve, such as those a new leader gets before it has committed
/// in its term): a linearizable read on a follower whose link to the
/// leader broke for a second succeeds once the link is back, with the same
/// leader, instead of timing out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_read_index_is_asked_again() {
    let _serial = SERIAL.lock().await;
    // an election timeout well past the cut: the leader stays the leader
    let timing = ["--heartbeat-interval=100", "--election-timeout=3000"];
    let (mut cluster, proxies) = Cluster::start_behind_proxies(Flavor::Ours, 3, &timing)
        .await
        .unwrap();
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();
    let follower = (leader + 1) % 3;
    let mut kv = cluster.members[follower].kv().await.unwrap();
    let read = RangeRequest {
        key: b"k".to_vec(),
        ..Default::default()
    };
    kv.range(read.clone()).await.unwrap();

    proxies[leader].cut();
    let pending = tokio::spawn(async move { kv.range(read).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxies[leader].heal();
    let answer = pending.await.unwrap();
    assert!(answer.is_ok(), "the read was not asked again: {answer:?}");
    assert_eq!(
        cluster.leader(Duration::from_secs(10)).await.unwrap(),
        leader
    );
}
