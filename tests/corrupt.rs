//! Damaged data as a user sees it with our `etcd`.
//!
//! A member whose own files are damaged while it is stopped — a WAL record
//! with a bad checksum in the middle of a segment, an LMDB backend with
//! garbage over its meta pages, truncated, with garbage tree pages, or with
//! an undecodable record — refuses to start: exit code 1 and a message that
//! names the file, never a crash and never serving what it has.

mod support_cluster;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rsetcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use support_cluster::{Cluster, Flavor};

const KEYS: usize = 50;

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
    let at = bytes
        .windows(6)
        .position(|w| w == b"\x0a\x04key7")
        .expect("record of key7 in the backend");
    bytes[at..at + 16].fill(0xff);
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
