//! rsetcd-bench runs every workload of the benchmark matrix (issue 18), in
//! miniature, against our server and against etcd 3.4: each request is
//! answered without an error, and the watch benchmark receives every event
//! its watchers are owed. Speed is measured by scripts/bench-compare.sh,
//! never here.

use crate::support;
use crate::support::common::{ServerOptions, TestServer};

use serde_json::Value;

/// The JSON summaries rsetcd-bench prints for `args` against `server`.
fn bench(server: &TestServer, args: &[&str]) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rsetcd-bench"))
        .args(["--endpoints", &server.endpoint(), "--json"])
        .args(args)
        .output()
        .expect("run rsetcd-bench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "rsetcd-bench {args:?}: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON summary"))
        .collect()
}

fn count(v: &Value, field: &str) -> u64 {
    v[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

fn run_matrix(server: &TestServer) {
    for (args, requests) in [
        (
            &["--clients=4", "put", "--total=200", "--key-space-size=50"][..],
            200,
        ),
        (
            &[
                "--clients=4",
                "range",
                "foo",
                "--total=200",
                "--consistency=l",
            ][..],
            200,
        ),
        (
            &[
                "--clients=4",
                "range",
                "foo",
                "--total=200",
                "--consistency=s",
            ][..],
            200,
        ),
        (
            &[
                "--clients=4",
                "txn-put",
                "--total=100",
                "--txn-ops=3",
                "--key-space-size=30",
            ][..],
            100,
        ),
        (
            &[
                "--clients=4",
                "txn-put",
                "--total=100",
                "--compare",
                "--key-space-size=30",
            ][..],
            100,
        ),
    ] {
        let summaries = bench(server, args);
        let last = summaries.last().expect("a summary");
        assert_eq!(
            (count(last, "requests"), count(last, "errors")),
            (requests, 0),
            "{args:?}"
        );
    }
    // etcd's mode: one lease per client, KeepAliveOnce each time
    let summaries = bench(server, &["--clients=4", "lease-keepalive", "--total=100"]);
    let last = summaries.last().expect("a summary");
    assert_eq!((count(last, "requests"), count(last, "errors")), (100, 0));
    // ours: 20 leases renewed in turn on one stream per client, the
    // server's CPU per renewal from /proc
    let pid = server.pid.to_string();
    let summaries = bench(
        server,
        &[
            "--clients=4",
            "lease-keepalive",
            "--total=200",
            "--leases=20",
            &format!("--server-pid={pid}"),
        ],
    );
    let [grants, renewals, cpu] = &summaries[..] else {
        panic!("grant, renewal and CPU lines: {summaries:?}");
    };
    assert_eq!(
        (count(grants, "requests"), count(grants, "errors")),
        (20, 0)
    );
    assert_eq!(
        (count(renewals, "requests"), count(renewals, "errors")),
        (200, 0)
    );
    assert!(
        cpu["server_cpu_per_request_us"]
            .as_f64()
            .is_some_and(|c| c >= 0.0),
        "{cpu}"
    );
    // 4 streams x 25 watchers over 10 keys (10 watchers each); 50 puts
    // over the 10 keys owe 500 events
    let summaries = bench(
        server,
        &[
            "--conns=2",
            "--clients=4",
            "watch",
            "--streams=4",
            "--watch-per-stream=25",
            "--watched-key-total=10",
            "--key-space-size=10",
            "--sequential-keys",
            "--put-total=50",
        ],
    );
    let [creation, events] = &summaries[..] else {
        panic!("two summaries: {summaries:?}");
    };
    assert_eq!(
        (count(creation, "requests"), count(creation, "errors")),
        (100, 0)
    );
    assert_eq!(
        (count(events, "requests"), count(events, "errors")),
        (500, 0)
    );
}

#[test]
fn every_workload_runs_against_ours() {
    let ours = TestServer::start_ours(&ServerOptions::default()).unwrap();
    run_matrix(&ours);
}

#[test]
fn every_workload_runs_against_etcd() {
    if support::common::skip_without_reference() {
        return;
    }
    let etcd = TestServer::start_reference(&ServerOptions::default()).unwrap();
    run_matrix(&etcd);
}
