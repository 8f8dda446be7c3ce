//! Maintenance as operators run it: the quota and NOSPACE alarm scenario of
//! etcd's maintenance guide (the user's seed 003) driven by Debian's
//! etcdctl 3.4 against etcd 3.4 and against us; online defrag under a
//! write load; the Snapshot stream's integrity trailer; Hash.

use crate::support;
use crate::support::common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ServerKind, ServerOptions, TestServer, REFERENCE_ETCDCTL};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{
    CompactionRequest, DefragmentRequest, HashRequest, PutRequest, RangeRequest, SnapshotRequest,
    StatusRequest,
};
use sha2::Digest as _;

/// etcd's maintenance guide, step by step: fill one key with 1 MiB values
/// until the quota refuses, check the alarm, compact, defrag, disarm, put.
/// Prints one line per step, with the member id and revisions replaced so
/// that two servers' transcripts compare.
const SCENARIO: &str = r#"
set -u
ctl() { "$ETCDCTL" --endpoints="$EP" "$@"; }
n=0
while [ $n -lt 60 ]; do
  if ! head -c 1048576 /dev/urandom | ctl put key >/dev/null 2>err.txt; then break; fi
  n=$((n+1))
done
echo "put refused after filling: $(grep '^Error' err.txt)"
echo "alarm list: $(ctl alarm list)"
echo "get still works: $(ctl get key --print-value-only | wc -c)"
echo "another put: $(ctl put other x 2>&1 | grep -v '"level"')"
echo "lease grant: $(ctl lease grant 60 2>&1 | grep -v '"level"')"
echo "delete works: $(ctl del nothing-here)"
rev=$(ctl endpoint status --write-out=json | egrep -o '"revision":[0-9]*' | egrep -o '[0-9].*')
echo "compact: $(ctl compact "$rev" | sed "s/$rev/REV/")"
echo "defrag: $(ctl defrag)"
echo "still refused before disarm: $(ctl put newkey 123 2>&1 | grep '^Error')"
echo "disarm: $(ctl alarm disarm)"
echo "alarm list after: [$(ctl alarm list)]"
echo "put after disarm: $(ctl put newkey 123)"
echo "filled with $n puts" >&2
"#;

