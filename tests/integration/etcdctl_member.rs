//! Differential test of our `etcdctl member list|add|remove|update|promote`,
//! `move-leader` and `endpoint hashkv` against Debian's etcdctl 3.4, both
//! talking to the same three-member cluster.
//!
//! [`check_cluster_commands`] takes any cluster's client endpoints: they
//! run against a three-member etcd 3.4 cluster and against ours
//! (`support::cluster::Cluster`).
//!
//! Read-only commands run through both etcdctls back to back and must
//! print the same stdout, stderr and exit code (client log lines, JSON with
//! timestamps and pointers, are compared only by their count). Commands
//! that change the cluster cannot run twice alike: a new member gets a new
//! random ID, leadership moves on. Each etcdctl then makes its own change
//! and its output is checked against etcd's format filled in from the
//! cluster's state as Debian's etcdctl reads it afterwards; changes that
//! can be repeated (an update to the same URLs) are compared directly.
//!
//! Where etcd 3.5 (our target) differs from 3.4 (`member list -w json
//! --hex`, the groups' API version in their help), ours is checked against
//! 3.5's format.

use crate::support::cluster::{Cluster, Flavor};
use crate::support::common;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{free_port, reference_available, REFERENCE_ETCD, REFERENCE_ETCDCTL};

use crate::support::common::OUR_ETCDCTL;

/// etcd's `HealthInterval`, plus a margin.
const PEER_HEALTH_INTERVAL: Duration = Duration::from_millis(5500);

/// How long one etcdctl run may take before it is killed.
const RUN_LIMIT: Duration = Duration::from_secs(30);

// ---- the cluster ----

/// A three-member cluster of `flavor`, ready for membership changes: etcd
/// refuses them ("unhealthy cluster") until its peers have been connected
/// for HealthInterval. The runtime only starts it; the test runs blocking.
fn three_members(flavor: Flavor) -> Cluster {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    // A port found free can be taken before the member binds it: then
    // start over on new ports.
    let mut attempts = 0;
    let cluster = loop {
        attempts += 1;
        match runtime.block_on(Cluster::start(flavor, 3, &[])) {
            Ok(c) => break c,
            Err(e) if attempts < 3 && format!("{e:#}").contains("address already in use") => {}
            Err(e) => panic!("start a three-member cluster: {e:#}"),
        }
    };
    std::thread::sleep(PEER_HEALTH_INTERVAL);
    cluster
}

/// Client endpoints (`127.0.0.1:<port>`), in member order.
fn endpoints(cluster: &Cluster) -> Vec<String> {
    cluster
        .members
        .iter()
        .map(|m| format!("127.0.0.1:{}", m.client_port))
        .collect()
}

// ---- running etcdctl ----

/// What one etcdctl run showed the user; client log lines in stderr are
/// replaced by a marker.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Outcome {
    stdout: Vec<u8>,
    stderr: String,
    code: Option<i32>,
}

