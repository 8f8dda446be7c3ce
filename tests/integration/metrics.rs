//! Prometheus metrics as a monitoring system sees them: after a short
//! workload, /metrics (on the client port and on --listen-metrics-urls)
//! carries etcd's names, types, labels and buckets with values that moved;
//! `promtool check metrics` accepts the output; and etcd's official alert
//! rules (docs/prometheus/etcd-alerts.yaml) evaluate with `promtool test
//! rules` against series carrying our names and label sets.

use crate::support::common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use common::{ServerOptions, TestServer};
use rsetcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::request_op::Request as Op;
use rsetcd::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, StatusRequest, TxnRequest,
};

/// One sample of the text exposition format.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    fn parse(text: &str) -> anyhow::Result<Exposition> {
        let mut types = HashMap::new();
        let mut samples = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').context("TYPE line")?;
                types.insert(name.to_string(), kind.to_string());
                continue;
            }
            if line.starts_with('#') || line.is_empty() {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').context("sample line")?;
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().with_context(|| format!("value in {line}"))?,
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => (
                    name.to_string(),
                    parse_labels(rest.strip_suffix('}').context("label set")?)?,
                ),
            };
            samples.push(Sample {
                name,
                labels,
                value,
            });
        }
        Ok(Exposition { types, samples })
    }

    fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The value of the one sample of `name` whose labels include `labels`.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<&Sample> = self
            .series(name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect();
        match matching.as_slice() {
            [one] => Some(one.value),
            _ => None,
        }
    }

    fn must(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels)
            .unwrap_or_else(|| panic!("no single sample {name}{labels:?}"))
    }

    /// `le` bounds and cumulative counts of a histogram's buckets.
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let bucket = format!("{name}_bucket");
        let mut out: Vec<(f64, f64)> = self
            .series(&bucket)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| {
                let le = match s.labels.get("le").map(String::as_str) {
                    Some("+Inf") => f64::INFINITY,
                    Some(v) => v.parse().unwrap_or(f64::NAN),
                    None => f64::NAN,
                };
                (le, s.value)
            })
            .collect();
        out.sort_by(|a, b| a.0.total_cmp(&b.0));
        out
    }
}

fn parse_labels(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while !rest.is_empty() {
        let (name, after) = rest.split_once("=\"").context("label name")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(match e {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.context("unterminated label value")?;
        labels.insert(name.trim_start_matches(',').to_string(), value);
        rest = after[end + 1..].trim_start_matches(',');
    }
    Ok(labels)
}

/// etcd's `prometheus.ExponentialBuckets(start, factor, count)` plus +Inf.
fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    let mut v: Vec<f64> = (0..count).map(|i| start * factor.powi(i as i32)).collect();
    v.push(f64::INFINITY);
    v
}

fn http_get(base: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("no HTTP header end")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("status")?;
    Ok((status, body.to_string()))
}

/// Our server with a metrics listener, after a short KV workload.
struct Scraped {
    server: TestServer,
    metrics_url: String,
    member_id: u64,
    text: String,
}

fn scrape_after_workload() -> anyhow::Result<Scraped> {
    let metrics_port = common::free_port()?;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}");
    let server = TestServer::start_ours(&ServerOptions {
        extra_args: vec![
            format!("--listen-metrics-urls={metrics_url}"),
            "--metrics=extensive".to_string(),
            // Snapshots during the workload fill etcd_snap_fsync_*.
            "--snapshot-count=10".to_string(),
        ],
        ..ServerOptions::default()
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let member_id = runtime.block_on(async {
        let mut kv = KvClient::connect(server.client_url.clone()).await?;
        let mut member_id = 0;
        for i in 0..30 {
            let r = kv
                .put(PutRequest {
                    key: format!("k{i:02}").into_bytes(),
                    value: vec![b'v'; 100],
                    ..Default::default()
                })
                .await?;
            member_id = r.into_inner().header.map(|h| h.member_id).unwrap_or(0);
        }
        for serializable in [false, true] {
            for _ in 0..5 {
                kv.range(RangeRequest {
                    key: b"k".to_vec(),
                    range_end: b"l".to_vec(),
                    serializable,
                    ..Default::default()
                })
                .await?;
            }
        }
        kv.delete_range(DeleteRangeRequest {
            key: b"k00".to_vec(),
            ..Default::default()
        })
        .await?;
        kv.txn(TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Greater as i32,
                target: CompareTarget::Version as i32,
                key: b"k01".to_vec(),
                target_union: Some(TargetUnion::Version(0)),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(Op::RequestPut(PutRequest {
                    key: b"k01".to_vec(),
                    value: b"again".to_vec(),
                    ..Default::default()
                })),
            }],
            failure: vec![],
        })
        .await?;
        // An invalid request: counted with its gRPC code.
        let invalid = kv.range(RangeRequest::default()).await;
        assert_eq!(
            invalid.err().map(|s| s.code()),
            Some(tonic::Code::InvalidArgument)
        );
        let mut m = MaintenanceClient::connect(server.client_url.clone()).await?;
        m.status(StatusRequest {}).await?;
        anyhow::Ok(member_id)
    })?;
    let (status, _) = http_get(&server.client_url, "/health")?;
    assert_eq!(status, 200);
    let (status, text) = http_get(&metrics_url, "/metrics")?;
    assert_eq!(status, 200, "{text}");
    Ok(Scraped {
        server,
        metrics_url,
        member_id,
        text,
    })
}

