//! RBAC as etcd's "Role-based access control" guide walks through it,
//! driven with Debian's etcdctl 3.4 against etcd 3.4 and against ours: the
//! same commands must print the same text and exit with the same status.
//! Only what must differ is normalised: the timestamps and client ids of
//! clientv3's retry warnings, and the endpoint address.

use crate::support::common;

use std::process::{Command, Stdio};

use common::{reference_available, ServerOptions, TestServer, REFERENCE_ETCDCTL};

/// One etcdctl call: its arguments and what it reads on stdin.
struct Step {
    args: Vec<&'static str>,
    stdin: &'static str,
}

fn step(args: &[&'static str]) -> Step {
    Step {
        args: args.to_vec(),
        stdin: "",
    }
}

fn step_in(args: &[&'static str], stdin: &'static str) -> Step {
    Step {
        args: args.to_vec(),
        stdin,
    }
}

/// The guide's flow: a root user, auth enabled, a role with read on one
/// key and readwrite on a prefix, allowed and denied reads, writes, txns
/// and watches, admin-only commands, revocations, auth disable.
fn flow() -> Vec<Step> {
    const ROOT: &str = "--user=root:rootpw";
    const ALICE: &str = "--user=alice:alicepw";
    vec![
        step(&["auth", "enable"]),
        step(&["user", "add", "root:rootpw"]),
        step(&["auth", "enable"]),
        step(&["user", "grant-role", "root", "root"]),
        step(&["role", "add", "root"]),
        step(&["user", "get", "root"]),
        step(&["auth", "enable"]),
        step(&["user", "list"]),
        step(&["put", "foo", "bar"]),
        step(&[ROOT, "user", "list"]),
        step(&[ROOT, "put", "foo", "bar"]),
        step(&[ROOT, "role", "add", "readfoo"]),
        step(&[ROOT, "role", "add", "readfoo"]),
        step(&[ROOT, "role", "grant-permission", "readfoo", "read", "foo"]),
        step(&[
            ROOT,
            "role",
            "grant-permission",
            "readfoo",
            "--prefix=true",
            "readwrite",
            "dir/",
        ]),
        step(&[
            ROOT,
            "role",
            "grant-permission",
            "readfoo",
            "--from-key",
            "write",
            "zz",
        ]),
        step(&[ROOT, "role", "grant-permission", "nosuch", "read", "foo"]),
        step(&[ROOT, "role", "get", "readfoo"]),
        step(&[ROOT, "role", "list"]),
        step(&[ROOT, "user", "add", "alice:alicepw"]),
        step(&[ROOT, "user", "add", "alice:alicepw"]),
        step(&[ROOT, "user", "grant-role", "alice", "readfoo"]),
        step(&[ROOT, "user", "grant-role", "alice", "nosuch"]),
        step(&[ROOT, "user", "grant-role", "nobody", "readfoo"]),
        step(&[ROOT, "user", "get", "alice"]),
        step(&[ALICE, "get", "foo"]),
        step(&[ALICE, "put", "foo", "x"]),
        step(&[ALICE, "put", "dir/a", "1"]),
        step(&[ALICE, "put", "zzz", "1"]),
        step(&[ALICE, "put", "zz", "1", "--prev-kv"]),
        step(&[ALICE, "get", "dir/", "--prefix"]),
        step(&[ALICE, "get", "d", "--prefix"]),
        step(&[ALICE, "get", "zz", "--from-key"]),
        step(&[ALICE, "get", "", "--prefix"]),
        step(&["--user=alice:wrong", "get", "foo"]),
        step(&["--user=bob:x", "get", "foo"]),
        step(&[ALICE, "user", "list"]),
        step(&[ALICE, "role", "list"]),
        step(&[ALICE, "user", "get", "alice"]),
        step(&[ALICE, "user", "get", "root"]),
        step(&[ALICE, "role", "get", "readfoo"]),
        step(&[ALICE, "role", "add", "mine"]),
        step(&[ALICE, "auth", "disable"]),
        step_in(
            &[ALICE, "txn"],
            "value(\"foo\") = \"bar\"\n\nput dir/b 2\n\nget foo\n\n",
        ),
        step_in(
            &[ALICE, "txn"],
            "value(\"foo\") = \"bar\"\n\nput other 2\n\n\n",
        ),
        step_in(
            &[ALICE, "txn"],
            "value(\"other\") = \"bar\"\n\nput dir/c 2\n\n\n",
        ),
        step_in(
            &[ALICE, "txn"],
            "value(\"foo\") = \"bar\"\n\nput dir/c 2\n\nget other\n\n",
        ),
        step(&[ALICE, "watch", "other"]),
        step(&[ALICE, "watch", "dir/", "--prefix", "--rev=1"]),
        step(&[ALICE, "del", "dir/a"]),
        step(&[ALICE, "del", "dir/", "--prefix", "--prev-kv"]),
        step(&[ALICE, "del", "foo"]),
        step(&[ALICE, "defrag"]),
        step(&[ALICE, "endpoint", "hashkv"]),
        step(&[ALICE, "alarm", "list"]),
        // (compaction as alice: root only here, beyond etcd; see
        // tests/integration/auth_hardening.rs)
        step(&[ROOT, "role", "revoke-permission", "readfoo", "foo"]),
        step(&[ROOT, "role", "revoke-permission", "readfoo", "foo"]),
        step(&[ALICE, "get", "foo"]),
        step(&[ROOT, "user", "revoke-role", "alice", "readfoo"]),
        step(&[ROOT, "user", "revoke-role", "alice", "readfoo"]),
        step(&[ALICE, "get", "dir/b"]),
        step(&[ROOT, "user", "revoke-role", "root", "root"]),
        step(&[ROOT, "role", "delete", "root"]),
        step(&[ROOT, "user", "delete", "root"]),
        step_in(
            &[ROOT, "user", "passwd", "alice", "--interactive=false"],
            "newpw\n",
        ),
        step(&[ALICE, "user", "get", "alice"]),
        step(&["--user=alice:newpw", "user", "get", "alice"]),
        step(&[ROOT, "role", "delete", "readfoo"]),
        step(&[ROOT, "role", "delete", "readfoo"]),
        step(&[ROOT, "user", "get", "alice"]),
        step(&[ROOT, "user", "delete", "alice"]),
        step(&[ROOT, "user", "delete", "alice"]),
        step(&[ROOT, "auth", "disable"]),
        step(&["auth", "disable"]),
        step(&["user", "list"]),
        step(&["role", "list"]),
        step(&["get", "foo"]),
    ]
}

/// Runs the flow against `endpoint`; returns the normalised transcript.
fn transcript(endpoint: &str) -> String {
    let mut out = String::new();
    for s in flow() {
        // a permitted watch never ends: 3 s is plenty for its first events
        let seconds = if s.args.contains(&"watch") { "3" } else { "20" };
        let mut child = Command::new("timeout")
            .arg(seconds)
            .arg(REFERENCE_ETCDCTL)
            .arg(format!("--endpoints={endpoint}"))
            .args(&s.args)
            .env("ETCDCTL_API", "3")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run etcdctl");
        {
            use std::io::Write as _;
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(s.stdin.as_bytes()).expect("write stdin");
        }
        let result = child.wait_with_output().expect("etcdctl output");
        out.push_str(&format!("$ etcdctl {}\n", s.args.join(" ")));
        out.push_str(&normalise(
            &String::from_utf8_lossy(&result.stdout),
            endpoint,
        ));
        out.push_str(&normalise(
            &String::from_utf8_lossy(&result.stderr),
            endpoint,
        ));
        out.push_str(&format!("[exit {:?}]\n", result.status.code()));
    }
    out
}

/// clientv3's log lines carry a timestamp and a random client id: keep
/// only their level, message and error.
fn normalise(text: &str, endpoint: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let line = line.replace(endpoint, "ENDPOINT");
        if line.starts_with("{\"level\":") {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                out.push_str(&line);
                out.push('\n');
                continue;
            };
            let field = |k: &str| {
                v.get(k)
                    .and_then(|e| e.as_str())
                    .unwrap_or_default()
                    .to_string()
            };
            out.push_str(&format!(
                "{}: {} {}\n",
                field("level"),
                field("msg"),
                field("error")
            ));
        } else {
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn rbac_guide_flow_matches_etcd() {
    if !reference_available() {
        eprintln!("skipped: etcd 3.4 is not installed");
        return;
    }
    let opts = ServerOptions {
        extra_args: vec!["--bcrypt-cost=4".into()],
        ..ServerOptions::default()
    };
    let reference = TestServer::start_reference(&opts).expect("start etcd 3.4");
    let ours = TestServer::start_ours(&opts).expect("start ours");
    let want = transcript(&reference.endpoint());
    let got = transcript(&ours.endpoint());
    let (want_lines, got_lines): (Vec<_>, Vec<_>) = (want.lines().collect(), got.lines().collect());
    for (i, (w, g)) in want_lines.iter().zip(&got_lines).enumerate() {
        assert_eq!(
            w,
            g,
            "line {i} differs\n--- etcd 3.4:\n{want}\n--- ours:\n{got}\n--- our log:\n{}",
            ours.log()
        );
    }
    assert_eq!(
        want_lines.len(),
        got_lines.len(),
        "--- etcd:\n{want}\n--- ours:\n{got}"
    );
    // The flow really exercised both outcomes.
    assert!(want.contains("etcdserver: permission denied"), "{want}");
    assert!(want.contains("etcdserver: user name is empty"), "{want}");
}

/// etcd 3.5 shows the root role's implicit permission (3.4 shows none).
#[test]
fn role_get_root_shows_the_whole_key_space() {
    if !reference_available() {
        eprintln!("skipped: etcdctl 3.4 is not installed");
        return;
    }
    let ours = TestServer::start_ours(&ServerOptions {
        extra_args: vec!["--bcrypt-cost=4".into()],
        ..ServerOptions::default()
    })
    .expect("start ours");
    let run = |args: &[&str]| {
        let out = Command::new(REFERENCE_ETCDCTL)
            .arg(format!("--endpoints={}", ours.endpoint()))
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("run etcdctl");
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&["role", "add", "root"]);
    assert_eq!(
        run(&["role", "get", "root"]),
        "Role root\nKV Read:\n\t[, <open ended> (prefix )\nKV Write:\n\t[, <open ended> (prefix )\n"
    );
}