impl Outcome {
    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn run(binary: &str, args: &[String]) -> Outcome {
    let run = crate::support::etcdctl::run_within(binary, args, "", [], RUN_LIMIT);
    Outcome {
        stderr: mask_log_lines(&run.stderr_text()),
        stdout: run.stdout,
        code: run.code,
    }
}

/// Client log lines carry timestamps and pointers: keep only that they were there.
fn mask_log_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            if line.starts_with("{\"level\":") {
                "<client log line>"
            } else {
                line
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn ours(list: &[&str]) -> Outcome {
    run(OUR_ETCDCTL, &args(list))
}

fn reference(list: &[&str]) -> Outcome {
    run(REFERENCE_ETCDCTL, &args(list))
}

/// Runs both etcdctls with the same arguments; they must show the same.
fn both(list: &[&str]) -> Outcome {
    let expected = reference(list);
    let actual = ours(list);
    assert_same(list, &expected, &actual);
    actual
}

fn assert_same(list: &[&str], expected: &Outcome, actual: &Outcome) {
    assert_eq!(
        (actual.stdout_text(), &actual.stderr, actual.code),
        (expected.stdout_text(), &expected.stderr, expected.code),
        "etcdctl {list:?}: ours (left) differs from etcd 3.4's (right)"
    );
    // Protobuf output is compared byte for byte.
    assert_eq!(
        actual.stdout, expected.stdout,
        "etcdctl {list:?}: stdout bytes"
    );
}

fn assert_success(list: &[&str], outcome: &Outcome, stdout: &str) {
    assert_eq!(
        (
            outcome.stdout_text().as_str(),
            outcome.stderr.as_str(),
            outcome.code
        ),
        (stdout, "", Some(0)),
        "etcdctl {list:?}"
    );
}

// ---- the cluster's state, as etcd 3.4's etcdctl reads it ----

fn json_of(outcome: &Outcome) -> Value {
    serde_json::from_slice(&outcome.stdout)
        .unwrap_or_else(|e| panic!("parse {:?}: {e}", outcome.stdout_text()))
}

fn member_list(endpoint: &str) -> Value {
    let outcome = reference(&["--endpoints", endpoint, "member", "list", "-w", "json"]);
    assert_eq!(outcome.code, Some(0), "member list: {outcome:?}");
    json_of(&outcome)
}

fn cluster_id(list: &Value) -> u64 {
    list["header"]["cluster_id"].as_u64().expect("cluster_id")
}

/// etcd's `member add` output in simple format: the line, then the
/// settings that start the new member, its peers listed in the order of
/// the member list with the new member under its given name.
fn expected_member_add(list: &Value, new_id: u64, name: &str, peer_urls: &str) -> String {
    let mut cluster = Vec::new();
    for member in list["members"].as_array().expect("members") {
        let id = member["ID"].as_u64().expect("ID");
        let member_name = if id == new_id {
            name
        } else {
            member["name"].as_str().unwrap_or("")
        };
        for url in member["peerURLs"].as_array().into_iter().flatten() {
            cluster.push(format!("{member_name}={}", url.as_str().expect("URL")));
        }
    }
    format!(
        "Member {new_id:16x} added to cluster {:16x}\n\nETCD_NAME=\"{name}\"\nETCD_INITIAL_CLUSTER=\"{}\"\nETCD_INITIAL_ADVERTISE_PEER_URLS=\"{peer_urls}\"\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
        cluster_id(list),
        cluster.join(",")
    )
}

/// The new member's ID from `Member <id> added to cluster <id>`.
fn added_member_id(outcome: &Outcome) -> u64 {
    let text = outcome.stdout_text();
    let id = text
        .strip_prefix("Member ")
        .and_then(|rest| rest.get(..16))
        .unwrap_or_else(|| panic!("member add showed {outcome:?}"));
    u64::from_str_radix(id.trim(), 16).expect("hex member ID")
}

/// etcd 3.5's `member list -w json --hex`, from the plain JSON.
fn expected_hex_json(list: &Value) -> String {
    let header = &list["header"];
    let hex = |v: &Value| format!("{:x}", v.as_u64().unwrap_or(0));
    let urls = |v: &Value| match v {
        Value::Null => "null".to_string(),
        other => other.to_string(),
    };
    let mut out = format!(
        "{{\"header\":{{\"cluster_id\":\"{}\",\"member_id\":\"{}\",\"raft_term\":{}}}",
        hex(&header["cluster_id"]),
        hex(&header["member_id"]),
        hex(&header["raft_term"])
    );
    let members = list["members"].as_array().expect("members");
    for (i, m) in members.iter().enumerate() {
        out.push_str(if i == 0 { ",\"members\":[" } else { "," });
        out.push_str(&format!(
            "{{\"ID\":\"{}\",\"name\":\"{}\",\"peerURLs\":{},\"clientURLS\":{}}}",
            hex(&m["ID"]),
            m["name"].as_str().unwrap_or(""),
            urls(&m["peerURLs"]),
            urls(&m["clientURLs"])
        ));
    }
    if !members.is_empty() {
        out.push(']');
    }
    out.push_str("}\n");
    out
}

/// The leader's member ID and each endpoint's member ID, once every
/// endpoint names the same leader (right after a transfer some may not
/// know the new one yet).
fn leadership(endpoints: &[String]) -> (u64, Vec<(String, u64)>) {
    let all = endpoints.join(",");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let outcome = reference(&["--endpoints", &all, "endpoint", "status", "-w", "json"]);
        if outcome.code == Some(0) {
            let statuses = json_of(&outcome);
            let mut leaders = Vec::new();
            let mut members = Vec::new();
            for s in statuses.as_array().expect("statuses") {
                leaders.push(s["Status"]["leader"].as_u64().unwrap_or(0));
                members.push((
                    s["Endpoint"].as_str().expect("Endpoint").to_string(),
                    s["Status"]["header"]["member_id"]
                        .as_u64()
                        .expect("member_id"),
                ));
            }
            let leader = leaders[0];
            if leader != 0
                && leaders.iter().all(|l| *l == leader)
                && members.iter().any(|(_, id)| *id == leader)
            {
                return (leader, members);
            }
        }
        assert!(Instant::now() < deadline, "no agreed leader: {outcome:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A follower's endpoint and member ID.
fn a_follower(endpoints: &[String]) -> (u64, String, u64) {
    let (leader, members) = leadership(endpoints);
    let (endpoint, id) = members
        .into_iter()
        .find(|(_, id)| *id != leader)
        .expect("a follower");
    (leader, endpoint, id)
}

/// An address where nothing listens.
fn dead_endpoint() -> String {
    format!("127.0.0.1:{}", free_port().expect("free port"))
}

fn peer_url() -> String {
    format!("http://127.0.0.1:{}", free_port().expect("free port"))
}

// ---- the checks ----

/// Runs every check against the cluster whose client endpoints are given
/// (at least three members, no learner, KV writes stopped).
/// `server_is_35`: the server sends etcd 3.5's HashKV `hash_revision`,
/// which Debian's etcdctl 3.4 does not print in json/protobuf output.
pub fn check_cluster_commands(endpoints: &[String], server_is_35: bool) {
    check_help();
    check_argument_errors(endpoints);
    check_member_list(endpoints);
    check_hash_kv(endpoints, server_is_35);
    check_member_changes(endpoints);
    check_move_leader(endpoints);
}

fn check_help() {
    for list in [
        &["member", "add", "--help"][..],
        &["member", "list", "--help"],
        &["member", "remove", "-h"],
        &["member", "update", "--help"],
        &["member", "promote", "--help"],
        &["help", "member", "list"],
        &["move-leader", "--help"],
        &["endpoint", "hashkv", "--help"],
    ] {
        both(list);
    }
    // The groups name the API version: 3.5 for ours.
    for list in [&["member"][..], &["endpoint", "--help"]] {
        let mut expected = reference(list);
        let text = expected
            .stdout_text()
            .replace("API VERSION:\n\t3.4\n", "API VERSION:\n\t3.5\n");
        expected.stdout = text.into_bytes();
        assert_same(list, &expected, &ours(list));
    }
}

fn check_argument_errors(endpoints: &[String]) {
    let all = endpoints.join(",");
    let ep = all.as_str();
    for list in [
        &["--endpoints", ep, "member", "add"][..],
        &[
            "--endpoints",
            ep,
            "member",
            "add",
            "a",
            "b",
            "http://x",
            "HTTPs://y",
        ],
        &["--endpoints", ep, "member", "add", "a"],
        &["--endpoints", ep, "member", "add", "a", "--peer-urls="],
        &["--endpoints", ep, "member", "add", "a", "--peer-urls=foo"],
        &[
            "--endpoints",
            ep,
            "member",
            "add",
            "a",
            "--peer-urls=http://a:1,",
        ],
        &[
            "--endpoints",
            ep,
            "member",
            "add",
            "a",
            "--peer-urls=http://a:1/p",
        ],
        &[
            "--endpoints",
            ep,
            "member",
            "add",
            "a",
            "--peer-urls=http://a",
        ],
        &[
            "--endpoints",
            ep,
            "member",
            "add",
            "a",
            "--peer-urls=http://a:1",
            "-w",
            "xml",
        ],
        &["--endpoints", ep, "member", "remove"],
        &["--endpoints", ep, "member", "remove", "zz"],
        &["--endpoints", ep, "member", "remove", "0x12"],
        &["--endpoints", ep, "member", "remove", "1", "2"],
        &[
            "--endpoints",
            ep,
            "member",
            "remove",
            "12345678901234567890",
        ],
        &["--endpoints", ep, "member", "update"],
        &["--endpoints", ep, "member", "update", "12"],
        &[
            "--endpoints",
            ep,
            "member",
            "update",
            "qq",
            "--peer-urls=http://a:1",
        ],
        &[
            "--endpoints",
            ep,
            "member",
            "update",
            "12",
            "--peer-urls=http://a",
        ],
        &["--endpoints", ep, "member", "promote"],
        &["--endpoints", ep, "member", "promote", "x1"],
        &["--endpoints", ep, "member", "list", "extra", "-w", "xml"],
        &["--endpoints", ep, "move-leader"],
        &["--endpoints", ep, "move-leader", "zz"],
        &["--endpoints", ep, "move-leader", "1", "2"],
        &["--endpoints", ep, "endpoint", "hashkv", "--rev=x"],
    ] {
        both(list);
    }
}

fn check_member_list(endpoints: &[String]) {
    let all = endpoints.join(",");
    let one = endpoints[0].as_str();
    for list in [
        &["--endpoints", &all, "member", "list"][..],
        &["--endpoints", &all, "member", "list", "-w", "table"],
        &["--endpoints", &all, "member", "list", "--hex"],
        &[
            "--endpoints",
            &all,
            "member",
            "list",
            "-w",
            "simple",
            "--hex",
        ],
        // The header names the member that answered: ask one.
        &["--endpoints", one, "member", "list", "-w", "json"],
        &["--endpoints", one, "member", "list", "-w", "fields"],
        &["--endpoints", one, "member", "list", "-w", "protobuf"],
        &[
            "--endpoints",
            one,
            "member",
            "list",
            "-w",
            "fields",
            "--hex",
        ],
        &[
            "--endpoints",
            one,
            "member",
            "list",
            "-w",
            "protobuf",
            "--hex",
        ],
    ] {
        both(list);
    }
    // etcd 3.5 writes `-w json --hex` by hand; 3.4 ignores --hex there.
    let list = ["--endpoints", one, "member", "list", "-w", "json", "--hex"];
    assert_success(&list, &ours(&list), &expected_hex_json(&member_list(one)));
}

fn check_hash_kv(endpoints: &[String], server_is_35: bool) {
    let all = endpoints.join(",");
    let one = endpoints[0].as_str();
    let with_dead = format!("{all},{}", dead_endpoint());
    for list in [
        &[
            "--endpoints",
            one,
            "endpoint",
            "hashkv",
            "--cluster",
            "-w",
            "table",
        ][..],
        &["--endpoints", one, "endpoint", "hashkv", "--cluster"],
        &["--endpoints", &all, "endpoint", "hashkv"],
        &["--endpoints", &all, "endpoint", "hashkv", "-w", "table"],
        &["--endpoints", &all, "endpoint", "hashkv", "-w", "json"],
        &["--endpoints", &all, "endpoint", "hashkv", "-w", "fields"],
        &["--endpoints", &all, "endpoint", "hashkv", "-w", "protobuf"],
        &[
            "--endpoints",
            &all,
            "endpoint",
            "hashkv",
            "--rev=1",
            "-w",
            "json",
        ],
        &["--endpoints", one, "endpoint", "hashkv", "--rev=1000000"],
        &[
            "--endpoints",
            &with_dead,
            "--command-timeout=1s",
            "endpoint",
            "hashkv",
        ],
    ] {
        if server_is_35 && (list.contains(&"json") || list.contains(&"protobuf")) {
            continue;
        }
        both(list);
    }
}

/// Adds a learner with each etcdctl (simple and json output), then checks
/// promote, update and remove on the one ours added.
fn check_member_changes(endpoints: &[String]) {
    let all = endpoints.join(",");
    let one = endpoints[0].as_str();
    let first_url = peer_url();

    // Debian's etcdctl adds and removes its learner; ours then does the same.
    let mut added = Vec::new();
    for (binary, name) in [
        (REFERENCE_ETCDCTL, "ref-learner"),
        (OUR_ETCDCTL, "our-learner"),
    ] {
        wait_for_new_member_id();
        let peer_flag = format!("--peer-urls={first_url}");
        let list = [
            "--endpoints",
            &all,
            "member",
            "add",
            name,
            "--learner",
            &peer_flag,
        ];
        let outcome = run(binary, &args(&list));
        let id = added_member_id(&outcome);
        let expected = expected_member_add(&member_list(one), id, name, &first_url);
        assert_success(&list, &outcome, &expected);
        added.push(id);
        if binary == REFERENCE_ETCDCTL {
            let id_text = format!("{id:x}");
            let list = ["--endpoints", &all, "member", "remove", &id_text];
            let expected = format!(
                "Member {id:16x} removed from cluster {:16x}\n",
                cluster_id(&member_list(one))
            );
            assert_success(&list, &reference(&list), &expected);
        }
    }
    let learner = added[1];
    let learner_hex = format!("{learner:x}");
    let cluster = cluster_id(&member_list(one));

    // The unstarted learner, as each lists it; promote must fail alike.
    let voter_hex = format!("{:x}", leadership(endpoints).0);
    for list in [
        &["--endpoints", &all, "member", "list"][..],
        &["--endpoints", &all, "member", "list", "-w", "table"],
        &["--endpoints", one, "member", "list", "-w", "json"],
        &["--endpoints", one, "member", "list", "-w", "fields"],
        &["--endpoints", &all, "member", "promote", &learner_hex],
        &["--endpoints", &all, "member", "promote", &voter_hex],
        &["--endpoints", &all, "member", "promote", "1234"],
        &["--endpoints", &all, "member", "remove", "1234"],
        &[
            "--endpoints",
            &all,
            "member",
            "update",
            "1234",
            "--peer-urls=http://127.0.0.1:1",
        ],
    ] {
        both(list);
    }

    // Updating to the same URLs again changes nothing: compare directly,
    // in every format (the cluster is updated before the format fails).
    let second = format!("--peer-urls={},{}", peer_url(), peer_url());
    let list = [
        "--endpoints",
        &all,
        "member",
        "update",
        &learner_hex,
        &second,
    ];
    let expected = format!("Member {learner:16x} updated in cluster {cluster:16x}\n");
    assert_success(&list, &ours(&list), &expected);
    both(&list);
    for format in ["json", "protobuf", "fields", "table"] {
        both(&[
            "--endpoints",
            one,
            "member",
            "update",
            &learner_hex,
            &second,
            "-w",
            format,
        ]);
    }
    both(&["--endpoints", &all, "member", "list"]);

    let list = ["--endpoints", &all, "member", "remove", &learner_hex];
    let expected = format!("Member {learner:16x} removed from cluster {cluster:16x}\n");
    assert_success(&list, &ours(&list), &expected);
    both(&list);
    both(&["--endpoints", &all, "member", "list"]);

    // JSON: each adds and removes a learner; the new IDs differ.
    let json_url = format!("--peer-urls={}", peer_url());
    let mut outputs = Vec::new();
    for binary in [REFERENCE_ETCDCTL, OUR_ETCDCTL] {
        wait_for_new_member_id();
        let add = run(
            binary,
            &args(&[
                "--endpoints",
                one,
                "member",
                "add",
                "j",
                "--learner",
                &json_url,
                "-w",
                "json",
            ]),
        );
        assert_eq!(add.code, Some(0), "member add -w json: {add:?}");
        let mut added = json_of(&add);
        let id = added["member"]["ID"].as_u64().expect("new member ID");
        let id_text = format!("{id:x}");
        let remove = run(
            binary,
            &args(&[
                "--endpoints",
                one,
                "member",
                "remove",
                &id_text,
                "-w",
                "json",
            ]),
        );
        assert_eq!(remove.code, Some(0), "member remove -w json: {remove:?}");
        mask_member_id(&mut added, id);
        outputs.push((added, remove.stdout_text()));
    }
    assert_eq!(
        outputs[1], outputs[0],
        "member add/remove -w json: ours (left)"
    );
    both(&["--endpoints", one, "member", "list", "-w", "json"]);
}

/// etcd derives a new member's ID from its peer URLs and the time in
/// seconds: re-adding the URLs of a member removed in the same second would
/// reuse its (removed) ID.
fn wait_for_new_member_id() {
    std::thread::sleep(Duration::from_millis(1100));
}

/// Replaces a member's ID (new per add) with 0 and sorts the members by
/// their peer URLs, where the ID put them.
fn mask_member_id(response: &mut Value, id: u64) {
    let mask = |m: &mut Value| {
        if m["ID"].as_u64() == Some(id) {
            m["ID"] = Value::from(0);
        }
    };
    mask(&mut response["member"]);
    if let Some(members) = response["members"].as_array_mut() {
        members.iter_mut().for_each(mask);
        members.sort_by_key(|m| m["peerURLs"].to_string());
    }
}

fn check_move_leader(endpoints: &[String]) {
    let all = endpoints.join(",");

    // Each etcdctl moves leadership to a follower.
    for binary in [OUR_ETCDCTL, REFERENCE_ETCDCTL] {
        let (leader, _, target) = a_follower(endpoints);
        let target_hex = format!("{target:x}");
        let list = ["--endpoints", &all, "move-leader", &target_hex];
        let outcome = run(binary, &args(&list));
        let expected = format!("Leadership transferred from {leader:x} to {target:x}\n");
        assert_success(&list, &outcome, &expected);
        assert_eq!(leadership(endpoints).0, target, "{binary} moved leadership");
    }

    // Errors: no leader among the endpoints, a bad transferee, an endpoint
    // that does not answer before the leader is found.
    let (leader, follower_endpoint, follower) = a_follower(endpoints);
    let follower_hex = format!("{follower:x}");
    let leader_hex = format!("{leader:x}");
    let dead_first = format!("{},{all}", dead_endpoint());
    for list in [
        &[
            "--endpoints",
            &follower_endpoint,
            "move-leader",
            &follower_hex,
        ][..],
        &["--endpoints", &all, "move-leader", "1234"],
        &[
            "--endpoints",
            &dead_first,
            "--command-timeout=1s",
            "move-leader",
            &follower_hex,
        ],
        // To the leader itself: etcd moves nothing and says so.
        &["--endpoints", &all, "move-leader", &leader_hex],
    ] {
        both(list);
    }

    // Other formats: each etcdctl moves leadership once more per format;
    // fields and table fail only after the move.
    for format in ["json", "protobuf", "fields", "table"] {
        let mut outcomes = Vec::new();
        for binary in [REFERENCE_ETCDCTL, OUR_ETCDCTL] {
            let (_, _, target) = a_follower(endpoints);
            let target_hex = format!("{target:x}");
            let list = [
                "--endpoints",
                &all,
                "move-leader",
                &target_hex,
                "-w",
                format,
            ];
            outcomes.push(run(binary, &args(&list)));
            assert_eq!(
                leadership(endpoints).0,
                target,
                "{binary} -w {format} moved leadership"
            );
        }
        assert_same(&["move-leader", "-w", format], &outcomes[0], &outcomes[1]);
    }
}

#[test]
fn member_move_leader_and_hashkv_match_etcd() {
    if !reference_available() || !Path::new(REFERENCE_ETCD).is_file() {
        eprintln!("skipped: etcd 3.4 is not installed");
        return;
    }
    let cluster = three_members(Flavor::Reference);
    check_cluster_commands(&endpoints(&cluster), false);
}

#[test]
fn member_move_leader_and_hashkv_on_rsetcd_match_between_etcdctls() {
    if !reference_available() {
        eprintln!("skipped: Debian's etcdctl 3.4 is not installed");
        return;
    }
    let cluster = three_members(Flavor::Ours);
    check_cluster_commands(&endpoints(&cluster), true);
}