fn run_scenario(server: &TestServer, etcdctl: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new("bash")
        .arg("-c")
        .arg(SCENARIO)
        .current_dir(dir.path())
        .env("ETCDCTL_API", "3")
        .env("ETCDCTL", etcdctl)
        .env("EP", server.endpoint())
        .output()
        .expect("run the scenario");
    let text = String::from_utf8_lossy(&out.stdout).replace(&server.endpoint(), "EP");
    eprintln!(
        "--- {etcdctl} ({}):\n{text}{}",
        server.client_url,
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn nospace_alarm_scenario_as_etcd() -> anyhow::Result<()> {
    if !common::reference_available() {
        eprintln!("skipped: etcd 3.4 is not installed (apt-get install etcd-server etcd-client)");
        return Ok(());
    }
    // The same advertised peer URL gives both servers the same member id,
    // so alarm listings compare byte for byte.
    let opts = ServerOptions {
        peer_identity_url: Some("http://127.0.0.1:1".into()),
        extra_args: vec!["--quota-backend-bytes=16777216".into()],
        ..Default::default()
    };
    let reference = TestServer::start(ServerKind::Reference, &opts)?;
    let ours = TestServer::start(ServerKind::Ours, &opts)?;
    let want = run_scenario(&reference, REFERENCE_ETCDCTL);
    let got = run_scenario(&ours, REFERENCE_ETCDCTL);
    assert!(
        want.contains(
            "put refused after filling: Error: etcdserver: mvcc: database space exceeded"
        ),
        "etcd 3.4 did not reach its quota: {want}"
    );
    assert_eq!(got, want, "our server differs from etcd 3.4");
    // Our etcdctl tells the same story against our server.
    let ours2 = TestServer::start(ServerKind::Ours, &opts)?;
    let got = run_scenario(&ours2, env!("CARGO_BIN_EXE_etcdctl"));
    assert_eq!(got, want, "our etcdctl against our server differs");
    Ok(())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn put(key: String, value: Vec<u8>) -> PutRequest {
    PutRequest {
        key: key.into_bytes(),
        value,
        ..Default::default()
    }
}

#[test]
fn defrag_under_write_load_loses_no_acknowledged_write() -> anyhow::Result<()> {
    let server = TestServer::start_ours(&ServerOptions::default())?;
    let url = server.client_url.clone();
    runtime().block_on(async move {
        let mut kv = KvClient::connect(url.clone()).await?;
        let mut m = MaintenanceClient::connect(url.clone()).await?;
        // Garbage to give back: 3 generations of 2000 keys x 4 KiB.
        for generation in 0..3u8 {
            for i in 0..2000 {
                kv.put(put(format!("bulk/{i:05}"), vec![generation; 4096]))
                    .await?;
            }
        }
        let rev = m.status(StatusRequest {}).await?.into_inner().header.unwrap().revision;
        kv.compact(CompactionRequest {
            revision: rev,
            physical: true,
        })
        .await?;
        let before = m.status(StatusRequest {}).await?.into_inner();

        // Writers record every acknowledged put and the slowest one.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..8 {
            let (stop, url) = (stop.clone(), url.clone());
            writers.push(tokio::spawn(async move {
                let mut kv = KvClient::connect(url).await?;
                let mut acked = BTreeMap::new();
                let mut slowest = Duration::ZERO;
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("live/{w}/{i:06}");
                    let value = format!("v{w}-{i}").into_bytes();
                    let started = Instant::now();
                    kv.put(put(key.clone(), value.clone())).await?;
                    slowest = slowest.max(started.elapsed());
                    acked.insert(key, value);
                    i += 1;
                }
                anyhow::Ok((acked, slowest))
            }));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = Instant::now();
        m.defragment(DefragmentRequest {}).await?;
        let defrag_took = started.elapsed();
        tokio::time::sleep(Duration::from_millis(500)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut acked = BTreeMap::new();
        let mut slowest = Duration::ZERO;
        for w in writers {
            let (a, s) = w.await??;
            acked.extend(a);
            slowest = slowest.max(s);
        }
        let after = m.status(StatusRequest {}).await?.into_inner();
        eprintln!(
            "defrag took {defrag_took:?}; {} puts acknowledged meanwhile, slowest {slowest:?}; db {} -> {} bytes",
            acked.len(),
            before.db_size,
            after.db_size
        );
        assert!(
            after.db_size < before.db_size / 2,
            "defrag gave back too little: {} -> {}",
            before.db_size,
            after.db_size
        );
        assert!(!acked.is_empty());
        // etcd's defrag metrics saw it.
        let (_, metrics) = support::http::get(&url, "/metrics").await?;
        assert!(
            metrics
                .lines()
                .any(|l| l == "etcd_disk_backend_defrag_duration_seconds_count 1"),
            "defrag not counted:\n{}",
            metrics
                .lines()
                .filter(|l| l.contains("defrag"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        assert!(metrics.lines().any(|l| l == "etcd_disk_defrag_inflight 0"));
        let check = |kvs: Vec<rsetcd::proto::mvccpb::KeyValue>| {
            let found: BTreeMap<String, Vec<u8>> = kvs
                .into_iter()
                .map(|kv| (String::from_utf8_lossy(&kv.key).to_string(), kv.value))
                .collect();
            for (k, v) in &acked {
                assert_eq!(found.get(k), Some(v), "acknowledged {k} lost or changed");
            }
            found.len()
        };
        let live = kv
            .range(RangeRequest {
                key: b"live/".to_vec(),
                range_end: b"live0".to_vec(),
                ..Default::default()
            })
            .await?
            .into_inner();
        let n = check(live.kvs);
        assert_eq!(n, acked.len(), "writes nobody acknowledged appeared");
        let bulk = kv
            .range(RangeRequest {
                key: b"bulk/".to_vec(),
                range_end: b"bulk0".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await?
            .into_inner();
        assert_eq!(bulk.count, 2000);
        anyhow::Ok(())
    })
}

#[test]
fn snapshot_stream_ends_with_the_sha256_of_its_bytes() -> anyhow::Result<()> {
    let server = TestServer::start_ours(&ServerOptions::default())?;
    let url = server.client_url.clone();
    runtime().block_on(async move {
        let mut kv = KvClient::connect(url.clone()).await?;
        let mut m = MaintenanceClient::connect(url.clone()).await?;
        for i in 0..300 {
            kv.put(put(format!("k{i:03}"), vec![b'x'; 1000])).await?;
        }
        let h1 = m.hash(HashRequest {}).await?.into_inner();
        let h2 = m.hash(HashRequest {}).await?.into_inner();
        assert_eq!(h1.hash, h2.hash, "Hash changed without writes");
        assert_eq!(h1.header.as_ref().unwrap().revision, 301);

        let mut stream = m.snapshot(SnapshotRequest {}).await?.into_inner();
        let mut bytes = Vec::new();
        let mut remaining = Vec::new();
        while let Some(msg) = stream.message().await? {
            remaining.push(msg.remaining_bytes);
            bytes.extend_from_slice(&msg.blob);
        }
        // Writes after the snapshot began do not reach it.
        kv.put(put("after".into(), b"1".to_vec())).await?;
        let h3 = m.hash(HashRequest {}).await?.into_inner();
        assert_ne!(h1.hash, h3.hash, "Hash ignored a write");

        assert!(remaining.len() >= 3, "too few messages: {remaining:?}");
        assert!(
            remaining.windows(2).all(|w| w[0] >= w[1]),
            "remaining_bytes must count down: {remaining:?}"
        );
        assert_eq!(remaining.last(), Some(&0));
        assert_eq!(
            bytes.len() % 512,
            32,
            "etcd's trailer rule: size % 512 == 32"
        );
        let (data, trailer) = bytes.split_at(bytes.len() - 32);
        assert_eq!(sha2::Sha256::digest(data).as_slice(), trailer);

        // The snapshot is a bbolt file in etcd's schema with the 300 puts.
        let db = rsetcd::storage::bbolt::Reader::from_bytes(data.to_vec())?;
        assert_eq!(db.check(), Vec::<String>::new());
        let buckets = db.buckets()?;
        let names: Vec<String> = buckets
            .iter()
            .map(|(n, _)| String::from_utf8_lossy(n).into_owned())
            .collect();
        assert_eq!(
            names,
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
        let (_, key) = &buckets[5];
        let mut records = 0;
        db.for_each(key, &mut |k, _| {
            assert_eq!(k.len(), 17, "a put's revision key");
            records += 1;
            Ok(())
        })?;
        assert_eq!(records, 300);
        anyhow::Ok(())
    })
}
