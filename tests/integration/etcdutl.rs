//! `etcdutl` against real data: our `etcd` writes keys and stops, its
//! backend becomes a snapshot file (with and without etcd's SHA-256
//! trailer), and what `snapshot restore`, `backup` and `hashkv` make of it
//! is checked by starting `etcd` on the result and asking it over gRPC:
//! the keys are served, the member and cluster ids are the new cluster's,
//! the revision is bumped and a watcher resuming from an old revision is
//! told it was compacted.
//!
//! What "equal" means after a restore: by default the restored revision
//! is bumped and everything up to it compacted, so the new cluster holds,
//! for every key live at the snapshot's revision R, exactly the record of
//! its last change at or before R (same key, value, create and mod
//! revisions, version and lease), and nothing older. Its HashKV at its
//! current revision therefore equals the old cluster's HashKV at R once the
//! old cluster is compacted at R (HashKV hashes the records kept up to a
//! revision). With `--bump-revision 0` the whole history is kept and the
//! HashKV at R is equal without compacting anything.

use crate::support;
use crate::support::cluster::Flavor;
use crate::support::member::Member;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use rsetcd::proto::etcdserverpb::cluster_client::ClusterClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::{
    watch_request, CompactionRequest, DeleteRangeRequest, HashKvRequest, LeaseGrantRequest,
    LeaseTimeToLiveRequest, MemberListRequest, PutRequest, RangeRequest, SnapshotRequest,
    WatchCreateRequest, WatchRequest,
};
use rsetcd::proto::mvccpb::KeyValue;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

const BUMP: i64 = 1_000_000_000;

fn free_port() -> u16 {
    support::cluster::free_port().expect("a free port")
}

/// One `etcd` process of ours, killed on drop.
struct Etcd {
    member: Member,
}

impl Etcd {
    /// Starts `etcd --name <name> --data-dir <data_dir>` on fresh ports with
    /// `extra` flags (a restored member needs no --initial-cluster).
    fn start(name: &str, data_dir: &Path, peer_port: u16, extra: &[String]) -> Etcd {
        let mut member = Member::new(
            name,
            Flavor::Ours,
            free_port(),
            peer_port,
            data_dir.to_path_buf(),
        )
        .inherit_env(&[]);
        let (client_url, peer_url) = (member.client_url(), member.peer_url());
        member.args = vec![
            format!("--name={name}"),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
        ];
        member.args.extend(extra.iter().cloned());
        member.start().expect("start etcd");
        Etcd { member }
    }

    fn peer_url(&self) -> String {
        self.member.peer_url()
    }

    async fn channel(&self) -> anyhow::Result<Channel> {
        self.member.channel().await
    }

    async fn kv(&self) -> KvClient<Channel> {
        KvClient::new(self.channel().await.expect("connect"))
    }

    /// Waits until a linearizable read succeeds.
    async fn wait_serving(&mut self) {
        self.member
            .wait_serving(Duration::from_secs(30))
            .await
            .expect("serving");
    }

