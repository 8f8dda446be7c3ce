//! Fuzzing every decoder that takes outside bytes (issue 13, part 3), on the
//! stable toolchain: a mutation fuzzer in the test process. Each target
//! starts from valid inputs (built here, plus any files saved under
//! `tests/fuzz-corpus/<target>/`), mutates them (bit flips, interesting
//! bytes and varints, insertions, deletions, truncation, splices) and feeds
//! them to the code under test, which must return — an error is fine, a
//! panic is a finding. A finding is saved under `target/fuzz-findings/`
//! and the test fails, naming the file: copy it into the corpus folder and
//! it is replayed on every run from then on.
//!
//! `cargo test --test fuzz` runs each target for FUZZ_SECONDS (default 2);
//! a campaign: `FUZZ_SECONDS=3600 cargo test --release --test fuzz --
//! --test-threads=1 --nocapture` (docs/robustness.md records them).
//! FUZZ_SEED fixes the random sequence (without FUZZ_SECONDS, the suite's
//! short run always takes the same one); FUZZ_TRACE=1 writes each input to
//! target/tmp/fuzz-current-<target> before running it, for crashes that
//! kill the process (a signal is no panic).

#[path = "integration/support/wire.rs"]
mod support_wire;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use prost::Message as _;
use protobuf::Message as _;
use rsetcd::proto::etcdserverpb::*;
use rsetcd::proto::internal::{internal_raft_request::Request, InternalRaftRequest};

/// xorshift64*: small, fast, and a seed reproduces a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING_BYTES: &[u8] = &[0, 1, 0x7f, 0x80, 0xff, b'\n', b'"', b'=', b'-', b':'];
const INTERESTING_VARINTS: &[u64] = &[
    0,
    1,
    127,
    128,
    u32::MAX as u64,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX,
];

fn varint(v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_varint(v, &mut out);
    out
}

/// When `input` is a protobuf message: one of its fields (at any depth)
/// with a new value, so that mutants still decode and reach the code
/// behind the decoder. None when it does not parse as one.
fn mutate_field(rng: &mut Rng, input: &[u8], depth: usize) -> Option<Vec<u8>> {
    use support_wire::Value;
    let mut fields = support_wire::parse(input)?;
    if fields.is_empty() {
        return None;
    }
    let i = rng.below(fields.len());
    let value = match &fields[i].value {
        Value::Bytes(inner) if depth < 4 && rng.below(2) == 0 => {
            match mutate_field(rng, inner, depth + 1) {
                Some(m) => Value::Bytes(m),
                None => Value::Bytes(mutate(rng, inner, inner)),
            }
        }
        Value::Bytes(inner) => match rng.below(4) {
            0 => Value::Bytes(Vec::new()),
            1 => Value::Bytes(vec![b'k'; [1, 511, 512, 4096][rng.below(4)]]),
            2 => Value::Bytes(b"\xff\xfe not utf-8".to_vec()),
            _ => Value::Bytes(mutate(rng, inner, inner)),
        },
        _ => Value::Varint(INTERESTING_VARINTS[rng.below(INTERESTING_VARINTS.len())]),
    };
    if rng.below(8) == 0 {
        // a repeated or oneof field given twice
        let copy = fields[i].clone();
        fields.push(copy);
    }
    fields[i].value = value;
    Some(support_wire::encode(&fields))
}

/// One to four random changes to `input`; `other` is for splicing. Half
/// of the time, when the input is a protobuf message, one field changes.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    if rng.below(2) == 0 {
        if let Some(m) = mutate_field(rng, input, 0) {
            return m;
        }
    }
    let mut data = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(data.len() + 1);
        match rng.below(8) {
            0 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] ^= 1 << rng.below(8);
            }
            1 if !data.is_empty() => {
                let i = rng.below(data.len());
                data[i] = INTERESTING_BYTES[rng.below(INTERESTING_BYTES.len())];
            }
            2 => {
                let v = INTERESTING_VARINTS[rng.below(INTERESTING_VARINTS.len())];
                data.splice(at..at, varint(v));
            }
            3 if !data.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(data.len());
                data.drain(at.min(data.len() - 1)..end);
            }
            4 => data.truncate(at),
            5 if !other.is_empty() => {
                let from = rng.below(other.len());
                let len = rng.below(other.len() - from + 1);
                data.splice(at..at, other[from..from + len].iter().copied());
            }
            6 if !data.is_empty() => {
                let from = rng.below(data.len());
                let len = rng.below((data.len() - from).min(64) + 1);
                let chunk = data[from..from + len].to_vec();
                data.splice(at..at, chunk);
            }
            _ => data.insert(at, rng.next() as u8),
        }
    }
    data
}

