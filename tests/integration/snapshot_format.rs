//! etcd's snapshot format (issue 16, started): a bbolt file written by
//! `storage::bbolt` in etcd's backend schema is read by etcd 3.4's own
//! `etcdctl snapshot status` (which runs bbolt's `tx.Check` first) with
//! the revision, key count and size etcd computes.

use crate::support;

use prost::Message as _;
use rsetcd::proto::mvccpb::KeyValue;
use rsetcd::storage::bbolt::{Writer, PAGE_SIZE};

/// A bucket's entries, in key order.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// A revision as etcd's key bucket stores it: main, '_', sub (big-endian).
fn revision(main: i64, sub: i64) -> Vec<u8> {
    let mut b = main.to_be_bytes().to_vec();
    b.push(b'_');
    b.extend_from_slice(&sub.to_be_bytes());
    b
}

#[test]
fn etcd_reads_a_bbolt_file_we_write() {
    if !support::common::reference_available() {
        eprintln!("skipped: /usr/bin/etcdctl (Debian's etcd-client 3.4) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.db");
    // 20,000 puts: leaves over many pages and two branch levels above
    let keys = 20_000i64;
    let history: Entries = (2..keys + 2)
        .map(|rev| {
            let kv = KeyValue {
                key: format!("key/{rev:06}").into_bytes(),
                create_revision: rev,
                mod_revision: rev,
                version: 1,
                value: vec![b'v'; 100],
                lease: 0,
            };
            (revision(rev, 0), kv.encode_to_vec())
        })
        .collect();
    let meta = vec![(b"consistent_index".to_vec(), 42u64.to_be_bytes().to_vec())];
    // etcd's ten buckets, in name order
    let buckets: Vec<(&str, Entries)> = vec![
        ("alarm", vec![]),
        ("auth", vec![]),
        ("authRoles", vec![]),
        ("authUsers", vec![]),
        ("cluster", vec![]),
        ("key", history),
        ("lease", vec![]),
        ("members", vec![]),
        ("members_removed", vec![]),
        ("meta", meta),
    ];
    let mut w = Writer::create(&path).unwrap();
    // etcd's hash: CRC-32C over each bucket's name, then its keys and values
    let mut hash = 0u32;
    for (name, entries) in &buckets {
        hash = crc32c::crc32c_append(hash, name.as_bytes());
        for (k, v) in entries {
            hash = crc32c::crc32c_append(hash, k);
            hash = crc32c::crc32c_append(hash, v);
        }
        w.bucket(name.as_bytes(), entries.iter().cloned().map(Ok))
            .unwrap();
    }
    let size = w.finish().unwrap();
    assert_eq!(size % PAGE_SIZE as u64, 0);

    let out = std::process::Command::new("/usr/bin/etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["snapshot", "status", "-w", "json"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "etcdctl snapshot status: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    eprintln!("etcdctl snapshot status: {status}");
    assert_eq!(status["revision"], keys + 1, "{status}");
    // every entry of every bucket: the puts and consistent_index
    assert_eq!(status["totalKey"], keys + 1, "{status}");
    assert_eq!(status["totalSize"], size, "{status}");
    // etcd read back every byte we wrote
    assert_eq!(status["hash"], hash, "{status}");
}