    /// SIGTERM and wait: a clean stop leaves every answered write in the
    /// backend. Async, so that the test's runtime can close its client
    /// connections, which the server waits for.
    async fn stop(&mut self) {
        if !self.member.is_running() {
            return;
        }
        self.member.signal(Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.member.exited().expect("wait").is_none() {
            assert!(
                Instant::now() < deadline,
                "{} did not stop",
                self.member.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn etcdutl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_etcdutl"))
        .args(args)
        .output()
        .expect("run etcdutl")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "etcdutl failed: {}", stderr(&o));
    stdout(&o)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// What the original member held when it stopped.
struct Original {
    dir: tempfile::TempDir,
    data_dir: PathBuf,
    /// Its backend file copied out of the data dir: a snapshot without
    /// trailer.
    raw_snapshot: PathBuf,
    revision: i64,
    hash: u32,
    cluster_id: u64,
    member_id: u64,
    lease: i64,
}

/// Starts a member, writes a=1, b=2, a=3, deletes b, puts `l` on a lease,
/// records HashKV and ids, stops it and copies its backend out.
async fn original() -> Original {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("orig");
    let peer = free_port();
    let mut etcd = Etcd::start(
        "orig",
        &data_dir,
        peer,
        &[format!("--initial-cluster=orig=http://127.0.0.1:{peer}")],
    );
    etcd.wait_serving().await;
    let mut kv = etcd.kv().await;
    for (k, v) in [("a", "1"), ("b", "2"), ("a", "3")] {
        kv.put(put(k, v)).await.expect("put");
    }
    kv.delete_range(DeleteRangeRequest {
        key: b"b".to_vec(),
        ..Default::default()
    })
    .await
    .expect("delete");
    let lease = LeaseClient::new(etcd.channel().await.expect("connect"))
        .lease_grant(LeaseGrantRequest { ttl: 600, id: 0 })
        .await
        .expect("lease grant")
        .into_inner()
        .id;
    kv.put(PutRequest {
        lease,
        ..put("l", "leased")
    })
    .await
    .expect("put with lease");
    // A linearizable read first: HashKV alone may not yet see the last
    // answered write (it does not wait for the backend commit as reads do).
    kv.range(RangeRequest {
        key: b"l".to_vec(),
        ..Default::default()
    })
    .await
    .expect("range");
    let h = MaintenanceClient::new(etcd.channel().await.expect("connect"))
        .hash_kv(HashKvRequest { revision: 0 })
        .await
        .expect("hashkv")
        .into_inner();
    let header = h.header.expect("header");
    drop(kv);
    etcd.stop().await;
    let raw_snapshot = dir.path().join("raw.db");
    std::fs::copy(data_dir.join("member/snap/db"), &raw_snapshot).expect("copy backend");
    Original {
        dir,
        data_dir,
        raw_snapshot,
        revision: header.revision,
        hash: h.hash,
        cluster_id: header.cluster_id,
        member_id: header.member_id,
        lease,
    }
}

fn put(k: &str, v: &str) -> PutRequest {
    PutRequest {
        key: k.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

/// The snapshot file etcd's Snapshot RPC sends: the backend, then its
/// SHA-256.
fn with_trailer(raw: &Path, out: &Path) {
    let mut bytes = std::fs::read(raw).expect("read snapshot");
    let sum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&sum);
    std::fs::write(out, bytes).expect("write snapshot");
}

async fn get(etcd: &Etcd, key: &str, rev: i64) -> (Option<String>, i64) {
    let r = etcd
        .kv()
        .await
        .range(RangeRequest {
            key: key.as_bytes().to_vec(),
            revision: rev,
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    (
        r.kvs
            .first()
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
        r.header.expect("header").revision,
    )
}

/// (member ids, cluster id) from MemberList.
async fn members(etcd: &Etcd) -> (Vec<(u64, String, Vec<String>)>, u64) {
    let r = ClusterClient::new(etcd.channel().await.expect("connect"))
        .member_list(MemberListRequest { linearizable: true })
        .await
        .expect("member list")
        .into_inner();
    let mut ms: Vec<_> = r
        .members
        .into_iter()
        .map(|m| (m.id, m.name, m.peer_ur_ls))
        .collect();
    ms.sort();
    (ms, r.header.expect("header").cluster_id)
}

/// The first answer to a watch on `key` from `start_revision`.
async fn watch_from(etcd: &Etcd, key: &str, start_revision: i64) -> (bool, i64, usize) {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: key.as_bytes().to_vec(),
                start_revision,
                ..Default::default()
            },
        )),
    })
    .await
    .expect("queue watch");
    let mut stream = WatchClient::new(etcd.channel().await.expect("connect"))
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .expect("watch")
        .into_inner();
    loop {
        let r = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("watch answer in time")
            .expect("watch stream")
            .expect("watch response");
        if r.created && r.events.is_empty() && !r.canceled {
            continue;
        }
        return (r.canceled, r.compact_revision, r.events.len());
    }
}

fn restore(snapshot: &Path, data_dir: &Path, name: &str, cluster: &str, extra: &[&str]) -> Output {
    let own = cluster
        .split(',')
        .find_map(|m| m.strip_prefix(&format!("{name}=")))
        .expect("name in cluster");
    let mut args = vec![
        "snapshot",
        "restore",
        s(snapshot),
        "--data-dir",
        s(data_dir),
        "--name",
        name,
        "--initial-cluster",
        cluster,
        "--initial-advertise-peer-urls",
        own,
        "--initial-cluster-token",
        "restored",
    ];
    args.extend_from_slice(extra);
    etcdutl(&args)
}

#[tokio::test]
async fn restore_one_member_from_a_copied_backend() {
    let orig = original().await;
    let dir = orig.dir.path();

    // hashkv offline equals what the server answered before it stopped.
    let simple = ok(etcdutl(&["hashkv", s(&orig.data_dir)]));
    assert_eq!(simple, format!("{}, {}, -1\n", orig.hash, orig.revision));
    let json: serde_json::Value =
        serde_json::from_str(&ok(etcdutl(&["hashkv", s(&orig.data_dir), "-w", "json"])))
            .expect("json");
    assert_eq!(json["hash"], orig.hash);
    assert_eq!(json["hashRevision"], orig.revision);

    // status: etcd's formats; the revision is the member's.
    let line = ok(etcdutl(&["snapshot", "status", s(&orig.raw_snapshot)]));
    let fields: Vec<&str> = line.trim_end().split(", ").collect();
    assert_eq!(fields.len(), 4, "{line}");
    assert_eq!(fields[1], orig.revision.to_string());
    assert!(fields[3].ends_with("kB"), "{line}");
    let json: serde_json::Value = serde_json::from_str(&ok(etcdutl(&[
        "snapshot",
        "status",
        s(&orig.raw_snapshot),
        "-w",
        "json",
    ])))
    .expect("json");
    assert_eq!(json["revision"], orig.revision);
    assert_eq!(
        format!("{:x}", json["hash"].as_u64().expect("hash")),
        fields[0]
    );
    let table = ok(etcdutl(&[
        "snapshot",
        "status",
        s(&orig.raw_snapshot),
        "-w",
        "table",
    ]));
    // The HASH column is as wide as the hash's hex digits (7 or 8).
    let header = table.lines().nth(1).unwrap_or_default();
    assert!(
        header.starts_with("|  ")
            && header
                .trim_start_matches('|')
                .trim_start()
                .starts_with("HASH")
            && header.ends_with("| REVISION | TOTAL KEYS | TOTAL SIZE |"),
        "{table}"
    );
    let row = table.lines().nth(3).unwrap_or_default();
    assert!(row.starts_with(&format!("| {} |", fields[0])), "{table}");
    let pb = etcdutl(&[
        "snapshot",
        "status",
        s(&orig.raw_snapshot),
        "-w",
        "protobuf",
    ]);
    assert_eq!(pb.status.code(), Some(4));
    assert_eq!(
        stderr(&pb),
        "Error: protobuf not supported as output format\n"
    );
    let missing = etcdutl(&["snapshot", "status", s(&dir.join("nope.db"))]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing),
        format!(
            "Error: stat {}: no such file or directory\n",
            s(&dir.join("nope.db"))
        )
    );
    let no_arg = etcdutl(&["snapshot", "status"]);
    assert_eq!(no_arg.status.code(), Some(128));
    assert_eq!(
        stderr(&no_arg),
        "Error: snapshot status requires exactly one argument\n"
    );
    let text = dir.join("notes.txt");
    std::fs::write(&text, "hello\n").expect("write");
    let not_backend = etcdutl(&["snapshot", "status", s(&text)]);
    assert_eq!(not_backend.status.code(), Some(1));
    assert!(
        stderr(&not_backend).starts_with(&format!("Error: {} is not an etcd backend", s(&text))),
        "{}",
        stderr(&not_backend)
    );

    let peer = free_port();
    let cluster = format!("r1=http://127.0.0.1:{peer}");
    let r1 = dir.join("r1");

    // A backend copied out of a data dir has no trailer.
    let refused = restore(&orig.raw_snapshot, &r1, "r1", &cluster, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).ends_with("Error: snapshot missing hash but --skip-hash-check=false\n"),
        "{}",
        stderr(&refused)
    );
    assert!(!r1.exists(), "a failed restore leaves no data dir behind");