fn duration() -> Duration {
    let seconds = std::env::var("FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    Duration::from_secs_f64(seconds)
}

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(target)
}

/// Runs `target` on the seeds, the saved corpus, then mutants until the
/// time is up; fails on the first input that panics. `target` says
/// whether the input got past its decoder (for the report).
fn fuzz(name: &str, mut seeds: Vec<Vec<u8>>, mut target: impl FnMut(&[u8]) -> bool) {
    if let Ok(dir) = std::fs::read_dir(corpus_dir(name)) {
        for e in dir.flatten() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                seeds.push(bytes);
            }
        }
    }
    assert!(!seeds.is_empty());
    // The test suite's short run (no FUZZ_SECONDS) repeats one sequence, so
    // a suite that passed passes again; a campaign explores a new one.
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            if std::env::var_os("FUZZ_SECONDS").is_none() {
                return 0x5eed_2026_1207;
            }
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
        | 1;
    let mut rng = Rng(seed);
    // keep the test's output to findings: panics print through the hook
    let quiet = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let started = Instant::now();
    let limit = duration();
    let mut execs = 0u64;
    let mut deep = 0u64;
    let mut finding = None;
    let mut pool = seeds.clone();
    let mut i = 0usize;
    // FUZZ_TRACE=1: every input is written to target/tmp/fuzz-current-<name>
    // before it runs (slow; to catch what kills the process)
    let trace = std::env::var_os("FUZZ_TRACE")
        .map(|_| Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-current-{name}")));
    while finding.is_none() && (i < seeds.len() || started.elapsed() < limit) {
        let input = if i < seeds.len() {
            seeds[i].clone()
        } else {
            let a = &pool[rng.below(pool.len())];
            let b = &pool[rng.below(pool.len())];
            mutate(&mut rng, a, b)
        };
        i += 1;
        execs += 1;
        if let Some(trace) = &trace {
            // a crash (a signal, not a panic) leaves the input behind
            let _ = std::fs::write(trace, &input);
        }
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Err(_) => finding = Some(input.clone()),
            Ok(past_decoding) => deep += u64::from(past_decoding),
        }
        if finding.is_some() {
            break;
        } else if rng.below(64) == 0 && pool.len() < 4096 && input.len() < 1 << 16 {
            // a little memory of where mutation went, for deeper inputs
            pool.push(input);
        }
    }
    std::panic::set_hook(quiet);
    let took = started.elapsed();
    eprintln!(
        "fuzz {name}: {execs} executions ({deep} past decoding) in {:.1} s ({:.0}/s), seed {seed}, {} findings",
        took.as_secs_f64(),
        execs as f64 / took.as_secs_f64().max(1e-9),
        u8::from(finding.is_some())
    );
    if let Some(input) = finding {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-findings");
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(format!("{name}-{:016x}", rng.next()));
        let _ = std::fs::write(&path, &input);
        // run it once more with the panic printed
        target(&input);
        panic!("{name}: input {} panicked", path.display());
    }
}

// ---- targets -------------------------------------------------------------

/// Valid requests of every kind, as the API proposes them.
fn request_seeds() -> Vec<Vec<u8>> {
    let put = PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        prev_kv: true,
        ..Default::default()
    };
    let range = RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        limit: 3,
        sort_order: 1,
        sort_target: 3,
        ..Default::default()
    };
    let op = |r| RequestOp { request: Some(r) };
    let requests = vec![
        Request::Put(put.clone()),
        Request::DeleteRange(DeleteRangeRequest {
            key: b"a".to_vec(),
            range_end: vec![0],
            prev_kv: true,
        }),
        Request::Txn(TxnRequest {
            compare: vec![Compare {
                result: 0,
                target: 2,
                key: b"k".to_vec(),
                range_end: Vec::new(),
                target_union: Some(compare::TargetUnion::ModRevision(1)),
            }],
            success: vec![
                op(request_op::Request::RequestPut(put)),
                op(request_op::Request::RequestRange(range)),
            ],
            failure: vec![op(request_op::Request::RequestTxn(TxnRequest::default()))],
        }),
        Request::Compaction(CompactionRequest {
            revision: 2,
            physical: true,
        }),
        Request::LeaseGrant(LeaseGrantRequest { ttl: 10, id: 7 }),
        Request::LeaseRevoke(LeaseRevokeRequest { id: 7 }),
        Request::Alarm(AlarmRequest {
            action: 1,
            member_id: 1,
            alarm: 1,
        }),
        Request::AuthUserAdd(rsetcd::proto::internal::InternalUserAddRequest {
            name: "u".into(),
            hashed_password: b"$2a$04$abcdefghijklmnopqrstuu".to_vec(),
            no_password: false,
        }),
        Request::AuthRoleAdd(AuthRoleAddRequest { name: "r".into() }),
        Request::AuthRoleGrantPermission(AuthRoleGrantPermissionRequest {
            name: "r".into(),
            perm: Some(rsetcd::proto::authpb::Permission {
                perm_type: 2,
                key: b"a".to_vec(),
                range_end: b"b".to_vec(),
            }),
        }),
        Request::AuthUserGrantRole(AuthUserGrantRoleRequest {
            user: "u".into(),
            role: "r".into(),
        }),
    ];
    requests
        .into_iter()
        .map(|r| {
            InternalRaftRequest {
                header: Some(rsetcd::proto::internal::RequestHeader {
                    id: 1,
                    ..Default::default()
                }),
                request: Some(r),
            }
            .encode_to_vec()
        })
        .collect()
}

