//! Differential test of our `etcdctl`'s authentication commands against
//! Debian's etcdctl 3.4: the root user and role, `auth enable|disable`,
//! users and roles in every output format, permissions with `--prefix` and
//! `--from-key`, `user get --detail`, logins with `--user`/`--password`
//! (also as `ETCDCTL_*` variables and through the password prompt), wrong
//! passwords, unauthenticated and denied requests. Each etcdctl talks to
//! its own etcd 3.4; the two servers share their IDs and receive the same
//! requests, so headers and protobuf bytes match too. Client log lines
//! (timestamps, pointers) are masked.
//!
//! `auth status` is etcd 3.5's (3.4's etcdctl lacks it): it is checked
//! against 3.5's output directly, against etcd 3.4's server it is not
//! available, so it runs against our server when that supports it.

use crate::support::common;
use crate::support::common::skip_without_reference;
use crate::support::common::twin_options;

use common::{ServerOptions, TestServer, REFERENCE_ETCDCTL};

use crate::support::common::OUR_ETCDCTL;

use crate::support::etcdctl::{self, case, with_env, with_stdin, Case};

/// In order: later cases see what earlier ones changed.
const CASES: &[Case] = &[
    // Enabling without a root user fails; with one, etcdctl creates the
    // root role on the way.
    case(&["auth", "enable"]),
    case(&["user", "add", "root:rootpw"]),
    case(&["role", "list"]),
    case(&["auth", "enable"]),
    case(&["auth", "enable", "extra"]),
    // Without a login, everything is refused.
    case(&["put", "k", "v"]),
    case(&["user", "list"]),
    // Wrong logins exit with 2.
    case(&["--user", "root:wrong", "get", "k"]),
    case(&["--user", "nobody:x", "user", "list"]),
    case(&["--user", "root:rootpw", "--password", "rootpw", "get", "k"]),
    // Roles, in every format.
    case(&["--user", "root:rootpw", "role", "add", "r1"]),
    case(&["--user", "root:rootpw", "role", "add", "r2", "-w", "json"]),
    case(&["--user", "root:rootpw", "role", "add", "r3", "-w", "fields"]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "add",
        "r4",
        "-w",
        "protobuf",
    ]),
    case(&["--user", "root:rootpw", "role", "add", "r5", "-w", "table"]),
    case(&["--user", "root:rootpw", "role", "add", "r1"]),
    case(&["--user", "root:rootpw", "role", "add"]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "delete",
        "r2",
        "-w",
        "json",
    ]),
    case(&["--user", "root:rootpw", "role", "delete", "r3"]),
    case(&["--user", "root:rootpw", "role", "delete", "r3"]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "delete",
        "r4",
        "-w",
        "fields",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "delete",
        "r5",
        "-w",
        "protobuf",
    ]),
    // Permissions: a key, a range, a prefix, from a key, everything.
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "read",
        "foo",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "readwrite",
        "--prefix",
        "pre/",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "WRITE",
        "--from-key",
        "z",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "write",
        "a",
        "c",
        "-w",
        "json",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "read",
        "",
        "--prefix",
        "-w",
        "fields",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "read",
        "--prefix",
        "a",
        "b",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "read",
        "--from-key",
        "a",
        "b",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "read",
        "--prefix",
        "--from-key",
        "a",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "bogus",
        "a",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "read",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "grant-permission",
        "nope",
        "read",
        "a",
    ]),
    case(&["--user", "root:rootpw", "role", "get", "r1"]),
    case(&["--user", "root:rootpw", "role", "get", "r1", "-w", "json"]),
    case(&["--user", "root:rootpw", "role", "get", "r1", "-w", "fields"]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "get",
        "r1",
        "-w",
        "protobuf",
    ]),
    case(&["--user", "root:rootpw", "role", "get", "r1", "-w", "table"]),
    case(&["--user", "root:rootpw", "role", "get", "r1", "--hex"]),
    case(&["--user", "root:rootpw", "role", "get", "nope"]),
    case(&["--user", "root:rootpw", "role", "list", "-w", "json"]),
    case(&["--user", "root:rootpw", "role", "list", "-w", "fields"]),
    case(&["--user", "root:rootpw", "role", "list", "-w", "protobuf"]),
    case(&["--user", "root:rootpw", "role", "list", "extra"]),
    // Users: passwords from the argument, the flag, stdin, the prompt.
    case(&["--user", "root:rootpw", "user", "add", "u1:p1"]),
    case(&["--user", "root:rootpw", "user", "add", "u1:p1"]),
    case(&["--user", "root:rootpw", "user", "add", ":p1"]),
    case(&["--user", "root:rootpw", "user", "add"]),
    case(&[
        "--user",
        "root:rootpw",
        "user",
        "add",
        "u2",
        "--new-user-password",
        "p2",
        "-w",
        "json",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "user",
        "add",
        "u3",
        "--no-password",
        "-w",
        "fields",
    ]),
    with_stdin(
        &[
            "--user",
            "root:rootpw",
            "user",
            "add",
            "u4",
            "--interactive=false",
        ],
        "p4 ignored\n",
    ),
    with_stdin(
        &[
            "--user",
            "root:rootpw",
            "user",
            "add",
            "u5",
            "-w",
            "protobuf",
        ],
        "p5\np5\n",
    ),
    with_stdin(
        &["--user", "root:rootpw", "user", "add", "u6"],
        "p6\nother\n",
    ),
    with_stdin(&["--user", "root:rootpw", "user", "add", "u6"], "\n"),
    case(&["--user", "root:rootpw", "user", "grant-role", "u1", "r1"]),
    case(&[
        "--user",
        "root:rootpw",
        "user",
        "grant-role",
        "u2",
        "r1",
        "-w",
        "json",
    ]),
    case(&["--user", "root:rootpw", "user", "grant-role", "u2", "nope"]),
    case(&["--user", "root:rootpw", "user", "grant-role", "u2"]),
    case(&["--user", "root:rootpw", "user", "get", "u1"]),
    case(&["--user", "root:rootpw", "user", "get", "u1", "-w", "json"]),
    case(&["--user", "root:rootpw", "user", "get", "u1", "-w", "fields"]),
    case(&[
        "--user",
        "root:rootpw",
        "user",
        "get",
        "u1",
        "-w",
        "protobuf",
    ]),
    case(&["--user", "root:rootpw", "user", "get", "u1", "--detail"]),
    case(&[
        "--user",
        "root:rootpw",
        "user",
        "get",
        "u1",
        "--detail",
        "-w",
        "json",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "user",
        "get",
        "u1",
        "--detail",
        "-w",
        "fields",
    ]),
    case(&["--user", "root:rootpw", "user", "get", "u3", "--detail"]),
    case(&["--user", "root:rootpw", "user", "get", "nope"]),
    case(&["--user", "root:rootpw", "user", "list"]),
    case(&["--user", "root:rootpw", "user", "list", "-w", "json"]),
    case(&["--user", "root:rootpw", "user", "list", "-w", "fields"]),
    case(&["--user", "root:rootpw", "user", "list", "-w", "table"]),
    // What the users may do.
    case(&["--user", "u1:p1", "get", "foo"]),
    case(&["--user", "u1:p1", "put", "foo", "x"]),
    case(&["--user", "u1:p1", "put", "pre/a", "x"]),
    case(&["--user", "u1:p1", "get", "pre/", "--prefix"]),
    case(&["--user", "u1:p1", "put", "zz", "x"]),
    case(&["--user", "u1:p1", "get", "zz"]),
    case(&["--user", "u1", "--password", "p1", "get", "pre/a"]),
    case(&["--user", "u4:p4", "get", "foo"]),
    case(&["--user", "u5:p5", "get", "foo"]),
    case(&["--user", "u3:", "get", "foo"]),
    with_env(&["get", "pre/a"], &[("ETCDCTL_USER", "u1:p1")]),
    with_env(
        &["get", "pre/a"],
        &[("ETCDCTL_USER", "u1"), ("ETCDCTL_PASSWORD", "p1")],
    ),
    with_stdin(&["--user", "u1", "get", "pre/a"], "p1\n"),
    with_stdin(&["--user", "u1", "get", "pre/a"], "wrong\n"),
    with_stdin(&["--user", "u1", "get", "pre/a"], ""),
    // Changes to users.
    with_stdin(
        &[
            "--user",
            "root:rootpw",
            "user",
            "passwd",
            "u1",
            "--interactive=false",
        ],
        "p1new\n",
    ),
    case(&["--user", "u1:p1", "get", "foo"]),
    case(&["--user", "u1:p1new", "get", "foo"]),
    with_stdin(
        &[
            "--user",
            "root:rootpw",
            "user",
            "passwd",
            "u2",
            "-w",
            "json",
        ],
        "p2new\np2new\n",
    ),
    case(&["--user", "root:rootpw", "user", "passwd"]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "r1",
        "pre/",
        "--prefix",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "r1",
        "z",
        "--from-key",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "r1",
        "a",
        "c",
        "-w",
        "json",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "r1",
        "foo",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "r1",
        "foo",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "revoke-permission",
        "r1",
        "",
        "--prefix",
        "-w",
        "fields",
    ]),
    case(&["--user", "root:rootpw", "role", "revoke-permission", "r1"]),
    case(&["--user", "root:rootpw", "role", "get", "r1"]),
    case(&["--user", "root:rootpw", "user", "revoke-role", "u1", "r1"]),
    case(&["--user", "root:rootpw", "user", "revoke-role", "u1", "r1"]),
    case(&[
        "--user",
        "root:rootpw",
        "user",
        "revoke-role",
        "u2",
        "r1",
        "-w",
        "fields",
    ]),
    case(&["--user", "root:rootpw", "user", "delete", "u1"]),
    case(&["--user", "root:rootpw", "user", "delete", "u1"]),
    case(&[
        "--user",
        "root:rootpw",
        "user",
        "delete",
        "u2",
        "-w",
        "json",
    ]),
    case(&[
        "--user",
        "root:rootpw",
        "role",
        "delete",
        "r1",
        "-w",
        "fields",
    ]),
    case(&["--user", "root:rootpw", "user", "get", "root", "-w", "json"]),
    // Off again: logins are not needed, and tolerated.
    case(&["--user", "root:rootpw", "auth", "disable", "-w", "json"]),
    case(&["auth", "disable"]),
    case(&["put", "k", "v"]),
    case(&["--user", "root:wrong", "get", "k"]),
    case(&["user", "list"]),
];

