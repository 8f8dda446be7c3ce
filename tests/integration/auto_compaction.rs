//! Auto-compaction as a user sees it with our `etcd`: revision mode keeps
//! the last N revisions, periodic mode the last stretch of time, only the
//! leader compacts (a new leader takes over), and bad settings are refused
//! with a message naming the setting, the value and what is allowed.
//!
//! Revision mode checks every 5 minutes in etcd; these tests shorten that
//! with the test-only `RSETCD_TEST_AUTO_COMPACTION_REVISION_INTERVAL_MS`.

use crate::support;
use crate::support::common;
use crate::support::common::run_etcd as etcd;

use std::process::Output;
use std::time::{Duration, Instant};

use common::{ServerOptions, TestServer};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::{PutRequest, RangeRequest};
use support::cluster::{Cluster, Flavor};
use tonic::transport::Channel;

const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
const REVISION_INTERVAL_ENV: &str = "RSETCD_TEST_AUTO_COMPACTION_REVISION_INTERVAL_MS";

/// Puts `key` once; returns the revision of the write.
async fn put(kv: &mut KvClient<Channel>, key: &str, value: &str) -> i64 {
    let resp = kv
        .put(PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })
        .await
        .expect("put")
        .into_inner();
    resp.header.expect("header").revision
}

/// A Range of `key` at `revision`: Ok, or the error message.
async fn get_at(kv: &mut KvClient<Channel>, key: &str, revision: i64) -> Result<(), String> {
    kv.range(RangeRequest {
        key: key.as_bytes().to_vec(),
        revision,
        ..Default::default()
    })
    .await
    .map(|_| ())
    .map_err(|s| s.message().to_string())
}