    // A damaged snapshot fails its trailer check.
    let good = dir.join("good.db");
    with_trailer(&orig.raw_snapshot, &good);
    let mut damaged = std::fs::read(&good).expect("read");
    damaged[5000] ^= 0x40;
    let bad = dir.join("bad.db");
    std::fs::write(&bad, damaged).expect("write");
    let refused = restore(&bad, &r1, "r1", &cluster, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("Error: expected sha256 ["),
        "{}",
        stderr(&refused)
    );
    assert!(!r1.exists());

    // Something that is not a backend is named as such.
    let big_text = dir.join("notes-4k.txt");
    std::fs::write(&big_text, "hello\n".repeat(700)).expect("write");
    let refused = restore(&big_text, &r1, "r1", &cluster, &["--skip-hash-check"]);
    assert!(
        stderr(&refused).contains(&format!("Error: {} is not an etcd backend", s(&big_text))),
        "{}",
        stderr(&refused)
    );
    assert!(!r1.exists());

    // The trailer does not change what the snapshot holds.
    assert_eq!(
        ok(etcdutl(&["snapshot", "status", s(&good)])),
        ok(etcdutl(&["snapshot", "status", s(&orig.raw_snapshot)]))
    );

    // Flag rules as etcd 3.5's.
    for extra in [
        &["--bump-revision", "5"][..],
        &["--bump-revision", "0", "--mark-compacted"],
    ] {
        let o = restore(&good, &r1, "r1", &cluster, extra);
        assert_eq!(o.status.code(), Some(128), "{extra:?}");
        assert_eq!(
            stderr(&o),
            "Error: --mark-compacted required if --revision-bump > 0\n"
        );
    }