/// A raft entry's bytes as every member meets them: decoded, and applied
/// to a store (whose state carries over between inputs, as a log's does).
/// Only this member's own storage failing may be an error of apply.
#[test]
fn raft_entry_decode_and_apply() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut scratch = rsetcd::apply::Scratch::open(dir.path()).expect("scratch store");
    fuzz("raft_entry", request_seeds(), |bytes| {
        let Ok(entry) = InternalRaftRequest::decode(bytes) else {
            return false;
        };
        let Some(request) = entry.request else {
            return false;
        };
        let caller = entry
            .header
            .filter(|h| !h.internal)
            .map(|h| rsetcd::auth::AuthInfo {
                username: h.username,
                revision: h.auth_revision,
            });
        if let Err(e) = scratch.apply(&request, caller) {
            panic!("apply failed as only a broken disk may: {e}");
        }
        true
    });
}

/// What a member receives on the peer port: batches and raft messages.
#[test]
fn peer_messages_decode() {
    let mut m = raft::eraftpb::Message::default();
    m.set_msg_type(raft::eraftpb::MessageType::MsgAppend);
    m.from = 1;
    m.to = 2;
    m.index = 5;
    m.commit = 4;
    m.entries = vec![raft::eraftpb::Entry {
        index: 6,
        term: 2,
        data: request_seeds()[0].clone().into(),
        ..Default::default()
    }]
    .into();
    let message = m.write_to_bytes().expect("encode");
    let batch = rsetcd::proto::peer::RaftBatch {
        route: Some(rsetcd::proto::peer::Route {
            cluster_id: 1,
            from: 1,
            to: 2,
        }),
        messages: vec![message.clone()],
    }
    .encode_to_vec();
    fuzz("peer_messages", vec![batch, message], |bytes| {
        let mut decoded = false;
        if let Ok(b) = rsetcd::proto::peer::RaftBatch::decode(bytes) {
            for m in &b.messages {
                decoded |= raft::eraftpb::Message::parse_from_bytes(m).is_ok();
            }
        }
        decoded |= raft::eraftpb::Message::parse_from_bytes(bytes).is_ok();
        let _ = rsetcd::proto::peer::SnapshotChunk::decode(bytes);
        decoded
    });
}

/// A WAL segment as it may be found on disk after a crash or damage.
#[test]
fn wal_segment_replay() {
    use raft::eraftpb::{Entry, HardState};
    let seed_dir = tempfile::tempdir().expect("temp dir");
    {
        let (mut wal, _) = rsetcd::storage::wal::Wal::open(seed_dir.path()).expect("wal");
        let entries: Vec<Entry> = (1..=3)
            .map(|i| Entry {
                index: i,
                term: 1,
                data: vec![i as u8; 5].into(),
                ..Default::default()
            })
            .collect();
        wal.append_entries(&entries).expect("append");
        wal.set_hard_state(&HardState {
            term: 1,
            commit: 2,
            ..Default::default()
        })
        .expect("hard state");
        wal.sync().expect("sync");
    }
    let segment = std::fs::read_dir(seed_dir.path())
        .expect("read dir")
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "wal"))
        .expect("a segment")
        .path();
    let full = std::fs::read(&segment).expect("read segment");
    // the written part; the rest is preallocated zeros
    let end = full.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    let name = segment.file_name().expect("name").to_owned();
    let dir = tempfile::tempdir().expect("temp dir");
    fuzz("wal_segment", vec![full[..end].to_vec()], |bytes| {
        let path = dir.path().join(&name);
        std::fs::write(&path, bytes).expect("write segment");
        let opened = rsetcd::storage::wal::Wal::open(dir.path()).is_ok();
        // open may add a segment (a head, a rotation): each input starts
        // from an empty directory
        for e in std::fs::read_dir(dir.path()).expect("read dir").flatten() {
            let _ = std::fs::remove_file(e.path());
        }
        opened
    });
}

