//! Damaged data as a user sees it with our `etcd`.
//!
//! A member whose own files are damaged while it is stopped — a WAL record
//! with a bad checksum in the middle of a segment, an LMDB backend with
//! garbage over its meta pages, truncated, with garbage tree pages, or with
//! an undecodable record — refuses to start: exit code 1 and a message that
//! names the file, never a crash and never serving what it has.
//!
//! Data that is well formed but differs from the other members' (a value
//! rewritten in a stopped member's backend) is found by the corruption
//! checks: with `--experimental-initial-corrupt-check` the member refuses
//! to start; with `--experimental-corrupt-check-time` the leader raises the
//! CORRUPT alarm, which every member lists.

use crate::support;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rsetcd::proto::etcdserverpb::alarm_request::AlarmAction;
use rsetcd::proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmType, PutRequest, RangeRequest};
use support::cluster::{Cluster, Flavor};

const KEYS: usize = 50;
const ORIGINAL: &[u8] = b"the-original-value";
const DIFFERENT: &[u8] = b"a-different-value!";

/// A copy of a directory tree (data dirs hold plain files and dirs).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create dir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

fn wal_segment(data_dir: &Path) -> PathBuf {
    let wal = data_dir.join("member/wal");
    let mut segments: Vec<PathBuf> = std::fs::read_dir(&wal)
        .expect("wal dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "wal"))
        .collect();
    segments.sort();
    segments.into_iter().next().expect("a wal segment")
}

fn backend(data_dir: &Path) -> PathBuf {
    data_dir.join("member/snap/db")
}

/// Flips a byte in the payload of the 5th record of the first segment (the
/// record layout is `len u32 | crc u32 | kind u8 | payload`): valid records
/// follow it, so it is not a torn tail.
fn damage_wal_record(data_dir: &Path) -> PathBuf {
    let path = wal_segment(data_dir);
    let mut bytes = std::fs::read(&path).expect("read wal");
    let mut at = 0;
    for _ in 0..4 {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        at += 9 + len;
    }
    bytes[at + 9 + 1] ^= 0xff;
    std::fs::write(&path, bytes).expect("write wal");
    path
}

fn damage_backend(data_dir: &Path, how: fn(&mut Vec<u8>)) -> PathBuf {
    let path = backend(data_dir);
    let mut bytes = std::fs::read(&path).expect("read db");
    how(&mut bytes);
    std::fs::write(&path, bytes).expect("write db");
    path
}

/// Pseudo-random bytes over everything after the two 4 KiB meta pages,
/// keeping each page's own header (so only the contents are garbage).
fn garbage_tree_pages(bytes: &mut [u8]) {
    let mut x: u32 = 0x2545_f491;
    for (i, b) in bytes.iter_mut().enumerate().skip(2 * 4096) {
        if i % 4096 < 16 {
            continue;
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
}

/// Garbage over the protobuf record of `key7` (its key, revisions and
/// value), leaving LMDB's structure intact.
fn garbage_record(bytes: &mut [u8]) {
    // every copy: pages an earlier commit freed may still hold one, and
    // only the live copy's damage shows
    let found: Vec<usize> = bytes
        .windows(6)
        .enumerate()
        .filter(|(_, w)| *w == b"\x0a\x04key7")
        .map(|(at, _)| at)
        .collect();
    assert!(!found.is_empty(), "record of key7 in the backend");
    for at in found {
        bytes[at..at + 16].fill(0xff);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_with_damaged_files_refuses_to_start_naming_the_file() {
    let mut cluster = Cluster::start(Flavor::Ours, 1, &[])
        .await
        .expect("start member");
    let mut kv = cluster.members[0].kv().await.expect("connect");
    for i in 0..KEYS {
        kv.put(PutRequest {
            key: format!("key{i}").into_bytes(),
            value: format!("value{i}").into_bytes(),
            ..Default::default()
        })
        .await
        .expect("put");
    }
    drop(kv);
    let status = cluster.members[0].terminate().expect("stop");
    assert!(status.success(), "{status:?}");
    let data_dir = cluster.members[0].data_dir.clone();
    let pristine = cluster.dir.path().join("pristine");
    copy_dir(&data_dir, &pristine);

    type Damage = Box<dyn Fn(&Path) -> PathBuf>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        (
            "a WAL record with a bad checksum",
            Box::new(damage_wal_record),
            "checksum mismatch",
        ),
        (
            "garbage over the backend's meta pages",
            Box::new(|d| damage_backend(d, |b| b[..8192].fill(0x5a))),
            "meta page 0 is not an LMDB meta page",
        ),
        (
            "a truncated backend",
            Box::new(|d| damage_backend(d, |b| b.truncate(4 * 4096))),
            "past the end of the file",
        ),
        (
            "garbage over the backend's tree pages",
            Box::new(|d| damage_backend(d, |b| garbage_tree_pages(b))),
            "is damaged",
        ),
        (
            "an undecodable record in the backend",
            Box::new(|d| damage_backend(d, |b| garbage_record(b))),
            "corrupt backend",
        ),
    ];
    for (what, damage, reason) in cases {
        std::fs::remove_dir_all(&data_dir).expect("remove data dir");
        copy_dir(&pristine, &data_dir);
        let file = damage(&data_dir);
        cluster.restart(0).expect("restart");
        let status = cluster.members[0]
            .wait_exit(Duration::from_secs(30))
            .unwrap_or_else(|e| panic!("{what}: the member kept running: {e}"));
        let log = cluster.members[0].log();
        assert_eq!(
            status.code(),
            Some(1),
            "{what}: exit status {status:?}\n{log}"
        );
        let last = log.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("etcd: ") && last.contains(&file.display().to_string()),
            "{what}: the last line names {}:\n{log}",
            file.display()
        );
        assert!(last.contains(reason), "{what}: {reason:?} missing:\n{log}");
        assert!(!log.contains("panicked"), "{what}:\n{log}");
        assert!(
            !log.contains("ready to serve client requests"),
            "{what}: served clients:\n{log}"
        );
    }

    // The same files undamaged start and serve every key: the checks above
    // are not false alarms.
    std::fs::remove_dir_all(&data_dir).expect("remove data dir");
    copy_dir(&pristine, &data_dir);
    cluster.restart(0).expect("restart");
    cluster.members[0]
        .wait_serving(Duration::from_secs(30))
        .await
        .expect("pristine copy serves");
    let resp = cluster.members[0]
        .kv()
        .await
        .expect("connect")
        .range(RangeRequest {
            key: b"key".to_vec(),
            range_end: b"kez".to_vec(),
            count_only: true,
            ..Default::default()
        })
        .await
        .expect("range")
        .into_inner();
    assert_eq!(resp.count, KEYS as i64);
    assert!(cluster.members[0]
        .log()
        .contains("checked the structure of the backend file"));
}

/// Rewrites, in a stopped member's backend, every record holding
/// `ORIGINAL` to hold `DIFFERENT` (same length: the record stays well
/// formed), through the library's own backend API.
fn rewrite_value(data_dir: &Path) {
    use rsetcd::storage::backend::{Backend, DEFAULT_MAP_SIZE};
    let backend = Backend::open(&backend(data_dir), DEFAULT_MAP_SIZE).expect("open backend");
    let changed: Vec<(Vec<u8>, Vec<u8>)> = {
        let rtxn = backend.env.read_txn().expect("read txn");
        backend
            .kv
            .iter(&rtxn)
            .expect("iterate")
            .map(|item| item.expect("record"))
            .filter_map(|(k, v)| {
                let at = v.windows(ORIGINAL.len()).position(|w| w == ORIGINAL)?;
                let mut v = v.to_vec();
                v[at..at + DIFFERENT.len()].copy_from_slice(DIFFERENT);
                Some((k.to_vec(), v))
            })
            .collect()
    };
    assert_eq!(changed.len(), 1, "one record holds the value");
    let mut wtxn = backend.env.write_txn().expect("write txn");
    for (k, v) in &changed {
        backend.kv.put(&mut wtxn, k, v).expect("put");
    }
    wtxn.commit().expect("commit");
}

/// Writes the value every member will hold and waits until each has it.
async fn write_everywhere(cluster: &mut Cluster) {
    let mut kv = cluster.members[0].kv().await.expect("connect");
    kv.put(PutRequest {
        key: b"checked".to_vec(),
        value: ORIGINAL.to_vec(),
        ..Default::default()
    })
    .await
    .expect("put");
    for m in &cluster.members {
        let mut kv = m.kv().await.expect("connect");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let r = kv
                .range(RangeRequest {
                    key: b"checked".to_vec(),
                    serializable: true,
                    ..Default::default()
                })
                .await
                .expect("range")
                .into_inner();
            if r.kvs.first().is_some_and(|kv| kv.value == ORIGINAL) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never applied the put",
                m.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A follower's index (the victim is never the leader, so the cluster
/// keeps its leader while it is down).
async fn follower(cluster: &mut Cluster) -> usize {
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    (leader + 1) % cluster.members.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_check_refuses_a_member_whose_data_differs() {
    let mut cluster = Cluster::start(
        Flavor::Ours,
        3,
        &["--experimental-initial-corrupt-check=true"],
    )
    .await
    .expect("start cluster");
    write_everywhere(&mut cluster).await;
    let victim = follower(&mut cluster).await;

    // Intact data passes the check.
    cluster.members[victim].terminate().expect("stop");
    cluster.restart(victim).expect("restart");
    cluster.members[victim]
        .wait_serving(Duration::from_secs(30))
        .await
        .expect("an intact member starts");
    let log = cluster.members[victim].log();
    assert!(
        log.contains("\"msg\":\"starting initial corruption check\"")
            && log.contains("initial corruption checking passed; no corruption"),
        "{log}"
    );

    cluster.members[victim].terminate().expect("stop");
    rewrite_value(&cluster.members[victim].data_dir);
    cluster.restart(victim).expect("restart");
    let status = cluster.members[victim]
        .wait_exit(Duration::from_secs(30))
        .expect("the member refuses to start");
    let log = cluster.members[victim].log();
    assert_eq!(status.code(), Some(1), "{log}");
    let id = log
        .lines()
        .find_map(|l| l.split("\"local-member-id\":\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the check logs the member id")
        .to_string();
    assert!(
        log.lines()
            .last()
            .is_some_and(|l| l == format!("etcd: {id} found data inconsistency with peers")),
        "{log}"
    );
    assert_eq!(
        log.matches("found different hash values from remote peer")
            .count(),
        2,
        "both other members disagree:\n{log}"
    );
    assert!(!log.contains("ready to serve client requests"), "{log}");
}

/// The alarms every member lists.
async fn alarms(cluster: &Cluster, i: usize) -> Vec<AlarmMember> {
    cluster.members[i]
        .maintenance()
        .await
        .expect("connect")
        .alarm(AlarmRequest {
            action: AlarmAction::Get as i32,
            member_id: 0,
            alarm: AlarmType::None as i32,
        })
        .await
        .expect("alarm get")
        .into_inner()
        .alarms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_check_raises_the_corrupt_alarm() {
    let mut cluster = Cluster::start(Flavor::Ours, 3, &["--experimental-corrupt-check-time=1s"])
        .await
        .expect("start cluster");
    write_everywhere(&mut cluster).await;
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    // Consistent members: checks pass and raise nothing.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !cluster.members[leader]
        .log()
        .contains("\"msg\":\"finished peer corruption check\",\"number-of-peers-checked\":2")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            cluster.members[leader].log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cluster.members[leader]
        .log()
        .contains("\"msg\":\"enabled corruption checking\""));
    assert_eq!(alarms(&cluster, leader).await, Vec::new());

    let victim = (leader + 1) % 3;
    cluster.members[victim].terminate().expect("stop");
    rewrite_value(&cluster.members[victim].data_dir);
    cluster.restart(victim).expect("restart");
    cluster.members[victim]
        .wait_serving(Duration::from_secs(30))
        .await
        .expect("the member starts (no initial check)");

    let corrupt = AlarmMember {
        member_id: 0,
        alarm: AlarmType::Corrupt as i32,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while alarms(&cluster, leader).await != vec![corrupt] {
        assert!(
            std::time::Instant::now() < deadline,
            "no CORRUPT alarm:\n{}",
            cluster.members[leader].log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..3 {
        assert_eq!(alarms(&cluster, i).await, vec![corrupt], "member {i}");
    }
    // A corrupt cluster takes no more writes.
    let refused = cluster.members[leader]
        .kv()
        .await
        .expect("connect")
        .put(PutRequest {
            key: b"after".to_vec(),
            value: b"alarm".to_vec(),
            ..Default::default()
        })
        .await
        .expect_err("a write while CORRUPT is raised");
    assert_eq!(refused.message(), "etcdserver: corrupt cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    assert!(
        cluster.members[leader]
            .log()
            .contains("same compact revision then hashes must match"),
        "{}",
        cluster.members[leader].log()
    );
}
