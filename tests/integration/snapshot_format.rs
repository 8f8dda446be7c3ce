//! etcd's snapshot format, both ways, with etcd 3.4 as the other side:
//! a bbolt file we write is read by etcd's `snapshot status`; a history
//! (several revisions per key, deletes, a compaction, a lease, users and
//! roles with auth on) written to our server, saved by etcd's etcdctl,
//! restored by etcd's restore, is served by etcd exactly as we served it;
//! the same history written to etcd, saved, restored by our etcdutl (and
//! from a stopped etcd member's `member/snap/db`), is served by us exactly
//! as etcd served it. Damaged files get a clear error from status and
//! restore and leave nothing half-restored; our earlier (LMDB) snapshots
//! still restore.

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

// ------------------------------------------------------------ round trips

use crate::support::cluster::free_port;
use crate::support::etcdctl::{run, Run};
use crate::support::member::{Flavor, Member};
use sha2::Digest as _;
use std::path::Path;
use std::time::{Duration, Instant};

const ROOT: &str = "root:pw";

/// Debian's etcdctl 3.4 against `endpoint`, as root unless `user` says.
fn ctl(endpoint: &str, user: Option<&str>, args: &[&str]) -> Run {
    let mut all = vec![format!("--endpoints={endpoint}")];
    if let Some(u) = user {
        all.push(format!("--user={u}"));
    }
    all.extend(args.iter().map(|a| a.to_string()));
    run(REFERENCE_ETCDCTL, all, "", [])
}

fn ok(r: Run, what: &str) -> String {
    assert_eq!(
        r.code,
        Some(0),
        "{what}: {}{}",
        r.stdout_text(),
        r.stderr_text()
    );
    r.stdout_text()
}

use crate::support::common::REFERENCE_ETCDCTL;