/// A backend record as a restart's scan reads it in place and as prost
/// decodes it: the two agree on every input (both refuse, or both read the
/// same key, revisions, version and lease).
#[test]
fn backend_record_scan() {
    use rsetcd::proto::mvccpb::KeyValue;
    let seeds: Vec<Vec<u8>> = [
        KeyValue::default(),
        KeyValue {
            key: b"foo".to_vec(),
            create_revision: 2,
            mod_revision: 9,
            version: 4,
            value: b"bar".to_vec(),
            lease: 7587,
        },
    ]
    .iter()
    .flat_map(|kv| {
        [0u8, 1].map(|kind| {
            let mut v = vec![kind];
            v.extend(kv.encode_to_vec());
            v
        })
    })
    .collect();
    fuzz("backend_record", seeds, |bytes| {
        let [scanned, decoded] = rsetcd::mvcc::store::scan_and_decode_record(bytes);
        assert_eq!(
            scanned.is_ok(),
            decoded.is_ok(),
            "{scanned:?} vs {decoded:?}"
        );
        if let (Ok(a), Ok(b)) = (&scanned, &decoded) {
            assert_eq!(a, b);
        }
        scanned.is_ok()
    });
}

/// A backend or snapshot file handed to the member or to etcdutl: checked
/// before LMDB maps it, so damage is an error, never SIGSEGV or SIGBUS.
#[test]
fn backend_file_check_and_snapshot_status() {
    let seed_dir = tempfile::tempdir().expect("temp dir");
    {
        let mut s = rsetcd::apply::Scratch::open(seed_dir.path()).expect("scratch");
        for r in request_seeds() {
            if let Some(request) = InternalRaftRequest::decode(&r[..])
                .ok()
                .and_then(|e| e.request)
            {
                let _ = s.apply(&request, None);
            }
        }
    }
    let db = std::fs::read(seed_dir.path().join("db")).expect("read db");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("snapshot.db");
    fuzz("backend_file", vec![db], |bytes| {
        std::fs::write(&path, bytes).expect("write file");
        rsetcd::etcdutl::snapshot::status(&path).is_ok()
    });
}

/// A snapshot in etcd's format (bbolt) given to `etcdutl snapshot status`
/// and `snapshot restore`: bbolt's check, the status numbers, and the
/// import into a backend, on etcd 3.4's own file and mutants of it.
#[test]
fn etcd_snapshot_status_and_import() {
    let etcd = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/etcd-3.4.23-snapshot.db"),
    )
    .expect("read the etcd snapshot fixture");
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("snapshot.db");
    let backend =
        rsetcd::storage::backend::Backend::open(&dir.path().join("db"), 1 << 30).expect("backend");
    fuzz("etcd_snapshot", vec![etcd], |bytes| {
        std::fs::write(&path, bytes).expect("write file");
        let ok = rsetcd::etcdutl::snapshot::status(&path).is_ok();
        if ok {
            let reader =
                rsetcd::storage::bbolt::Reader::from_bytes(bytes.to_vec()).expect("status read it");
            let mut txn = backend.env.write_txn().expect("txn");
            for table in [backend.kv, backend.meta, backend.lease] {
                table.clear(&mut txn).expect("clear");
            }
            txn.commit().expect("commit");
            let _ = rsetcd::mvcc::etcd_format::import(&reader, &backend);
        }
        ok
    });
}