/// Waits until `cond` holds, polling every 50 ms, for at most `timeout`.
async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The JSON log lines whose message is `msg`.
fn log_lines<'a>(log: &'a str, msg: &str) -> Vec<&'a str> {
    let needle = format!("\"msg\":\"{msg}\"");
    log.lines().filter(|l| l.contains(&needle)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revision_mode_keeps_the_last_revisions() {
    let server = start_ours(&[
        "--auto-compaction-mode=revision",
        "--auto-compaction-retention=5",
    ])
    .await;
    let mut kv = KvClient::connect(server.client_url.clone())
        .await
        .expect("connect");
    let mut last = 0;
    for i in 0..20 {
        last = put(&mut kv, "k", &format!("v{i}")).await;
    }
    assert_eq!(last, 21);
    // Compacted to 21 - 5 = 16: revision 16 still reads, 15 does not.
    let completed = "\"revision\":16,\"revision-compaction-retention\":5";
    eventually(Duration::from_secs(10), "compaction at 16", || {
        let log = server.log();
        async move {
            log_lines(&log, "completed auto revision compaction")
                .iter()
                .any(|l| l.contains(completed))
        }
    })
    .await;
    assert_eq!(get_at(&mut kv, "k", 16).await, Ok(()));
    assert_eq!(get_at(&mut kv, "k", 15).await, Err(COMPACTED.to_string()));
    let log = server.log();
    let started = log_lines(&log, "starting auto revision compaction");
    assert!(
        started
            .iter()
            .any(|l| l.contains("\"revision\":16,\"revision-compaction-retention\":5")),
        "{log}"
    );
    // Nothing new was written: the same target is not compacted again.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let log = server.log();
    let at_16 = log_lines(&log, "completed auto revision compaction")
        .iter()
        .filter(|l| l.contains(completed))
        .count();
    assert_eq!(at_16, 1, "{log}");
    // New writes move the target along.
    for i in 0..3 {
        last = put(&mut kv, "k", &format!("w{i}")).await;
    }
    let target = last - 5;
    eventually(Duration::from_secs(10), "the next compaction", || {
        let mut kv = kv.clone();
        async move { get_at(&mut kv, "k", target - 1).await == Err(COMPACTED.to_string()) }
    })
    .await;
    assert_eq!(get_at(&mut kv, "k", target).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn periodic_mode_keeps_the_last_period_of_history() {
    let server = start_ours(&[
        "--auto-compaction-mode=periodic",
        "--auto-compaction-retention=1s",
    ])
    .await;
    let mut kv = KvClient::connect(server.client_url.clone())
        .await
        .expect("connect");
    let first = put(&mut kv, "k", "a").await;
    let second = put(&mut kv, "k", "b").await;
    // History younger than the period is kept: a compaction now can only
    // reach a revision sampled at least a second ago, older than `first`.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get_at(&mut kv, "k", first).await, Ok(()));
    // Once `second` has been current for longer than the period (plus a
    // sampling interval), the history before it is gone.
    eventually(
        Duration::from_secs(10),
        "compaction past the first put",
        || {
            let mut kv = kv.clone();
            async move { get_at(&mut kv, "k", first).await == Err(COMPACTED.to_string()) }
        },
    )
    .await;
    assert_eq!(get_at(&mut kv, "k", second).await, Ok(()));
    let log = server.log();
    let completed = log_lines(&log, "completed auto periodic compaction");
    assert!(
        completed.iter().any(|l| l.contains(&format!(
            "\"revision\":{second},\"compact-period\":\"1s\",\"took\":"
        ))),
        "{log}"
    );
    assert!(!log_lines(&log, "starting auto periodic compaction").is_empty());
}

/// Only the leader compacts; when it dies, the new leader takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_compacts_and_a_new_leader_takes_over() {
    let mut cluster = Cluster::start(
        Flavor::Ours,
        3,
        &[
            "--auto-compaction-mode=periodic",
            "--auto-compaction-retention=1s",
        ],
    )
    .await
    .expect("start cluster");
    let leader = cluster
        .leader(Duration::from_secs(10))
        .await
        .expect("leader");
    let follower = (leader + 1) % 3;
    let mut kv = cluster.members[follower].kv().await.expect("connect");
    let first = put(&mut kv, "k", "a").await;
    put(&mut kv, "k", "b").await;
    for m in 0..3 {
        let kv = cluster.members[m].kv().await.expect("connect");
        eventually(
            Duration::from_secs(10),
            "compaction on every member",
            || {
                let mut kv = kv.clone();
                async move { get_at(&mut kv, "k", first).await == Err(COMPACTED.to_string()) }
            },
        )
        .await;
    }
    for (i, m) in cluster.members.iter().enumerate() {
        let log = m.log();
        let done = log_lines(&log, "completed auto periodic compaction").len();
        if i == leader {
            assert!(done > 0, "the leader compacts:\n{log}");
        } else {
            assert_eq!(done, 0, "member {i} follows and must not compact:\n{log}");
        }
    }

    cluster.members[leader].kill9();
    let survivors: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
    let new_leader = cluster
        .leader_of(&survivors, Duration::from_secs(20))
        .await
        .expect("a new leader");
    let mut kv = cluster.members[new_leader].kv().await.expect("connect");
    let third = put(&mut kv, "k", "c").await;
    put(&mut kv, "k", "d").await;
    eventually(
        Duration::from_secs(15),
        "the new leader's compaction",
        || {
            let mut kv = kv.clone();
            async move { get_at(&mut kv, "k", third).await == Err(COMPACTED.to_string()) }
        },
    )
    .await;
    let log = cluster.members[new_leader].log();
    assert!(
        !log_lines(&log, "completed auto periodic compaction").is_empty(),
        "{log}"
    );
}

/// Starts our etcd with `args` (off the async runtime: the helper blocks).
async fn start_ours(args: &[&str]) -> TestServer {
    // every server started here checks revisions every 200 ms
    let options = ServerOptions {
        extra_args: args.iter().map(|a| a.to_string()).collect(),
        env: vec![(REVISION_INTERVAL_ENV.to_string(), "200".to_string())],
        ..ServerOptions::default()
    };
    tokio::task::spawn_blocking(move || TestServer::start_ours(&options))
        .await
        .expect("start task")
        .expect("start etcd")
}

#[track_caller]
fn assert_refused(out: &Output, message: &str) {
    assert_exits(out, 1, message)
}

#[track_caller]
fn assert_exits(out: &Output, code: i32, message: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stderr:\n{stderr}"
    );
    let escaped = message.replace('"', "\\\"");
    assert!(
        stderr.contains(message) || stderr.contains(&escaped),
        "stderr does not show {message:?}:\n{stderr}"
    );
}

#[test]
fn bad_settings_are_refused_naming_setting_value_and_what_is_allowed() {
    let periodic =
        "periodic mode takes 0 (disabled), a number of hours, or a duration such as \"30m\"";
    assert_refused(
        &etcd(&["--auto-compaction-retention=abc"], &[]),
        &format!("error parsing CompactionRetention: time: invalid duration \"abc\" (--auto-compaction-retention=abc: {periodic})"),
    );
    assert_refused(
        &etcd(
            &[
                "--auto-compaction-mode=revision",
                "--auto-compaction-retention=1h",
            ],
            &[],
        ),
        "error parsing CompactionRetention: --auto-compaction-retention=1h is not a number of revisions (revision mode takes 0 (disabled) or a number of revisions to keep)",
    );
    assert_refused(
        &etcd(&[], &[("ETCD_AUTO_COMPACTION_RETENTION", "-2h")]),
        &format!("error parsing CompactionRetention: --auto-compaction-retention=-2h is negative ({periodic}) (set by ETCD_AUTO_COMPACTION_RETENTION)"),
    );
    assert_refused(
        &etcd(&["--auto-compaction-mode=hourly"], &[]),
        "unknown auto-compaction-mode \"hourly\"",
    );
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    std::io::Write::write_all(
        &mut file,
        b"auto-compaction-mode: revision\nauto-compaction-retention: \"10m\"\n",
    )
    .expect("write config");
    let path = file.path().to_str().expect("utf-8 path");
    assert_refused(
        &etcd(&["--config-file", path], &[]),
        "--auto-compaction-retention=10m is not a number of revisions (revision mode takes 0 (disabled) or a number of revisions to keep) (set by config file key \"auto-compaction-retention\")",
    );
    // A negative interval is a flag syntax error, as Go's flag package
    // reports one (usage text, exit 2).
    assert_exits(
        &etcd(&["--experimental-corrupt-check-time=-1s"], &[]),
        2,
        "invalid value \"-1s\" for flag -experimental-corrupt-check-time",
    );
}