struct Outcome {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

fn run_etcdctl(binary: &str, case: &Case, endpoint: &str) -> Outcome {
    let args = std::iter::once(format!("--endpoints={endpoint}"))
        .chain(case.args.iter().map(|a| a.to_string()));
    let env = case.env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
    let run = etcdctl::run(binary, args, case.stdin, env);
    Outcome {
        stdout: normalize(&run.stdout_text(), endpoint),
        stderr: normalize(&run.stderr_text(), endpoint),
        code: run.code,
    }
}

/// Client log lines carry timestamps and pointers; the endpoint differs.
fn normalize(text: &str, endpoint: &str) -> String {
    text.replace(endpoint, "EP")
        .split('\n')
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

/// Runs the cases with the real etcdctl against `reference` and ours
/// against `candidate`; returns the mismatches.
fn compare(reference: &TestServer, candidate: &TestServer) -> Vec<String> {
    let mut failures = Vec::new();
    for case in CASES {
        let expected = run_etcdctl(REFERENCE_ETCDCTL, case, &reference.endpoint());
        let actual = run_etcdctl(OUR_ETCDCTL, case, &candidate.endpoint());
        if (&expected.stdout, &expected.stderr, expected.code)
            != (&actual.stdout, &actual.stderr, actual.code)
        {
            failures.push(format!(
                "etcdctl {:?} (stdin {:?}, env {:?}):\n  expected {:?} {:?} {:?}\n  actual   {:?} {:?} {:?}",
                case.args,
                case.stdin,
                case.env,
                expected.code,
                expected.stdout,
                expected.stderr,
                actual.code,
                actual.stdout,
                actual.stderr
            ));
        }
    }
    failures
}

#[test]
fn auth_commands_match_real_etcdctl() {
    if skip_without_reference() {
        return;
    }
    let options = twin_options();
    let reference = TestServer::start_reference(&options).expect("start reference etcd");
    let twin = TestServer::start_reference(&options).expect("start twin etcd");
    let failures = compare(&reference, &twin);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// A token the server forgot (etcd's simple tokens expire after
/// `--auth-token-ttl` idle seconds) is replaced on the "invalid auth
/// token" answer and the call retried, as clientv3 does: `lock` runs its
/// command longer than the token lives, then still releases the lock.
#[test]
fn expired_token_is_renewed_like_clientv3() {
    if skip_without_reference() {
        return;
    }
    let options = ServerOptions {
        extra_args: vec!["--auth-token-ttl=1".to_string()],
        ..ServerOptions::default()
    };
    let mut outcomes = Vec::new();
    for binary in [REFERENCE_ETCDCTL, OUR_ETCDCTL] {
        let server = TestServer::start_reference(&options).expect("start etcd");
        let endpoint = server.endpoint();
        for setup in [
            case(&["user", "add", "root:rootpw"]),
            case(&["auth", "enable"]),
        ] {
            let done = run_etcdctl(REFERENCE_ETCDCTL, &setup, &endpoint);
            assert_eq!(done.code, Some(0), "{:?}", done.stderr);
        }
        let lock = case(&[
            "--user",
            "root:rootpw",
            "lock",
            "l",
            "--",
            "/bin/sleep",
            "3",
        ]);
        let held = run_etcdctl(binary, &lock, &endpoint);
        let left = run_etcdctl(
            binary,
            &case(&["--user", "root:rootpw", "get", "--prefix", "l"]),
            &endpoint,
        );
        outcomes.push((held.code, held.stdout, held.stderr, left.stdout));
    }
    assert_eq!(
        outcomes[0],
        (
            Some(0),
            String::new(),
            "<client log line>\n".to_string(),
            String::new()
        ),
        "etcdctl 3.4 renews the token once"
    );
    assert_eq!(outcomes[1], outcomes[0]);
}

/// The same cases with our etcdctl against our etcd, and Debian's
/// etcdctl against etcd 3.4: both halves of the system together.
#[test]
fn auth_commands_against_our_server_match_real_etcd() {
    if skip_without_reference() {
        return;
    }
    let options = twin_options();
    let reference = TestServer::start_reference(&options).expect("start reference etcd");
    let ours = TestServer::start_ours(&options).expect("start our etcd");
    let failures = compare(&reference, &ours);
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // etcd 3.5's `auth status` (etcdctl 3.4 has no such command): auth is
    // off again after the table; every change above moved the revision.
    let status = run_etcdctl(OUR_ETCDCTL, &case(&["auth", "status"]), &ours.endpoint());
    let revision = status
        .stdout
        .strip_prefix("Authentication Status: false\nAuthRevision: ")
        .and_then(|rest| rest.strip_suffix('\n'))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        status.code == Some(0) && revision.is_some_and(|r| r > 10),
        "{:?} {:?}",
        status.stdout,
        status.stderr
    );
    let json = run_etcdctl(
        OUR_ETCDCTL,
        &case(&["auth", "status", "-w", "json"]),
        &ours.endpoint(),
    );
    assert!(
        json.stdout.starts_with("{\"header\":{\"cluster_id\":")
            && json.stdout.ends_with(&format!(
                ",\"authRevision\":{}}}\n",
                revision.unwrap_or_default()
            )),
        "{:?}",
        json.stdout
    );
    let fields = run_etcdctl(
        OUR_ETCDCTL,
        &case(&["auth", "status", "-w", "fields"]),
        &ours.endpoint(),
    );
    assert_eq!(
        (fields.code, fields.stderr.as_str()),
        (Some(4), "Error: fields not supported as output format\n")
    );
}