/// The JSON gateway's request decoder: every request type of the API
/// from JSON bodies (what curl and HTTP clients send to /v3/...), and the
/// response encoder on what the decoder produced.
#[test]
fn gateway_json_requests() {
    use rsetcd::api::gateway::json;
    let pool = json::pool();
    let inputs: Vec<_> = pool
        .services()
        .flat_map(|s| s.methods().collect::<Vec<_>>())
        .map(|m| m.input())
        .collect();
    let seeds: Vec<Vec<u8>> = [
        &br#"{"key":"Zm9v","range_end":"Zm9w","limit":"5","sort_order":"DESCEND"}"#[..],
        br#"{"compare":[{"key":"Zm9v","result":"EQUAL","target":"VALUE","value":"YmFy"}],"success":[{"request_put":{"key":"Zm9v","value":"YmFy"}}],"failure":[{"request_txn":{"success":[{"request_range":{"key":"Zm9v"}}]}}]}"#,
        br#"{"create_request":{"key":"Zm9v","filters":["NOPUT"],"prev_kv":true}}"#,
        br#"{"TTL":60,"ID":1000}"#,
        br#"{"name":"r1","perm":{"key":"Zm9v","range_end":"Zm9w","permType":"READWRITE"}}"#,
        br#"{"peerURLs":["http://127.0.0.1:2380"],"isLearner":true}"#,
        b"",
    ]
    .iter()
    .map(|s| s.to_vec())
    .collect();
    let mut which = 0usize;
    fuzz("gateway_json", seeds, |bytes| {
        which = which.wrapping_add(1);
        let desc = &inputs[which % inputs.len()];
        match json::decode_request(desc, bytes) {
            Ok(encoded) => {
                let _ = json::encode_response(desc, &encoded);
                true
            }
            Err(_) => false,
        }
    });
}

/// The daemon's command line, environment file (systemd's syntax, as a
/// reload reads it) and YAML config file.
#[test]
fn config_flags_env_and_yaml() {
    let yaml = b"name: m1\ndata-dir: /tmp/x\nlisten-client-urls: http://127.0.0.1:2379\n\
        initial-cluster: m1=http://127.0.0.1:2380\nsnapshot-count: 100\n\
        client-transport-security:\n  cert-file: a.pem\n  client-cert-auth: true\n\
        log-outputs: [stderr]\nquota-backend-bytes: 1024\n"
        .to_vec();
    let flags = b"--name=m1\0--snapshot-count\x0010\0--heartbeat-interval=50\0\
        --election-timeout=500\0--listen-client-urls=http://127.0.0.1:1\0--log-level=debug\0\
        --auto-compaction-retention=1h\0--initial-cluster-state=existing"
        .to_vec();
    let env = b"# etcd.conf\nETCD_NAME=m1\nETCD_DATA_DIR=\"/tmp/x\"\nETCD_QUOTA_BACKEND_BYTES=8589934592\n\
        ETCD_INITIAL_CLUSTER='default=http://localhost:2380'\nETCD_LOG_LEVEL=de\\\nbug"
        .to_vec();
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("etcd.conf.yml");
    // first byte: which parser; the rest its input
    let seeds = vec![
        [&[0u8][..], &flags].concat(),
        [&[1u8][..], &env].concat(),
        [&[2u8][..], &yaml].concat(),
    ];
    fuzz("config", seeds, |bytes| {
        let Some((&which, rest)) = bytes.split_first() else {
            return false;
        };
        let text = String::from_utf8_lossy(rest);
        let mut args: Vec<std::ffi::OsString> = vec!["etcd".into()];
        let mut env = Vec::new();
        match which % 3 {
            0 => args.extend(text.split('\0').map(Into::into)),
            // an environment file as systemd and a reload read it
            1 => env.extend(rsetcd::config::envfile::parse(&text).0),
            _ => {
                std::fs::write(&file, rest).expect("write config");
                args.push(format!("--config-file={}", file.display()).into());
            }
        }
        rsetcd::config::parse(args, env).is_ok()
    });
}

/// Tokens as clients send them: simple tokens and JWTs.
#[test]
fn auth_tokens() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("secret");
    std::fs::write(&key, b"0123456789abcdef").expect("write key");
    let options = format!("jwt,priv-key={},sign-method=HS256,ttl=1m", key.display());
    let jwt = rsetcd::auth::token::Provider::from_options(&options, Duration::from_secs(60))
        .expect("jwt provider");
    let simple = rsetcd::auth::token::Provider::from_options("simple", Duration::from_secs(60))
        .expect("simple provider");
    let (rsetcd::auth::token::Provider::Jwt(jwt), rsetcd::auth::token::Provider::Simple(simple)) =
        (jwt, simple)
    else {
        panic!("providers");
    };
    let signed = jwt.assign("root", 3).expect("sign");
    let given = simple.assign("root", "abcdefghijklmnop", 9);
    fuzz(
        "auth_tokens",
        vec![signed.into_bytes(), given.into_bytes()],
        |bytes| {
            let text = String::from_utf8_lossy(bytes);
            let _ = simple.user(&text);
            let _ = rsetcd::auth::token::SimpleTokens::index_of(&text);
            jwt.info(&text).is_some()
        },
    );
}