    let restored = restore(&good, &r1, "r1", &cluster, &[]);
    let log = stderr(&restored);
    assert!(restored.status.success(), "{log}");
    assert!(
        log.contains("restoring snapshot") && log.contains("restored snapshot"),
        "{log}"
    );
    let again = restore(&good, &r1, "r1", &cluster, &[]);
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        format!("Error: data-dir {:?} exists\n", s(&r1))
    );

    // Started with nothing but its name and data dir, it serves the keys
    // as a member of the new cluster.
    let mut etcd = Etcd::start("r1", &r1, peer, &[]);
    etcd.wait_serving().await;
    let want = rsetcd::cluster::initial_members(&[("r1".to_string(), etcd.peer_url())], "restored");
    let want_cluster = rsetcd::cluster::initial_cluster_id(&want);
    let (ms, cluster_id) = members(&etcd).await;
    assert_eq!(cluster_id, want_cluster);
    assert_ne!(cluster_id, orig.cluster_id);
    assert_eq!(ms.len(), 1);
    assert_eq!(ms[0].0, want[0].id);
    assert_ne!(ms[0].0, orig.member_id);
    assert_eq!(ms[0].2, vec![etcd.peer_url()]);

    let (a, rev) = get(&etcd, "a", 0).await;
    assert_eq!(a.as_deref(), Some("3"));
    assert_eq!(rev, orig.revision + BUMP, "the revision is bumped");
    assert_eq!(get(&etcd, "b", 0).await.0, None);
    assert_eq!(get(&etcd, "l", 0).await.0.as_deref(), Some("leased"));

    // A watcher resuming from a revision of the old cluster is told its
    // history is gone.
    let (canceled, compact_revision, _) = watch_from(&etcd, "a", 2).await;
    assert!(canceled);
    assert_eq!(compact_revision, orig.revision + BUMP);

    // Leases survive the restore with their keys.
    let ttl = LeaseClient::new(etcd.channel().await.expect("connect"))
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: orig.lease,
            keys: true,
        })
        .await
        .expect("time to live")
        .into_inner();
    assert!(ttl.ttl > 0, "{ttl:?}");
    assert_eq!(ttl.keys, vec![b"l".to_vec()]);

    let written = etcd
        .kv()
        .await
        .put(put("c", "new"))
        .await
        .expect("put")
        .into_inner();
    assert_eq!(
        written.header.expect("header").revision,
        orig.revision + BUMP + 1
    );
}

#[tokio::test]
async fn restore_without_bump_keeps_revisions_and_history() {
    let orig = original().await;
    let dir = orig.dir.path();
    let peer = free_port();
    let cluster = format!("r0=http://127.0.0.1:{peer}");
    let r0 = dir.join("r0");
    ok(restore(
        &orig.raw_snapshot,
        &r0,
        "r0",
        &cluster,
        &["--skip-hash-check", "--bump-revision", "0"],
    ));
    // Offline, the restored backend hashes as the original did.
    assert_eq!(
        ok(etcdutl(&["hashkv", s(&r0)])),
        format!("{}, {}, -1\n", orig.hash, orig.revision)
    );
    let mut etcd = Etcd::start("r0", &r0, peer, &[]);
    etcd.wait_serving().await;
    assert_eq!(get(&etcd, "a", 0).await, (Some("3".into()), orig.revision));
    assert_eq!(get(&etcd, "a", 2).await.0.as_deref(), Some("1"));
    let (canceled, _, events) = watch_from(&etcd, "a", 2).await;
    assert!(!canceled);
    assert!(events >= 1);
    let h = MaintenanceClient::new(etcd.channel().await.expect("connect"))
        .hash_kv(HashKvRequest {
            revision: orig.revision,
        })
        .await
        .expect("hashkv")
        .into_inner();
    assert_eq!(h.hash, orig.hash, "the same history hashes the same");
}

