//! etcd's log lines are an interface: log queries and alerts select them by
//! message and by field names (`local-member-id`, `data-dir`, …). Through a
//! start, the first election and a SIGTERM, every line that rsetcd and
//! etcd 3.4 both print carries only etcd's field names (dashes, not
//! underscores), plus the few named here; the lines tooling waits for are
//! printed by both, and the key ones with exactly etcd's fields. Raft's
//! lines read as etcd raft's ("<id> became leader at term <n>").

use crate::support;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use support::kv::{reference_available, Flavor, Server};

/// Fields rsetcd adds to a line of etcd's, and why.
const OURS_ONLY: &[(&str, &str)] = &[
    // which rsetcd build runs beside which etcd version it speaks
    ("starting an etcd server", "rsetcd-version"),
    // etcd 3.5 logs these; 3.4 does not
    ("added member", "added-peer-is-learner"),
    (
        "serving client traffic insecurely; this is strongly discouraged!",
        "traffic",
    ),
];

/// Lines tooling waits for or greps: both print them (a compaction is part
/// of the short life).
const REQUIRED: &[&str] = &[
    "starting an etcd server",
    "added member",
    "published local member to cluster through raft",
    "enabled capabilities for version",
    "cluster version is updated",
    "serving peer traffic",
    "serving client traffic insecurely; this is strongly discouraged!",
    "received signal; shutting down",
    "finished scheduled compaction",
];

/// Of those, the lines whose fields are exactly etcd's.
const EXACT: &[&str] = &[
    "published local member to cluster through raft",
    "enabled capabilities for version",
    "cluster version is updated",
    "serving peer traffic",
    "serving client traffic insecurely; this is strongly discouraged!",
    "received signal; shutting down",
    "finished scheduled compaction",
];

/// Message → the union of field names over its lines (level, ts, caller,
/// msg and etcd 3.5's raft `logger` left out).
fn fields_by_message(log: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in log.lines() {
        let Ok(serde_json::Value::Object(map)) = serde_json::from_str(line) else {
            continue;
        };
        let Some(msg) = map.get("msg").and_then(|m| m.as_str()) else {
            continue;
        };
        let fields = out.entry(msg.to_string()).or_default();
        for key in map.keys() {
            if !["level", "ts", "caller", "msg", "logger"].contains(&key.as_str()) {
                fields.insert(key.clone());
            }
        }
    }
    out
}

async fn log_of_a_short_life(flavor: Flavor) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(flavor, &tmp.path().join("data"), &[])
        .await
        .unwrap();
    let mut kv = server.kv().await.unwrap();
    kv.put(rsetcd::proto::etcdserverpb::PutRequest {
        key: b"k".to_vec(),
        value: b"v".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let rev = kv
        .range(rsetcd::proto::etcdserverpb::RangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision;
    kv.compact(rsetcd::proto::etcdserverpb::CompactionRequest {
        revision: rev,
        physical: true,
    })
    .await
    .unwrap();
    // the cluster version is set a moment after the member serves
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server.log().contains("cluster version is updated") {
        assert!(std::time::Instant::now() < deadline, "{}", server.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.terminate(Duration::from_secs(20)).await.unwrap();
    server.log()
}

/// Raft's lines as etcd's raft writes them, ids and numbers masked: both
/// servers print each of these through a start and the first election.
const RAFT_SHAPES: &[&str] = &[
    "newRaft <id> [peers: [<ids>], term: <n>, commit: <n>, applied: <n>, lastindex: <n>, lastterm: <n>]",
    "<id> became follower at term <n>",
    "<id> switched to configuration voters=(<n>)",
    "<id> is starting a new election at term <n>",
    "<id> became candidate at term <n>",
    "<id> became leader at term <n>",
    "raft.node: <id> elected leader <id> at term <n>",
];

/// A message with member ids (hex) and numbers masked, as `RAFT_SHAPES`.
fn shape(msg: &str) -> String {
    let mask = |token: &str| -> String {
        let hex = token.len() >= 8
            && token.chars().all(|c| c.is_ascii_hexdigit())
            && token.chars().any(|c| c.is_ascii_alphabetic())
            && token.chars().any(|c| c.is_ascii_digit());
        if hex {
            "<id>".into()
        } else if !token.is_empty() && token.chars().all(|c| c.is_ascii_digit()) {
            "<n>".into()
        } else {
            token.into()
        }
    };
    let mut out = String::new();
    let mut token = String::new();
    for c in msg.chars() {
        if c.is_ascii_alphanumeric() {
            token.push(c);
        } else {
            out.push_str(&mask(&token));
            token.clear();
            out.push(c);
        }
    }
    out.push_str(&mask(&token));
    // the peer list may be empty or hold ids
    out.replace("[peers: [], ", "[peers: [<ids>], ")
        .replace("[peers: [<id>], ", "[peers: [<ids>], ")
}

fn messages(log: &str) -> std::collections::BTreeSet<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["msg"].as_str().map(shape))
        .collect()
}

#[tokio::test]
async fn common_log_lines_carry_etcds_field_names() {
    if !reference_available() {
        eprintln!("SKIP: etcd 3.4 (etcd-server) is not installed");
        return;
    }
    let (our_log, etcd_log) = (
        log_of_a_short_life(Flavor::Ours).await,
        log_of_a_short_life(Flavor::Reference).await,
    );
    let (our_shapes, etcd_shapes) = (messages(&our_log), messages(&etcd_log));
    for shape in RAFT_SHAPES {
        assert!(
            etcd_shapes.contains(*shape),
            "etcd 3.4 does not print {shape:?}: {etcd_shapes:#?}"
        );
        assert!(
            our_shapes.contains(*shape),
            "rsetcd does not print {shape:?}: {our_shapes:#?}"
        );
    }
    let ours = fields_by_message(&our_log);
    let etcd = fields_by_message(&etcd_log);

    for msg in REQUIRED {
        assert!(etcd.contains_key(*msg), "etcd 3.4 no longer prints {msg:?}");
        assert!(
            ours.contains_key(*msg),
            "rsetcd does not print {msg:?}: {ours:#?}"
        );
    }
    let mut wrong = Vec::new();
    for (msg, fields) in &ours {
        let Some(theirs) = etcd.get(msg) else {
            continue;
        };
        let fields: BTreeSet<&String> = fields
            .iter()
            .filter(|f| !OURS_ONLY.contains(&(msg.as_str(), f.as_str())))
            .collect();
        let extra: Vec<&&String> = fields.iter().filter(|f| !theirs.contains(**f)).collect();
        if !extra.is_empty() {
            wrong.push(format!(
                "{msg:?}: fields etcd does not have: {extra:?} (etcd: {theirs:?})"
            ));
        }
        if EXACT.contains(&msg.as_str()) && !theirs.iter().all(|f| fields.contains(f)) {
            wrong.push(format!("{msg:?}: {fields:?}, etcd: {theirs:?}"));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}