/// A member m1 (ours or etcd 3.4) on `data_dir` with peers on
/// `peer_port`.
fn start(flavor: Flavor, data_dir: &Path, peer_port: u16) -> Member {
    let mut m = Member::new(
        "m1",
        flavor,
        free_port().unwrap(),
        peer_port,
        data_dir.to_path_buf(),
    );
    let (client, peer) = (m.client_url(), m.peer_url());
    m.args = vec![
        "--name=m1".into(),
        format!("--data-dir={}", data_dir.display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=m1={peer}"),
    ];
    m.start().unwrap();
    // auth may be on: ask as root, which also works with it off
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = ctl(&m.client_url(), Some(ROOT), &["get", "probe"]);
        let r = if r.code == Some(0) {
            r
        } else {
            ctl(&m.client_url(), None, &["get", "probe"])
        };
        if r.code == Some(0) {
            return m;
        }
        assert!(
            Instant::now() < deadline && m.is_running(),
            "{:?} not serving: {}\n{}",
            flavor,
            r.stderr_text(),
            m.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// History with several revisions per key, deletes, a compaction, a
/// lease, users and roles, then auth on (etcdctl 3.4 also gives root its
/// role). Revisions: a=1@2 b=2@3 a=3@4 del b@5 c=4@6 l@7 (lease) d=5@8,
/// compact 4, a=6@9 del c@10.
fn write_history(endpoint: &str) {
    let c = |args: &[&str]| ok(ctl(endpoint, None, args), &args.join(" "));
    c(&["put", "a", "1"]);
    c(&["put", "b", "2"]);
    c(&["put", "a", "3"]);
    c(&["del", "b"]);
    c(&["put", "c", "4"]);
    let lease = c(&["lease", "grant", "3600"]);
    let id = lease.split_whitespace().nth(1).unwrap().to_string();
    c(&["put", "l", "x", &format!("--lease={id}")]);
    c(&["put", "d", "5"]);
    c(&["compact", "4"]);
    c(&["put", "a", "6"]);
    c(&["del", "c"]);
    c(&["user", "add", ROOT]);
    c(&["role", "add", "r1"]);
    c(&["role", "grant-permission", "r1", "read", "k1", "k9"]);
    c(&["user", "add", "u1:pw1"]);
    c(&["user", "grant-role", "u1", "r1"]);
    c(&["auth", "enable"]);
}

/// Entries over every bucket of a snapshot after `write_history`: 8
/// revisions, 1 lease, 3 meta, 2 auth, 2 users, 2 roles, 1 member, the
/// cluster version.
const HISTORY_ENTRIES: i64 = 20;

/// What a user reads from a member after `write_history`: ranges at
/// several revisions (headers without the ids, which belong to the
/// cluster), the compacted revision's error, the lease and its TTL, users,
/// roles, and what u1 may and may not read.
fn observe(endpoint: &str) -> Vec<String> {
    let mut seen = Vec::new();
    for rev in ["0", "4", "5", "6", "9", "10"] {
        let out = ctl(
            endpoint,
            Some(ROOT),
            &["get", "", "--prefix", "-w", "json", "--rev", rev],
        );
        let mut v: serde_json::Value = serde_json::from_str(&ok(out, "get")).unwrap();
        let header = v["header"].as_object_mut().unwrap();
        for id in ["cluster_id", "member_id", "raft_term"] {
            header.remove(id);
        }
        seen.push(format!("get --rev {rev}: {v}"));
    }
    // the history itself, so that two empty answers never agree
    assert!(seen[0].contains(r#""count":3"#), "{}", seen[0]);
    assert!(seen[1].contains(r#""mod_revision":4"#), "{}", seen[1]);
    let compacted = ctl(endpoint, Some(ROOT), &["get", "a", "--rev", "3"]);
    seen.push(format!(
        "get --rev 3: {:?} {}",
        compacted.code,
        compacted.stderr_text().lines().last().unwrap_or("")
    ));
    let leases = ok(ctl(endpoint, Some(ROOT), &["lease", "list"]), "lease list");
    seen.push(leases.clone());
    let id = leases.lines().nth(1).expect("one lease").trim().to_string();
    let ttl = ok(
        ctl(
            endpoint,
            Some(ROOT),
            &["lease", "timetolive", &id, "-w", "json"],
        ),
        "ttl",
    );
    let ttl: serde_json::Value = serde_json::from_str(&ttl).unwrap();
    seen.push(format!("granted TTL {}", ttl["granted-ttl"]));
    let remaining = ttl["ttl"].as_i64().unwrap();
    assert!(
        (3590..=3600).contains(&remaining),
        "remaining TTL {remaining}"
    );
    for args in [
        &["user", "list"][..],
        &["role", "list"],
        &["role", "get", "r1"],
        &["user", "get", "u1"],
        &["auth", "status"],
    ] {
        seen.push(ok(ctl(endpoint, Some(ROOT), args), &args.join(" ")));
    }
    let allowed = ctl(endpoint, Some("u1:pw1"), &["get", "k5"]);
    seen.push(format!(
        "u1 get k5: {:?} {}",
        allowed.code,
        allowed.stdout_text()
    ));
    let denied = ctl(endpoint, Some("u1:pw1"), &["get", "a"]);
    seen.push(format!(
        "u1 get a: {:?} {}",
        denied.code,
        denied.stderr_text().lines().last().unwrap_or("")
    ));
    seen
}

const OUR_ETCDUTL: &str = env!("CARGO_BIN_EXE_etcdutl");

fn etcdutl(args: &[&str]) -> Run {
    run(OUR_ETCDUTL, args, "", [])
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// etcd's and our `snapshot status -w json` of `file`: the same answer.
fn status_both(file: &Path) -> serde_json::Value {
    let etcds = ok(
        run(
            REFERENCE_ETCDCTL,
            ["snapshot", "status", s(file), "-w", "json"],
            "",
            [],
        ),
        "etcdctl snapshot status",
    );
    let ours = ok(
        etcdutl(&["snapshot", "status", s(file), "-w", "json"]),
        "etcdutl snapshot status",
    );
    assert_eq!(etcds, ours, "snapshot status of {}", file.display());
    serde_json::from_str(&ours).unwrap()
}

/// `etcdctl snapshot restore` (etcd 3.4's) or ours into `to`, for member
/// m1 of a new one-member cluster with peers on `peer_port`.
fn restore(binary: &str, snapshot: &Path, to: &Path, peer_port: u16, extra: &[&str]) -> Run {
    let peer = format!("http://127.0.0.1:{peer_port}");
    let cluster = format!("m1={peer}");
    let mut args = vec![
        "snapshot",
        "restore",
        s(snapshot),
        "--data-dir",
        s(to),
        "--name",
        "m1",
        "--initial-cluster",
        &cluster,
        "--initial-advertise-peer-urls",
        &peer,
    ];
    args.extend_from_slice(extra);
    run(binary, args, "", [])
}

#[test]
fn etcd_restores_and_serves_what_our_snapshot_holds() {
    if !support::common::reference_available() {
        eprintln!(
            "skipped: /usr/bin/etcd and /usr/bin/etcdctl (Debian's etcd 3.4) are not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ours = start(Flavor::Ours, &dir.path().join("ours"), free_port().unwrap());
    write_history(&ours.client_url());
    let expected = observe(&ours.client_url());

    // etcd's own client saves it, etcd's own tool reads it
    let snap = dir.path().join("snap.db");
    ok(
        ctl(
            &ours.client_url(),
            Some(ROOT),
            &["snapshot", "save", s(&snap)],
        ),
        "snapshot save",
    );
    let status = status_both(&snap);
    // what etcd's snapshot of the same history reports (checked on etcd's
    // own in the next test): the revision, and 20 entries over all buckets
    assert_eq!(status["revision"], 10, "{status}");
    assert_eq!(status["totalKey"], HISTORY_ENTRIES, "{status}");
    ours.terminate().unwrap();

    let restored = dir.path().join("etcd");
    let peer = free_port().unwrap();
    ok(
        restore(REFERENCE_ETCDCTL, &snap, &restored, peer, &[]),
        "etcd's restore",
    );
    let etcd = start(Flavor::Reference, &restored, peer);
    assert_eq!(observe(&etcd.client_url()), expected);
}

#[test]
fn we_restore_and_serve_what_etcds_snapshot_and_data_dir_hold() {
    if !support::common::reference_available() {
        eprintln!(
            "skipped: /usr/bin/etcd and /usr/bin/etcdctl (Debian's etcd 3.4) are not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etcd_dir = dir.path().join("etcd");
    let mut etcd = start(Flavor::Reference, &etcd_dir, free_port().unwrap());
    write_history(&etcd.client_url());
    let expected = observe(&etcd.client_url());
    let snap = dir.path().join("snap.db");
    ok(
        ctl(
            &etcd.client_url(),
            Some(ROOT),
            &["snapshot", "save", s(&snap)],
        ),
        "snapshot save",
    );
    let status = status_both(&snap);
    assert_eq!(status["revision"], 10, "{status}");
    assert_eq!(status["totalKey"], HISTORY_ENTRIES, "{status}");
    etcd.terminate().unwrap();

    // etcd's snapshot, restored with the revisions kept (etcd's default)
    let ours_dir = dir.path().join("ours");
    let peer = free_port().unwrap();
    let keep = ["--bump-revision", "0"];
    ok(
        restore(OUR_ETCDUTL, &snap, &ours_dir, peer, &keep),
        "our restore",
    );
    let mut ours = start(Flavor::Ours, &ours_dir, peer);
    assert_eq!(
        observe(&ours.client_url()),
        expected,
        "restored from etcd's snapshot"
    );
    ours.terminate().unwrap();

    // a stopped etcd member's backend: no trailer, so only with
    // --skip-hash-check, as etcd's etcdutl
    let db = etcd_dir.join("member/snap/db");
    status_both(&db);
    let from_db = dir.path().join("from-db");
    let refused = restore(OUR_ETCDUTL, &db, &from_db, peer, &keep);
    assert_eq!(refused.code, Some(1));
    assert_eq!(
        refused.stderr_text().lines().last(),
        Some("Error: snapshot missing hash but --skip-hash-check=false")
    );
    assert!(
        !from_db.exists(),
        "a refused restore left {}",
        from_db.display()
    );
    let skip = ["--bump-revision", "0", "--skip-hash-check"];
    ok(
        restore(OUR_ETCDUTL, &db, &from_db, peer, &skip),
        "restore of member/snap/db",
    );
    let ours = start(Flavor::Ours, &from_db, peer);
    assert_eq!(
        observe(&ours.client_url()),
        expected,
        "restored from etcd's data dir"
    );
}

/// A member of ours with a few keys, and its snapshot saved by etcd 3.4's
/// etcdctl.
fn our_snapshot(dir: &Path) -> std::path::PathBuf {
    let mut ours = start(Flavor::Ours, &dir.join("ours"), free_port().unwrap());
    for i in 0..100 {
        let key = format!("key/{i:03}");
        ok(
            ctl(&ours.client_url(), None, &["put", &key, "value"]),
            "put",
        );
    }
    let snap = dir.join("snap.db");
    ok(
        ctl(&ours.client_url(), None, &["snapshot", "save", s(&snap)]),
        "snapshot save",
    );
    ours.terminate().unwrap();
    snap
}

/// Our restore of `file` fails with `error` (in its last line) and leaves
/// no data dir behind.
fn restore_fails(file: &Path, dir: &Path, extra: &[&str], error: &str) {
    let to = dir.join("restored");
    let r = restore(OUR_ETCDUTL, file, &to, free_port().unwrap(), extra);
    let last = r.stderr_text().lines().last().unwrap_or("").to_string();
    assert_eq!(r.code, Some(1), "{}: {last}", file.display());
    assert!(last.contains(error), "{}: {last}", file.display());
    assert!(!to.exists(), "a failed restore left {}", to.display());
}

#[test]
fn damaged_snapshots_get_a_clear_error_and_nothing_half_restored() {
    if !support::common::reference_available() {
        eprintln!(
            "skipped: /usr/bin/etcd and /usr/bin/etcdctl (Debian's etcd 3.4) are not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = our_snapshot(dir.path());
    let good = std::fs::read(&snap).unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };

    // a trailer that does not match: restore refuses, as etcd's does;
    // our status refuses too (etcd's never reads the trailer and answers)
    let mut bad_trailer = good.clone();
    *bad_trailer.last_mut().unwrap() ^= 1;
    let bad_trailer = write("bad-trailer.db", &bad_trailer);
    let status = etcdutl(&["snapshot", "status", s(&bad_trailer)]);
    assert_eq!(status.code, Some(1));
    assert!(
        status.stderr_text().starts_with("Error: expected sha256 ["),
        "{}",
        status.stderr_text()
    );
    let etcds = run(
        REFERENCE_ETCDCTL,
        ["snapshot", "status", s(&bad_trailer)],
        "",
        [],
    );
    assert_eq!(etcds.code, Some(0), "etcd 3.4's status reads no trailer");
    restore_fails(&bad_trailer, dir.path(), &[], "expected sha256 [");
    let etcds = restore(
        REFERENCE_ETCDCTL,
        &bad_trailer,
        &dir.path().join("e1"),
        1,
        &[],
    );
    assert!(
        etcds.stderr_text().contains("expected sha256"),
        "{}",
        etcds.stderr_text()
    );

    // cut short: a database whose pages run past the end of the file
    let body = &good[..good.len() - 32];
    let cut = write("cut.db", &body[..body.len() - 4096]);
    let status = etcdutl(&["snapshot", "status", s(&cut)]);
    assert_eq!(status.code, Some(1));
    assert!(
        status.stderr_text().contains("truncated"),
        "{}",
        status.stderr_text()
    );
    restore_fails(&cut, dir.path(), &["--skip-hash-check"], "truncated");

    // a damaged page: the key bucket's leaf overwritten with noise
    let reader = rsetcd::storage::bbolt::Reader::from_bytes(body.to_vec()).unwrap();
    let buckets = reader.buckets().unwrap();
    let key = buckets.iter().find(|(n, _)| n == b"key").unwrap();
    let rsetcd::storage::bbolt::BucketRoot::Tree(page) = key.1 else {
        panic!("our key bucket has pages")
    };
    let mut noisy = body.to_vec();
    let at = page as usize * PAGE_SIZE;
    for (i, b) in noisy[at + 8..at + PAGE_SIZE].iter_mut().enumerate() {
        *b = (i * 7 + 3) as u8;
    }
    let noisy = write("noisy.db", &noisy);
    let status = etcdutl(&["snapshot", "status", s(&noisy)]);
    assert_eq!(status.code, Some(1), "{}", status.stdout_text());
    assert!(
        status.stderr_text().contains(&format!("page {page}:")),
        "{}",
        status.stderr_text()
    );
    let etcds = run(REFERENCE_ETCDCTL, ["snapshot", "status", s(&noisy)], "", []);
    assert_ne!(etcds.code, Some(0), "etcd's status took the noisy file");
    restore_fails(
        &noisy,
        dir.path(),
        &["--skip-hash-check"],
        &format!("page {page}:"),
    );

    // a sound bbolt file whose key bucket holds no revisions: etcd's
    // layout broken, found by the restore, named by bucket
    let wrong = dir.path().join("wrong.db");
    let mut w = Writer::create(&wrong).unwrap();
    w.bucket(b"key", [Ok((b"not-a-revision".to_vec(), b"x".to_vec()))])
        .unwrap();
    w.finish().unwrap();
    let status = etcdutl(&["snapshot", "status", s(&wrong)]);
    assert_eq!(status.code, Some(1));
    assert_eq!(
        status.stderr_text(),
        "Error: bucket key holds a 14-byte key\n"
    );
    restore_fails(&wrong, dir.path(), &["--skip-hash-check"], "bucket key");

    // some other program's bbolt database: none of etcd's buckets
    let other = dir.path().join("other.db");
    let mut w = Writer::create(&other).unwrap();
    w.bucket(b"settings", [Ok((b"theme".to_vec(), b"dark".to_vec()))])
        .unwrap();
    w.finish().unwrap();
    restore_fails(
        &other,
        dir.path(),
        &["--skip-hash-check"],
        "not an etcd backend: no key or meta bucket (buckets: settings)",
    );

    // not a database at all
    let text = write("notes.txt", &[b'x'; 5000]);
    let status = etcdutl(&["snapshot", "status", s(&text)]);
    assert_eq!(status.code, Some(1));
    assert!(
        status.stderr_text().contains("is not an etcd backend"),
        "{}",
        status.stderr_text()
    );
    restore_fails(
        &text,
        dir.path(),
        &["--skip-hash-check"],
        "is not an etcd backend",
    );
}

#[test]
fn snapshots_in_our_earlier_format_still_restore_and_say_so() {
    if !support::common::reference_available() {
        eprintln!("skipped: /usr/bin/etcdctl (Debian's etcd-client 3.4) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut ours = start(Flavor::Ours, &dir.path().join("ours"), free_port().unwrap());
    ok(ctl(&ours.client_url(), None, &["put", "k", "v"]), "put");
    ours.terminate().unwrap();
    // the backend of a stopped member: the LMDB format of our earlier
    // snapshots
    let db = dir.path().join("ours/member/snap/db");
    let status = etcdutl(&["snapshot", "status", s(&db), "-w", "json"]);
    assert_eq!(status.code, Some(0));
    assert!(
        status
            .stderr_text()
            .contains("earlier snapshot format (LMDB)"),
        "{}",
        status.stderr_text()
    );
    // and as our earlier Maintenance.Snapshot sent it: with the trailer
    let mut bytes = std::fs::read(&db).unwrap();
    let trailer = sha2::Sha256::digest(&bytes);
    bytes.extend_from_slice(&trailer);
    let old = dir.path().join("old-backup.db");
    std::fs::write(&old, &bytes).unwrap();
    let status = etcdutl(&["snapshot", "status", s(&old), "-w", "json"]);
    assert_eq!(status.code, Some(0), "{}", status.stderr_text());
    assert!(status
        .stderr_text()
        .contains("earlier snapshot format (LMDB)"));
    let to = dir.path().join("restored");
    let peer = free_port().unwrap();
    ok(
        restore(OUR_ETCDUTL, &old, &to, peer, &["--bump-revision", "0"]),
        "restore",
    );
    let restored = start(Flavor::Ours, &to, peer);
    let got = ok(
        ctl(
            &restored.client_url(),
            None,
            &["get", "k", "--print-value-only"],
        ),
        "get",
    );
    assert_eq!(got, "v\n");
}

/// etcd's own etcd-dump-db (built from Debian's etcd source by
/// ../shared/tools/etcd-benchmark/build.sh with BUILD_EXTRAS=1; not a
/// package, so CI does not build it: give its path in ETCD_DUMP_DB or
/// leave it at the script's output path) lists our snapshot's buckets
/// and decodes its records.
#[test]
fn etcds_dump_tool_reads_our_snapshot() {
    let tool = std::env::var("ETCD_DUMP_DB")
        .unwrap_or_else(|_| "/tmp/etcd-bench-build/bin/etcd-dump-db".into());
    if !Path::new(&tool).is_file() || !support::common::reference_available() {
        eprintln!("skipped: no etcd-dump-db at {tool} (build it with BUILD_EXTRAS=1 ../shared/tools/etcd-benchmark/build.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let snap = our_snapshot(dir.path());
    let buckets = ok(run(&tool, ["list-bucket", s(&snap)], "", []), "list-bucket");
    assert_eq!(
        buckets.lines().collect::<Vec<_>>(),
        [
            "alarm",
            "auth",
            "authRoles",
            "authUsers",
            "cluster",
            "key",
            "lease",
            "members",
            "members_removed",
            "meta"
        ]
    );
    let keys = ok(
        run(
            &tool,
            ["iterate-bucket", s(&snap), "key", "--decode"],
            "",
            [],
        ),
        "iterate-bucket",
    );
    assert_eq!(keys.lines().count(), 100, "{keys}");
    assert!(
        keys.contains(r#"value=[key "key/099" | val "value" | created 101 | mod 101 | ver 1]"#),
        "{keys}"
    );
}

/// docs/migration.md's short cut-over: etcd 3.4's etcdctl make-mirror
/// copies an etcd's keys into ours and follows new writes until the
/// clients move (keys only: new revisions, no leases, users or roles —
/// what the snapshot path keeps).
#[test]
fn make_mirror_carries_etcds_keys_to_ours_for_a_cut_over() {
    if !support::common::reference_available() {
        eprintln!(
            "skipped: /usr/bin/etcd and /usr/bin/etcdctl (Debian's etcd 3.4) are not installed"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let etcd = start(
        Flavor::Reference,
        &dir.path().join("etcd"),
        free_port().unwrap(),
    );
    let ours = start(Flavor::Ours, &dir.path().join("ours"), free_port().unwrap());
    for i in 0..20 {
        let key = format!("app/{i:02}");
        ok(
            ctl(&etcd.client_url(), None, &["put", &key, "before"]),
            "put",
        );
    }
    let mut cmd = std::process::Command::new(REFERENCE_ETCDCTL);
    cmd.env("ETCDCTL_API", "3").args([
        "make-mirror",
        &format!("--endpoints={}", etcd.client_url()),
        &ours.client_url(),
    ]);
    let _mirror =
        crate::support::process::Proc::spawn("make-mirror", cmd, &dir.path().join("mirror.log"))
            .unwrap();
    ok(
        ctl(&etcd.client_url(), None, &["put", "app/new", "after"]),
        "put",
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = ok(
            ctl(
                &ours.client_url(),
                None,
                &["get", "app/", "--prefix", "--print-value-only"],
            ),
            "get",
        );
        let values: Vec<&str> = got.lines().collect();
        if values.len() == 21 {
            assert_eq!(values.iter().filter(|v| **v == "before").count(), 20);
            assert!(values.contains(&"after"));
            break;
        }
        assert!(Instant::now() < deadline, "mirror incomplete: {values:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