#[tokio::test]
async fn restore_into_three_members_makes_a_new_cluster() {
    let orig = original().await;
    let dir = orig.dir.path();
    let snapshot = dir.join("good.db");
    with_trailer(&orig.raw_snapshot, &snapshot);
    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cluster = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{}=http://127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (i, &p) in peers.iter().enumerate() {
        let name = format!("n{}", i + 1);
        let data_dir = dir.join(&name);
        ok(restore(&snapshot, &data_dir, &name, &cluster, &[]));
        nodes.push(Etcd::start(&name, &data_dir, p, &[]));
    }
    for n in &mut nodes {
        n.wait_serving().await;
    }
    let initial: Vec<(String, String)> = peers
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("n{}", i + 1), format!("http://127.0.0.1:{p}")))
        .collect();
    let want = rsetcd::cluster::initial_members(&initial, "restored");
    let want_ids: Vec<u64> = {
        let mut ids: Vec<u64> = want.iter().map(|m| m.id).collect();
        ids.sort();
        ids
    };
    for n in &nodes {
        let (ms, cluster_id) = members(n).await;
        assert_eq!(cluster_id, rsetcd::cluster::initial_cluster_id(&want));
        assert_eq!(ms.iter().map(|m| m.0).collect::<Vec<_>>(), want_ids);
        assert_eq!(
            get(n, "a", 0).await,
            (Some("3".into()), orig.revision + BUMP)
        );
    }
    // The three replicate: a write through one is read through another.
    nodes[0]
        .kv()
        .await
        .put(put("after", "restore"))
        .await
        .expect("put");
    assert_eq!(
        get(&nodes[2], "after", 0).await.0.as_deref(),
        Some("restore")
    );
    let (canceled, compact_revision, _) = watch_from(&nodes[1], "a", orig.revision).await;
    assert!(canceled);
    assert_eq!(compact_revision, orig.revision + BUMP);
}