/// The metrics the issue names, with etcd's types (quirks included).
const TYPES: &[(&str, &str)] = &[
    ("etcd_server_has_leader", "gauge"),
    ("etcd_server_is_leader", "gauge"),
    ("etcd_server_is_learner", "gauge"),
    ("etcd_server_leader_changes_seen_total", "counter"),
    // A gauge in etcd despite its name.
    ("etcd_server_proposals_committed_total", "gauge"),
    ("etcd_server_proposals_applied_total", "gauge"),
    ("etcd_server_proposals_pending", "gauge"),
    ("etcd_server_proposals_failed_total", "counter"),
    ("etcd_server_heartbeat_send_failures_total", "counter"),
    ("etcd_server_slow_apply_total", "counter"),
    ("etcd_server_quota_backend_bytes", "gauge"),
    ("etcd_server_version", "gauge"),
    ("etcd_server_id", "gauge"),
    ("etcd_cluster_version", "gauge"),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
    ("etcd_disk_wal_write_duration_seconds", "histogram"),
    ("etcd_disk_backend_commit_duration_seconds", "histogram"),
    ("etcd_disk_backend_defrag_duration_seconds", "histogram"),
    ("etcd_snap_fsync_duration_seconds", "histogram"),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
    ("etcd_mvcc_range_total", "counter"),
    ("etcd_mvcc_put_total", "counter"),
    ("etcd_mvcc_delete_total", "counter"),
    ("etcd_mvcc_txn_total", "counter"),
    ("etcd_debugging_mvcc_keys_total", "gauge"),
    ("etcd_debugging_mvcc_watcher_total", "gauge"),
    ("etcd_debugging_mvcc_watch_stream_total", "gauge"),
    ("etcd_debugging_mvcc_slow_watcher_total", "gauge"),
    ("grpc_server_started_total", "counter"),
    ("grpc_server_handled_total", "counter"),
    ("grpc_server_msg_received_total", "counter"),
    ("grpc_server_msg_sent_total", "counter"),
    ("grpc_server_handling_seconds", "histogram"),
    ("process_cpu_seconds_total", "counter"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_virtual_memory_bytes", "gauge"),
    ("process_open_fds", "gauge"),
    ("process_max_fds", "gauge"),
    ("process_start_time_seconds", "gauge"),
    ("rsetcd_build_info", "gauge"),
];

#[test]
fn metrics_have_etcds_names_and_move_with_a_workload() -> anyhow::Result<()> {
    let s = scrape_after_workload()?;
    let m = Exposition::parse(&s.text)?;
    for (name, kind) in TYPES {
        assert_eq!(
            m.types.get(*name).map(String::as_str),
            Some(*kind),
            "TYPE of {name}"
        );
    }
    // The client port serves the same metrics.
    let (status, client_text) = http_get(&s.server.client_url, "/metrics")?;
    assert_eq!(status, 200);
    let client = Exposition::parse(&client_text)?;
    assert_eq!(client.types, m.types);
    // The metrics listener serves health but not the KV API's /version.
    assert_eq!(http_get(&s.metrics_url, "/health")?.0, 200);
    assert_eq!(http_get(&s.metrics_url, "/readyz")?.0, 200);
    assert_eq!(http_get(&s.metrics_url, "/version")?.0, 404);

    // Raft and server state of a healthy single member.
    assert_eq!(m.must("etcd_server_has_leader", &[]), 1.0);
    assert_eq!(m.must("etcd_server_is_leader", &[]), 1.0);
    assert_eq!(m.must("etcd_server_is_learner", &[]), 0.0);
    assert_eq!(m.must("etcd_server_leader_changes_seen_total", &[]), 1.0);
    let committed = m.must("etcd_server_proposals_committed_total", &[]);
    let applied = m.must("etcd_server_proposals_applied_total", &[]);
    assert!(committed >= 33.0, "committed index {committed}");
    assert!(applied >= 33.0 && applied <= committed, "applied {applied}");
    assert_eq!(m.must("etcd_server_proposals_failed_total", &[]), 0.0);
    assert_eq!(
        m.must("etcd_server_heartbeat_send_failures_total", &[]),
        0.0
    );
    assert_eq!(m.must("etcd_server_slow_apply_total", &[]), 0.0);
    assert_eq!(m.must("etcd_server_quota_backend_bytes", &[]), 2147483648.0);
    assert_eq!(
        m.must("etcd_server_version", &[("server_version", "3.5.17")]),
        1.0
    );
    let id = format!("{:x}", s.member_id);
    assert_eq!(m.must("etcd_server_id", &[("server_id", &id)]), 1.0);
    assert_eq!(
        m.must("etcd_cluster_version", &[("cluster_version", "3.5")]),
        1.0
    );
    assert!(m.must("etcd_server_health_success", &[]) >= 1.0);
    assert!(
        m.must(
            "etcd_server_client_requests_total",
            &[("type", "unary"), ("client_api_version", "unknown")]
        ) >= 40.0
    );

    // Disk latencies: etcd's buckets, filled by the workload.
    let ms_to_8s = exponential(0.001, 2.0, 14);
    for (name, min_count) in [
        ("etcd_disk_wal_fsync_duration_seconds", 30.0),
        ("etcd_disk_wal_write_duration_seconds", 30.0),
        ("etcd_snap_fsync_duration_seconds", 1.0),
    ] {
        let b = m.buckets(name, &[]);
        let les: Vec<f64> = b.iter().map(|x| x.0).collect();
        assert_eq!(les, ms_to_8s, "{name} buckets");
        assert!(b.windows(2).all(|w| w[0].1 <= w[1].1), "{name} cumulative");
        let count = m.must(&format!("{name}_count"), &[]);
        assert_eq!(b.last().map(|x| x.1), Some(count), "{name} +Inf = count");
        assert!(count >= min_count, "{name}_count {count}");
        assert!(m.must(&format!("{name}_sum"), &[]) > 0.0, "{name}_sum");
    }
    let les: Vec<f64> = m
        .buckets("etcd_disk_backend_commit_duration_seconds", &[])
        .iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(les, ms_to_8s);
    let les: Vec<f64> = m
        .buckets("etcd_disk_backend_defrag_duration_seconds", &[])
        .iter()
        .map(|x| x.0)
        .collect();
    assert_eq!(les, exponential(0.1, 2.0, 13));
    assert!(m.must("etcd_disk_wal_write_bytes_total", &[]) > 3000.0);

    // Database size and keys (29 live keys after one delete).
    let total = m.must("etcd_mvcc_db_total_size_in_bytes", &[]);
    let in_use = m.must("etcd_mvcc_db_total_size_in_use_in_bytes", &[]);
    assert!(in_use > 0.0 && total >= in_use, "{total} >= {in_use}");
    assert_eq!(m.must("etcd_debugging_mvcc_keys_total", &[]), 29.0);
    assert_eq!(m.must("etcd_debugging_mvcc_current_revision", &[]), 33.0);

    // gRPC, labelled as go-grpc-prometheus labels them.
    let put = [
        ("grpc_type", "unary"),
        ("grpc_service", "etcdserverpb.KV"),
        ("grpc_method", "Put"),
    ];
    assert_eq!(m.must("grpc_server_started_total", &put), 30.0);
    assert_eq!(m.must("grpc_server_msg_received_total", &put), 30.0);
    assert_eq!(m.must("grpc_server_msg_sent_total", &put), 30.0);
    let mut put_ok = put.to_vec();
    put_ok.push(("grpc_code", "OK"));
    assert_eq!(m.must("grpc_server_handled_total", &put_ok), 30.0);
    assert_eq!(m.must("grpc_server_handling_seconds_count", &put), 30.0);
    let invalid_range = [("grpc_method", "Range"), ("grpc_code", "InvalidArgument")];
    assert_eq!(m.must("grpc_server_handled_total", &invalid_range), 1.0);
    // Every method of etcd's services is there from the start, e.g. Watch
    // as a bidirectional stream.
    assert_eq!(
        m.must(
            "grpc_server_started_total",
            &[("grpc_method", "Watch"), ("grpc_type", "bidi_stream")]
        ),
        0.0
    );
    assert_eq!(
        m.series("grpc_server_handled_total")
            .filter(|s| s.labels.get("grpc_method").map(String::as_str) == Some("Defragment"))
            .count(),
        17,
        "one series per gRPC code"
    );
    assert!(m.must("etcd_network_client_grpc_sent_bytes_total", &[]) > 3000.0);
    assert!(m.must("etcd_network_client_grpc_received_bytes_total", &[]) > 3000.0);

    // The process.
    assert!(m.must("process_cpu_seconds_total", &[]) > 0.0);
    assert!(m.must("process_resident_memory_bytes", &[]) > 1e6);
    assert!(m.must("process_open_fds", &[]) >= 5.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let start = m.must("process_start_time_seconds", &[]);
    assert!(
        start <= now && start > now - 600.0,
        "start {start}, now {now}"
    );
    assert_eq!(
        m.must("rsetcd_build_info", &[("etcd_version", "3.5.17")]),
        1.0
    );

    // Peer metrics are per remote member: a single member has none (as
    // etcd shows none); they appear with the peer transport.
    assert!(m
        .series("etcd_network_peer_sent_bytes_total")
        .next()
        .is_none());
    Ok(())
}

/// Counters recorded by the apply thread and the MVCC store.
#[test]
fn apply_and_mvcc_counters_move_with_a_workload() -> anyhow::Result<()> {
    let s = scrape_after_workload()?;
    let m = Exposition::parse(&s.text)?;
    // 30 puts + 1 in the txn; 10 ranges; 1 delete; 1 txn of two ops.
    assert!(m.must("etcd_mvcc_put_total", &[]) >= 31.0);
    assert!(m.must("etcd_mvcc_range_total", &[]) >= 10.0);
    assert!(m.must("etcd_mvcc_delete_total", &[]) >= 1.0);
    assert!(m.must("etcd_mvcc_txn_total", &[]) >= 1.0);
    assert!(m.must("etcd_disk_backend_commit_duration_seconds_count", &[]) >= 1.0);
    Ok(())
}

/// --unsafe-no-fsync (etcd 3.5): writes are served, and neither the WAL
/// nor the backend is ever fsynced: the WAL fsync histogram stays empty
/// (with fsyncs it counts one per write here, see above), as etcd's.
#[test]
fn unsafe_no_fsync_serves_writes_without_a_wal_fsync() -> anyhow::Result<()> {
    let metrics_port = common::free_port()?;
    let metrics_url = format!("http://127.0.0.1:{metrics_port}");
    let server = TestServer::start_ours(&ServerOptions {
        extra_args: vec![
            format!("--listen-metrics-urls={metrics_url}"),
            "--unsafe-no-fsync".to_string(),
        ],
        ..ServerOptions::default()
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut kv = KvClient::connect(server.client_url.clone()).await?;
        for i in 0..20 {
            kv.put(PutRequest {
                key: format!("k{i:02}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await?;
        }
        let r = kv
            .range(RangeRequest {
                key: b"k".to_vec(),
                range_end: b"l".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await?;
        assert_eq!(r.into_inner().count, 20);
        anyhow::Ok(())
    })?;
    let (_, text) = http_get(&metrics_url, "/metrics")?;
    let m = Exposition::parse(&text)?;
    assert!(m.must("etcd_mvcc_put_total", &[]) >= 20.0);
    assert_eq!(
        m.must("etcd_disk_wal_fsync_duration_seconds_count", &[]),
        0.0
    );
    assert!(
        server.log().contains("--unsafe-no-fsync is set"),
        "the warning is logged"
    );
    Ok(())
}

/// etcd_debugging_auth_revision follows the auth store: 1 on a new member,
/// one more after each user, role or enable change, as etcd's gauge.
#[test]
fn auth_revision_gauge_moves_with_auth_changes() -> anyhow::Result<()> {
    use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
    use rsetcd::proto::etcdserverpb::{AuthRoleAddRequest, AuthUserAddRequest};
    let server = TestServer::start_ours(&ServerOptions::default())?;
    let revision = || -> anyhow::Result<f64> {
        let (status, text) = http_get(&server.client_url, "/metrics")?;
        assert_eq!(status, 200);
        let m = Exposition::parse(&text)?;
        assert_eq!(
            m.types
                .get("etcd_debugging_auth_revision")
                .map(String::as_str),
            Some("gauge")
        );
        assert!(
            text.contains(
                "# HELP etcd_debugging_auth_revision The current revision of auth store.\n"
            ),
            "etcd's help text"
        );
        Ok(m.must("etcd_debugging_auth_revision", &[]))
    };
    assert_eq!(revision()?, 1.0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut auth = AuthClient::connect(server.client_url.clone()).await?;
        auth.user_add(AuthUserAddRequest {
            name: "alice".into(),
            password: "pw".into(),
            ..Default::default()
        })
        .await?;
        anyhow::Ok(())
    })?;
    assert_eq!(revision()?, 2.0, "after user add");
    runtime.block_on(async {
        let mut auth = AuthClient::connect(server.client_url.clone()).await?;
        auth.role_add(AuthRoleAddRequest {
            name: "reader".into(),
        })
        .await?;
        anyhow::Ok(())
    })?;
    assert_eq!(revision()?, 3.0, "after role add");
    Ok(())
}

/// rsetcd_server_apply_backlog_bytes counts committed entries until they
/// are applied: after a burst of writes it drains to exactly 0 (a leak
/// would one day refuse every write with "too many requests"; an
/// underflow would read as a huge backlog).
#[test]
fn apply_backlog_drains_to_zero() -> anyhow::Result<()> {
    let server = TestServer::start_ours(&ServerOptions::default())?;
    let backlog = || -> anyhow::Result<f64> {
        let (status, text) = http_get(&server.client_url, "/metrics")?;
        assert_eq!(status, 200);
        Ok(Exposition::parse(&text)?.must("rsetcd_server_apply_backlog_bytes", &[]))
    };
    assert_eq!(backlog()?, 0.0, "idle");
    let runtime = tokio::runtime::Runtime::new()?;
    let url = server.client_url.clone();
    runtime.block_on(async move {
        let kv = KvClient::connect(url).await?;
        let puts = (0..200).map(|i| {
            let mut kv = kv.clone();
            async move {
                kv.put(PutRequest {
                    key: format!("burst/{i}").into_bytes(),
                    value: vec![b'x'; 10 * 1024],
                    ..Default::default()
                })
                .await
            }
        });
        for r in futures::future::join_all(puts).await {
            r?;
        }
        anyhow::Ok(())
    })?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let b = backlog()?;
        assert!(b < 1e9, "an underflowed backlog: {b}");
        if b == 0.0 {
            return Ok(());
        }
        assert!(std::time::Instant::now() < deadline, "backlog stuck at {b}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// rsetcd_auth_peers_unauthenticated: 1 while auth is on and the peer port
/// (http here) does not authenticate members, 0 otherwise.
#[test]
fn peers_unauthenticated_gauge_follows_auth() -> anyhow::Result<()> {
    use rsetcd::proto::etcdserverpb::auth_client::AuthClient;
    use rsetcd::proto::etcdserverpb::{
        AuthDisableRequest, AuthEnableRequest, AuthUserAddRequest, AuthUserGrantRoleRequest,
        AuthenticateRequest,
    };
    let server = TestServer::start_ours(&ServerOptions::default())?;
    let gauge = || -> anyhow::Result<f64> {
        let (status, text) = http_get(&server.client_url, "/metrics")?;
        assert_eq!(status, 200);
        let m = Exposition::parse(&text)?;
        Ok(m.must("rsetcd_auth_peers_unauthenticated", &[]))
    };
    assert_eq!(gauge()?, 0.0, "auth off");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let url = server.client_url.clone();
    let root_token = runtime.block_on(async {
        let mut auth = AuthClient::connect(url).await?;
        auth.user_add(AuthUserAddRequest {
            name: "root".into(),
            password: "pw".into(),
            ..Default::default()
        })
        .await?;
        auth.user_grant_role(AuthUserGrantRoleRequest {
            user: "root".into(),
            role: "root".into(),
        })
        .await?;
        auth.auth_enable(AuthEnableRequest {}).await?;
        let token = auth
            .authenticate(AuthenticateRequest {
                name: "root".into(),
                password: "pw".into(),
            })
            .await?
            .into_inner()
            .token;
        anyhow::Ok(token)
    })?;
    assert_eq!(gauge()?, 1.0, "auth on, http peers");
    let url = server.client_url.clone();
    runtime.block_on(async {
        let mut auth = AuthClient::connect(url).await?;
        let mut disable = tonic::Request::new(AuthDisableRequest {});
        disable.metadata_mut().insert("token", root_token.parse()?);
        auth.auth_disable(disable).await?;
        anyhow::Ok(())
    })?;
    assert_eq!(gauge()?, 0.0, "auth off again");
    Ok(())
}

/// promtool, or None (with the reason printed) when it is not installed.
fn promtool() -> Option<&'static str> {
    let path = "/usr/bin/promtool";
    if std::path::Path::new(path).is_file() {
        Some(path)
    } else {
        eprintln!("skipping: {path} not found (apt-get install prometheus)");
        None
    }
}

/// Names promtool's linter flags on etcd's own /metrics (checked against
/// etcd 3.4.23): we keep etcd's names, so we inherit these complaints.
const ETCD_NAMING_QUIRKS: &[&str] = &[
    "etcd_debugging_lease_ttl_total",
    "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
    "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
    "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
    "etcd_debugging_mvcc_keys_total",
    "etcd_debugging_mvcc_pending_events_total",
    "etcd_debugging_mvcc_slow_watcher_total",
    "etcd_debugging_mvcc_watch_stream_total",
    "etcd_debugging_mvcc_watcher_total",
    "etcd_disk_wal_write_bytes_total",
    "etcd_server_health_failures",
    "etcd_server_health_success",
    "etcd_server_learner_promote_successes",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_snapshot_apply_in_progress_total",
];

#[test]
fn promtool_check_metrics_accepts_our_output() -> anyhow::Result<()> {
    let Some(promtool) = promtool() else {
        return Ok(());
    };
    let s = scrape_after_workload()?;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(s.text.as_bytes())?;
    let out = child.wait_with_output()?;
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // 0: clean; 3: parsed, with lint findings; anything else: a format error.
    let code = out.status.code();
    assert!(
        matches!(code, Some(0) | Some(3)),
        "promtool exit {code:?}:\n{report}"
    );
    for line in report.lines().filter(|l| !l.trim().is_empty()) {
        let name = line.split_whitespace().next().unwrap_or_default();
        assert!(
            ETCD_NAMING_QUIRKS.contains(&name),
            "promtool lint finding not inherited from etcd: {line}"
        );
    }
    Ok(())
}

/// Renders series for a promtool test: our label set plus the scrape
/// target's `job`, `instance` and `cluster`.
fn series_name(s: &Sample, overrides: &[(&str, &str)]) -> String {
    let mut labels = s.labels.clone();
    labels.insert("job".into(), "etcd".into());
    labels.insert("instance".into(), "member-1".into());
    labels.insert("cluster".into(), "test".into());
    for (k, v) in overrides {
        labels.insert(k.to_string(), v.to_string());
    }
    let body: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
        .collect();
    format!("{}{{{}}}", s.name, body.join(","))
}

fn input(out: &mut String, series: &str, values: &str) {
    let _ = writeln!(
        out,
        "      - series: '{series}'\n        values: '{values}'"
    );
}

/// `values` for a counter that starts at `base` and grows `per_minute`.
fn growing(base: f64, per_minute: f64, minutes: usize) -> String {
    format!("{base}+{per_minute}x{minutes}")
}

fn flat(base: f64, minutes: usize) -> String {
    format!("{base}x{minutes}")
}

/// A histogram whose observations from now on all land in the bucket with
/// upper bound `slow_le`: buckets below keep their scraped count, the rest
/// grow by `per_minute`.
fn slow_histogram(
    out: &mut String,
    m: &Exposition,
    name: &str,
    labels: &[(&str, &str)],
    slow_le: f64,
) {
    let bucket = format!("{name}_bucket");
    for s in m.series(&bucket).filter(|s| {
        labels
            .iter()
            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
    }) {
        let le = match s.labels.get("le").map(String::as_str) {
            Some("+Inf") => f64::INFINITY,
            Some(v) => v.parse().unwrap_or(f64::NAN),
            None => f64::NAN,
        };
        let values = if le >= slow_le {
            growing(s.value, 60.0, 40)
        } else {
            flat(s.value, 40)
        };
        input(out, &series_name(s, &[]), &values);
    }
}

struct Alert<'a> {
    eval: &'a str,
    name: &'a str,
    /// Each expected alert: its labels and description ({} = none fires).
    expected: Vec<(Vec<(&'a str, &'a str)>, String)>,
}

fn alert_tests(out: &mut String, alerts: &[Alert<'_>], summaries: &HashMap<&str, &str>) {
    out.push_str("    alert_rule_test:\n");
    for a in alerts {
        let _ = writeln!(
            out,
            "      - eval_time: {}\n        alertname: {}",
            a.eval, a.name
        );
        if a.expected.is_empty() {
            out.push_str("        exp_alerts: []\n");
            continue;
        }
        out.push_str("        exp_alerts:\n");
        for (labels, description) in &a.expected {
            out.push_str("          - exp_labels:\n");
            for (k, v) in labels {
                let _ = writeln!(out, "              {k}: '{v}'");
            }
            out.push_str("            exp_annotations:\n");
            let _ = writeln!(
                out,
                "              description: '{}'\n              summary: '{}'",
                description.replace('\'', "''"),
                summaries[a.name]
            );
            if a.name == "etcdDatabaseHighFragmentationRatio" {
                out.push_str("              runbook_url: 'https://etcd.io/docs/v3.5/op-guide/maintenance/#defragmentation'\n");
            }
        }
    }
}

#[test]
fn etcd_alert_rules_evaluate_against_our_series() -> anyhow::Result<()> {
    let Some(promtool) = promtool() else {
        return Ok(());
    };
    let rules =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/prometheus/etcd-alerts.yaml");
    let check = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&rules)
        .output()?;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );

    let s = scrape_after_workload()?;
    let m = Exposition::parse(&s.text)?;
    let one = |name: &str, labels: &[(&str, &str)]| -> anyhow::Result<Sample> {
        m.series(name)
            .find(|x| {
                labels
                    .iter()
                    .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .cloned()
            .with_context(|| format!("no {name}{labels:?} in our /metrics"))
    };
    let has_leader = one("etcd_server_has_leader", &[])?;
    let leader_changes = one("etcd_server_leader_changes_seen_total", &[])?;
    let proposals_failed = one("etcd_server_proposals_failed_total", &[])?;
    let quota = one("etcd_server_quota_backend_bytes", &[])?;
    let db_size = one("etcd_mvcc_db_total_size_in_bytes", &[])?;
    let db_in_use = one("etcd_mvcc_db_total_size_in_use_in_bytes", &[])?;
    let put_ok = one(
        "grpc_server_handled_total",
        &[("grpc_method", "Put"), ("grpc_code", "OK")],
    )?;
    let put_unavailable = one(
        "grpc_server_handled_total",
        &[("grpc_method", "Put"), ("grpc_code", "Unavailable")],
    )?;
    let up = Sample {
        name: "up".into(),
        labels: BTreeMap::new(),
        value: 1.0,
    };
    // A peer's round-trip series as the peer transport will label it; the
    // name and buckets are ours, the `To` label waits for peers.
    let rtt_buckets: Vec<Sample> = exponential(0.0001, 2.0, 14)
        .into_iter()
        .map(|le| Sample {
            name: "etcd_network_peer_round_trip_time_seconds_bucket".into(),
            labels: [
                ("To".to_string(), "2b8cef1a3dd3e4b1".to_string()),
                (
                    "le".to_string(),
                    if le.is_infinite() {
                        "+Inf".to_string()
                    } else {
                        format!("{le}")
                    },
                ),
            ]
            .into_iter()
            .collect(),
            value: 0.0,
        })
        .collect();
    let quota_bytes = quota.value;

    let mut t = String::new();
    let _ = writeln!(
        t,
        "rule_files:\n  - '{}'\nevaluation_interval: 1m\ntests:",
        rules.display()
    );

    // 1. A healthy member: our scraped values, unchanged. Nothing fires.
    t.push_str("  - interval: 1m\n    input_series:\n");
    for x in [
        &up,
        &has_leader,
        &leader_changes,
        &proposals_failed,
        &quota,
        &db_size,
        &db_in_use,
        &put_ok,
        &put_unavailable,
    ] {
        input(&mut t, &series_name(x, &[]), &flat(x.value, 40));
    }
    for x in m.samples.iter().filter(|x| {
        x.name == "etcd_disk_wal_fsync_duration_seconds_bucket"
            || x.name == "etcd_disk_backend_commit_duration_seconds_bucket"
            || x.name == "grpc_server_handling_seconds_bucket"
    }) {
        input(&mut t, &series_name(x, &[]), &flat(x.value, 40));
    }
    let quiet: Vec<Alert> = [
        "etcdMembersDown",
        "etcdInsufficientMembers",
        "etcdNoLeader",
        "etcdHighNumberOfLeaderChanges",
        "etcdHighNumberOfFailedGRPCRequests",
        "etcdGRPCRequestsSlow",
        "etcdHighNumberOfFailedProposals",
        "etcdHighFsyncDurations",
        "etcdHighCommitDurations",
        "etcdDatabaseQuotaLowSpace",
        "etcdDatabaseHighFragmentationRatio",
    ]
    .into_iter()
    .map(|name| Alert {
        eval: "30m",
        name,
        expected: vec![],
    })
    .collect();
    let summaries: HashMap<&str, &str> = [
        ("etcdMembersDown", "etcd cluster members are down."),
        (
            "etcdInsufficientMembers",
            "etcd cluster has insufficient number of members.",
        ),
        ("etcdNoLeader", "etcd cluster has no leader."),
        (
            "etcdHighNumberOfLeaderChanges",
            "etcd cluster has high number of leader changes.",
        ),
        (
            "etcdHighNumberOfFailedGRPCRequests",
            "etcd cluster has high number of failed grpc requests.",
        ),
        ("etcdGRPCRequestsSlow", "etcd grpc requests are slow"),
        (
            "etcdMemberCommunicationSlow",
            "etcd cluster member communication is slow.",
        ),
        (
            "etcdHighNumberOfFailedProposals",
            "etcd cluster has high number of proposal failures.",
        ),
        (
            "etcdHighFsyncDurations",
            "etcd cluster 99th percentile fsync durations are too high.",
        ),
        (
            "etcdHighCommitDurations",
            "etcd cluster 99th percentile commit durations are too high.",
        ),
        (
            "etcdDatabaseQuotaLowSpace",
            "etcd cluster database is running full.",
        ),
        (
            "etcdExcessiveDatabaseGrowth",
            "etcd cluster database growing very fast.",
        ),
        (
            "etcdDatabaseHighFragmentationRatio",
            "etcd database size in use is less than 50% of the actual allocated storage.",
        ),
    ]
    .into_iter()
    .collect();
    alert_tests(&mut t, &quiet, &summaries);

    let member = [
        ("job", "etcd"),
        ("instance", "member-1"),
        ("cluster", "test"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        let mut v = member.to_vec();
        v.extend_from_slice(extra);
        v
    };

    // 2. The leader is lost.
    t.push_str("  - interval: 1m\n    input_series:\n");
    input(&mut t, &series_name(&has_leader, &[]), "1x5 0x20");
    alert_tests(
        &mut t,
        &[Alert {
            eval: "10m",
            name: "etcdNoLeader",
            expected: vec![(
                with(&[("severity", "critical")]),
                "etcd cluster \"test\": member member-1 has no leader.".into(),
            )],
        }],
        &summaries,
    );

    // 3. Elections every minute.
    t.push_str("  - interval: 1m\n    input_series:\n");
    input(
        &mut t,
        &series_name(&leader_changes, &[]),
        &growing(leader_changes.value, 1.0, 40),
    );
    alert_tests(
        &mut t,
        &[Alert {
            eval: "25m",
            name: "etcdHighNumberOfLeaderChanges",
            expected: vec![(
                vec![("job", "etcd"), ("cluster", "test"), ("severity", "warning")],
                "etcd cluster \"test\": 15 leader changes within the last 15 minutes. Frequent elections may be a sign of insufficient resources, high network latency, or disruptions by other components and should be investigated.".into(),
            )],
        }],
        &summaries,
    );

    // 4. One Put in eleven fails with Unavailable.
    t.push_str("  - interval: 1m\n    input_series:\n");
    input(
        &mut t,
        &series_name(&put_ok, &[]),
        &growing(put_ok.value, 600.0, 40),
    );
    input(
        &mut t,
        &series_name(&put_unavailable, &[]),
        &growing(put_unavailable.value, 60.0, 40),
    );
    let failed = "etcd cluster \"test\": 9.090909090909092% of requests for Put failed on etcd instance member-1.".to_string();
    let put_labels = [("grpc_method", "Put"), ("grpc_service", "etcdserverpb.KV")];
    alert_tests(
        &mut t,
        &[Alert {
            eval: "20m",
            name: "etcdHighNumberOfFailedGRPCRequests",
            expected: vec![
                (
                    with(&[put_labels[0], put_labels[1], ("severity", "warning")]),
                    failed.clone(),
                ),
                (
                    with(&[put_labels[0], put_labels[1], ("severity", "critical")]),
                    failed,
                ),
            ],
        }],
        &summaries,
    );

    // 5. Slow Range calls (grpc_server_handling_seconds, --metrics=extensive).
    t.push_str("  - interval: 1m\n    input_series:\n");
    slow_histogram(
        &mut t,
        &m,
        "grpc_server_handling_seconds",
        &[("grpc_method", "Range"), ("grpc_type", "unary")],
        0.25,
    );
    alert_tests(
        &mut t,
        &[Alert {
            eval: "20m",
            name: "etcdGRPCRequestsSlow",
            expected: vec![(
                with(&[put_labels[1], ("grpc_method", "Range"), ("severity", "critical")]),
                "etcd cluster \"test\": 99th percentile of gRPC requests is 0.2485s on etcd instance member-1 for Range method.".into(),
            )],
        }],
        &summaries,
    );

    // 6. Slow WAL fsyncs and backend commits (1.024 s < each ≤ 2.048 s).
    t.push_str("  - interval: 1m\n    input_series:\n");
    slow_histogram(
        &mut t,
        &m,
        "etcd_disk_wal_fsync_duration_seconds",
        &[],
        2.048,
    );
    slow_histogram(
        &mut t,
        &m,
        "etcd_disk_backend_commit_duration_seconds",
        &[],
        2.048,
    );
    let fsync = "etcd cluster \"test\": 99th percentile fsync durations are 2.03776s on etcd instance member-1.".to_string();
    alert_tests(
        &mut t,
        &[
            Alert {
                eval: "20m",
                name: "etcdHighFsyncDurations",
                expected: vec![
                    (with(&[("severity", "warning")]), fsync.clone()),
                    (with(&[("severity", "critical")]), fsync),
                ],
            },
            Alert {
                eval: "20m",
                name: "etcdHighCommitDurations",
                expected: vec![(
                    with(&[("severity", "warning")]),
                    "etcd cluster \"test\": 99th percentile commit durations 2.03776s on etcd instance member-1.".into(),
                )],
            },
        ],
        &summaries,
    );

    // 7. The database at 96% of our quota; then mostly free pages.
    t.push_str("  - interval: 1m\n    input_series:\n");
    input(&mut t, &series_name(&quota, &[]), &flat(quota_bytes, 40));
    input(
        &mut t,
        &series_name(&db_size, &[]),
        &flat(quota_bytes * 0.96, 40),
    );
    input(
        &mut t,
        &series_name(&db_in_use, &[]),
        &flat(quota_bytes * 0.4, 40),
    );
    alert_tests(
        &mut t,
        &[
            Alert {
                eval: "20m",
                name: "etcdDatabaseQuotaLowSpace",
                expected: vec![(
                    with(&[("severity", "critical")]),
                    "etcd cluster \"test\": database size exceeds the defined quota on etcd instance member-1, please defrag or increase the quota as the writes to etcd will be disabled when it is full.".into(),
                )],
            },
            Alert {
                eval: "20m",
                name: "etcdDatabaseHighFragmentationRatio",
                expected: vec![(
                    with(&[("severity", "warning")]),
                    "etcd cluster \"test\": database size in use on instance member-1 is 41.67% of the actual allocated disk space, please run defragmentation (e.g. etcdctl defrag) to retrieve the unused fragmented disk space.".into(),
                )],
            },
        ],
        &summaries,
    );

    // 8. Growth that will exhaust the quota within four hours.
    t.push_str("  - interval: 1m\n    input_series:\n");
    input(&mut t, &series_name(&quota, &[]), &flat(quota_bytes, 400));
    input(
        &mut t,
        &series_name(&db_size, &[]),
        &growing(db_size.value, quota_bytes / 300.0, 400),
    );
    alert_tests(
        &mut t,
        &[Alert {
            eval: "5h",
            name: "etcdExcessiveDatabaseGrowth",
            expected: vec![(
                with(&[("severity", "warning")]),
                "etcd cluster \"test\": Predicting running out of disk space in the next four hours, based on write observations within the past four hours on etcd instance member-1, please check as it might be disruptive.".into(),
            )],
        }],
        &summaries,
    );

    // 9. Proposals failing at 10/s.
    t.push_str("  - interval: 1m\n    input_series:\n");
    input(
        &mut t,
        &series_name(&proposals_failed, &[]),
        &growing(proposals_failed.value, 600.0, 60),
    );
    alert_tests(
        &mut t,
        &[Alert {
            eval: "40m",
            name: "etcdHighNumberOfFailedProposals",
            expected: vec![(
                with(&[("severity", "warning")]),
                "etcd cluster \"test\": 10 proposal failures within the last 30 minutes on etcd instance member-1.".into(),
            )],
        }],
        &summaries,
    );

    // 10. The member's scrape target is down; a slow peer link.
    t.push_str("  - interval: 1m\n    input_series:\n");
    input(&mut t, &series_name(&up, &[]), &flat(0.0, 40));
    for b in &rtt_buckets {
        let le = b.labels.get("le").map(String::as_str).unwrap_or_default();
        let slow = le == "+Inf" || le.parse::<f64>().map(|v| v >= 0.2048).unwrap_or(false);
        let values = if slow {
            growing(0.0, 60.0, 40)
        } else {
            flat(0.0, 40)
        };
        input(&mut t, &series_name(b, &[]), &values);
    }
    alert_tests(
        &mut t,
        &[
            Alert {
                eval: "20m",
                name: "etcdMembersDown",
                expected: vec![(
                    vec![("job", "etcd"), ("cluster", "test"), ("severity", "critical")],
                    "etcd cluster \"test\": members are down (1).".into(),
                )],
            },
            Alert {
                eval: "20m",
                name: "etcdInsufficientMembers",
                expected: vec![(
                    vec![("job", "etcd"), ("cluster", "test"), ("severity", "critical")],
                    "etcd cluster \"test\": insufficient members (0).".into(),
                )],
            },
            Alert {
                eval: "20m",
                name: "etcdMemberCommunicationSlow",
                expected: vec![(
                    with(&[("To", "2b8cef1a3dd3e4b1"), ("severity", "warning")]),
                    "etcd cluster \"test\": member communication with 2b8cef1a3dd3e4b1 is taking 0.203776s on etcd instance member-1.".into(),
                )],
            },
        ],
        &summaries,
    );

    let dir = tempfile::tempdir()?;
    let test_file = dir.path().join("etcd-alerts-test.yaml");
    std::fs::write(&test_file, &t)?;
    let out = Command::new(promtool)
        .args(["test", "rules"])
        .arg(&test_file)
        .output()?;
    if !out.status.success() {
        bail!(
            "promtool test rules failed:\n{}{}\n--- test file ---\n{t}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// The Grafana dashboard the packages ship (docs/grafana/rsetcd.json) has
/// what Grafana's import needs, and every panel asks for series rsetcd
/// exports, in queries that parse as PromQL (`promtool check rules`).
#[test]
fn grafana_dashboard_queries_our_series() -> anyhow::Result<()> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana/rsetcd.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    assert!(dashboard["title"].is_string() && dashboard["uid"].is_string());
    assert!(dashboard["schemaVersion"].is_u64());
    let panels = dashboard["panels"].as_array().context("no panels")?;
    let mut exprs = Vec::new();
    for p in panels {
        assert!(p["gridPos"]["w"].is_u64() && p["type"].is_string(), "{p}");
        for t in p["targets"].as_array().context("panel without targets")? {
            exprs.push(
                t["expr"]
                    .as_str()
                    .context("target without expr")?
                    .to_string(),
            );
        }
    }
    assert!(exprs.len() >= 10, "{} queries", exprs.len());

    let s = scrape_after_workload()?;
    let exported: std::collections::BTreeSet<&str> = s
        .text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut missing = Vec::new();
    for e in &exprs {
        for word in e.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            let metric = word.starts_with("etcd_") || word.starts_with("grpc_server_");
            // peer series appear once a member has peers; this one has none
            let peer_only = word.starts_with("etcd_network_peer_");
            if metric && !peer_only && !exported.contains(word) {
                missing.push(word.to_string());
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the dashboard asks for series we do not export: {missing:?}"
    );

    let Some(promtool) = promtool() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        // Grafana's variables, as it would fill them in
        let e = e
            .replace("$__rate_interval", "5m")
            .replace("$job", ".*")
            .replace("$instance", ".*");
        rules.push_str(&format!(
            "      - record: dashboard:query{i}\n        expr: {}\n",
            serde_json::to_string(&e)?
        ));
    }
    let file = dir.path().join("dashboard-rules.yaml");
    std::fs::write(&file, rules)?;
    let check = Command::new(promtool)
        .args(["check", "rules"])
        .arg(&file)
        .output()?;
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    Ok(())
}