#[tokio::test]
async fn backup_copies_the_data_under_a_new_identity() {
    let orig = original().await;
    let dir = orig.dir.path();
    let backup_dir = dir.join("backup");
    let o = etcdutl(&[
        "backup",
        "--data-dir",
        s(&orig.data_dir),
        "--backup-dir",
        s(&backup_dir),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let again = etcdutl(&[
        "backup",
        "--data-dir",
        s(&orig.data_dir),
        "--backup-dir",
        s(&backup_dir),
    ]);
    assert_eq!(again.status.code(), Some(1), "a backup never overwrites");
    // The source is untouched: it still hashes as before.
    assert_eq!(
        ok(etcdutl(&["hashkv", s(&orig.data_dir)])),
        format!("{}, {}, -1\n", orig.hash, orig.revision)
    );

    let mut etcd = Etcd::start("copy", &backup_dir, free_port(), &[]);
    etcd.wait_serving().await;
    assert_eq!(get(&etcd, "a", 0).await.0.as_deref(), Some("3"));
    assert_eq!(get(&etcd, "a", 2).await.0.as_deref(), Some("1"));
    let (ms, cluster_id) = members(&etcd).await;
    assert_ne!(cluster_id, orig.cluster_id);
    assert_eq!(ms.len(), 1);
    assert_ne!(ms[0].0, orig.member_id);
    assert_eq!(
        ms[0].2,
        vec!["http://use-flag--force-new-cluster:2080".to_string()]
    );
    etcd.kv()
        .await
        .put(put("x", "y"))
        .await
        .expect("the copy takes writes");
}

/// Every key at `rev` (0: the newest), through `channel`.
async fn all_kvs(channel: Channel, rev: i64) -> (Vec<KeyValue>, i64) {
    let r = KvClient::new(channel)
        .range(RangeRequest {
            key: b"\0".to_vec(),
            range_end: b"\0".to_vec(),
            revision: rev,
            ..Default::default()
        })
        .await
        .expect("range all")
        .into_inner();
    (r.kvs, r.header.expect("header").revision)
}

/// The Snapshot RPC's stream written to `out`, as `etcdctl snapshot save`
/// writes it: every blob in order (the backend, then its SHA-256).
async fn save_snapshot(channel: Channel, out: &Path) -> usize {
    let mut stream = MaintenanceClient::new(channel)
        .snapshot(SnapshotRequest {})
        .await
        .expect("snapshot")
        .into_inner();
    let mut bytes = Vec::new();
    let mut last_blob = 0;
    while let Some(chunk) = stream.message().await.expect("snapshot stream") {
        last_blob = chunk.blob.len();
        bytes.extend_from_slice(&chunk.blob);
    }
    assert_eq!(last_blob, 32, "the stream ends with the SHA-256");
    std::fs::write(out, &bytes).expect("write snapshot");
    bytes.len()
}

/// The path users take: snapshot a three-member cluster while it takes
/// writes, restore the file into three new data dirs, start them: the new
/// cluster serves the keys the snapshot held, its HashKV matches the old
/// cluster's at the snapshot's revision (see the module comment for what
/// "equal" means after the bump), and a watcher of the old cluster
/// resuming against the new one is told its revision was compacted.
#[tokio::test]
async fn snapshot_of_a_loaded_cluster_restores_into_a_new_cluster() {
    let old = support::cluster::Cluster::start(support::cluster::Flavor::Ours, 3, &[])
        .await
        .expect("old cluster");
    let mut kv = old.members[0].kv().await.expect("connect");
    let mut seen = 0;
    for i in 0..50 {
        seen = kv
            .put(put(&format!("k{i:02}"), "v0"))
            .await
            .expect("put")
            .into_inner()
            .header
            .expect("header")
            .revision;
    }
    // A writer keeps going through m1 while m3 is snapshotted.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        let mut kv = old.members[0].kv().await.expect("connect");
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("k{:02}", i % 60);
                if i % 7 == 3 {
                    kv.delete_range(DeleteRangeRequest {
                        key: key.into_bytes(),
                        ..Default::default()
                    })
                    .await
                    .expect("delete under load");
                } else {
                    kv.put(put(&key, &format!("v{i}")))
                        .await
                        .expect("put under load");
                }
                i += 1;
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let snapshot = dir.path().join("cluster.db");
    save_snapshot(old.members[2].channel().await.expect("connect"), &snapshot).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = load.await.expect("load task");
    assert!(writes > 20, "the cluster was under load ({writes} writes)");

    let status: serde_json::Value = serde_json::from_str(&ok(etcdutl(&[
        "snapshot",
        "status",
        s(&snapshot),
        "-w",
        "json",
    ])))
    .expect("json");
    let r = status["revision"].as_i64().expect("revision");
    let (_, old_now) = all_kvs(old.members[0].channel().await.expect("connect"), 0).await;
    assert!(
        seen < r && r < old_now,
        "snapshot taken mid-load: {seen} < {r} < {old_now}"
    );

    let peers: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cluster = peers
        .iter()
        .enumerate()
        .map(|(i, p)| format!("n{}=http://127.0.0.1:{p}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for (i, &p) in peers.iter().enumerate() {
        let name = format!("n{}", i + 1);
        let data_dir = dir.path().join(&name);
        // The trailer the server appended is checked (no --skip-hash-check).
        ok(restore(&snapshot, &data_dir, &name, &cluster, &[]));
        nodes.push(Etcd::start(&name, &data_dir, p, &[]));
    }
    for n in &mut nodes {
        n.wait_serving().await;
    }

    // Same keys, values and revisions as the old cluster at R.
    let (want, _) = all_kvs(old.members[0].channel().await.expect("connect"), r).await;
    assert!(!want.is_empty());
    for n in &nodes {
        let (got, rev) = all_kvs(n.channel().await.expect("connect"), 0).await;
        assert_eq!(rev, r + BUMP);
        assert_eq!(got, want, "{} serves the snapshot's keys", n.member.name);
    }

    // HashKV: the old cluster compacted at R hashes, up to R, exactly the
    // records the restore kept.
    KvClient::new(old.members[0].channel().await.expect("connect"))
        .compact(CompactionRequest {
            revision: r,
            physical: true,
        })
        .await
        .expect("compact the old cluster at R");
    // the member the compaction was sent to has applied it when it answers
    let (old_hash, _) = old.members[0].hash_kv(r).await.expect("old hashkv");
    for n in &nodes {
        let h = MaintenanceClient::new(n.channel().await.expect("connect"))
            .hash_kv(HashKvRequest { revision: 0 })
            .await
            .expect("new hashkv")
            .into_inner();
        assert_eq!(
            h.hash, old_hash,
            "{} hashes as the old cluster at R",
            n.member.name
        );
        assert_eq!(h.hash_revision, r + BUMP);
        assert_eq!(h.compact_revision, r + BUMP);
    }

    // A watcher of the old cluster that had seen `seen` resumes here.
    let (canceled, compact_revision, _) = watch_from(&nodes[2], "k01", seen + 1).await;
    assert!(canceled);
    assert_eq!(compact_revision, r + BUMP);
}
