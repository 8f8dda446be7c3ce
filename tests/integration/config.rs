//! The `etcd` binary's configuration handling as a user sees it: `--version`,
//! `--help`, and the errors for bad flags, environment variables and config
//! files (exit codes and messages), none of which start a server.

use crate::support::common::run_etcd as etcd;
use std::io::Write;
use std::process::Output;

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Whether `text` shows `message`, printed as is or inside a JSON log line.
fn shows(text: &str, message: &str) -> bool {
    text.contains(message) || text.contains(&message.replace('"', "\\\""))
}

#[track_caller]
fn assert_fails(out: &Output, code: i32, message: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "exit code; stderr:\n{}",
        stderr(out)
    );
    assert!(
        shows(&stderr(out), message),
        "stderr does not show {message:?}:\n{}",
        stderr(out)
    );
}

#[test]
fn version_prints_etcd_style_and_exits_zero() {
    let out = etcd(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(lines[0], "etcd Version: 3.5.17");
    assert!(lines[1].starts_with("Git SHA: "), "{text}");
    assert_eq!(
        lines[2],
        format!("Go Version: rsetcd {} (Rust)", env!("CARGO_PKG_VERSION"))
    );
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(lines[3], format!("Go OS/Arch: linux/{arch}"));
}

#[test]
fn help_lists_flags_and_exits_zero() {
    for flag in ["--help", "-h", "-help"] {
        let out = etcd(&[flag], &[]);
        assert_eq!(out.status.code(), Some(0), "{flag}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("Usage:"), "{text}");
        assert!(
            text.contains("--listen-client-urls 'http://localhost:2379'"),
            "{text}"
        );
        assert!(text.contains("--initial-cluster-state 'new'"), "{text}");
    }
}

#[test]
fn unknown_flag_is_a_usage_error() {
    let out = etcd(&["--foo"], &[]);
    assert_fails(&out, 2, "flag provided but not defined: -foo");
    assert!(stderr(&out).contains("Usage:"), "{}", stderr(&out));
}

#[test]
fn bad_flag_value_names_flag_value_and_what_is_allowed() {
    let out = etcd(&["--heartbeat-interval=abc"], &[]);
    assert_fails(
        &out,
        2,
        "invalid value \"abc\" for flag -heartbeat-interval: parse error (expected a non-negative integer number of milliseconds)",
    );
    let out = etcd(&["--initial-cluster-state", "foo"], &[]);
    assert_fails(
        &out,
        2,
        "invalid value \"foo\" for flag -initial-cluster-state: invalid value (expected \"new\" or \"existing\")",
    );
    let out = etcd(&["--listen-client-urls", "127.0.0.1:2379"], &[]);
    assert_fails(
        &out,
        2,
        "invalid value \"127.0.0.1:2379\" for flag -listen-client-urls: parse \"127.0.0.1:2379\": first path segment in URL cannot contain colon",
    );
}

#[test]
fn bad_environment_value_names_the_variable() {
    let out = etcd(&[], &[("ETCD_HEARTBEAT_INTERVAL", "abc")]);
    assert_fails(
        &out,
        1,
        "invalid value \"abc\" for ETCD_HEARTBEAT_INTERVAL: parse error",
    );
}

#[test]
fn flag_and_environment_variable_together_is_fatal() {
    let out = etcd(&["--name", "a"], &[("ETCD_NAME", "b")]);
    assert_fails(
        &out,
        1,
        "conflicting environment variable \"ETCD_NAME\" is shadowed by corresponding command-line flag (either unset environment variable or disable flag)",
    );
}

#[test]
fn cross_field_rules_fail_with_etcds_messages() {
    let out = etcd(&["--heartbeat-interval=300"], &[]);
    assert_fails(
        &out,
        1,
        "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]",
    );
    let out = etcd(&["--listen-client-urls=http://127.0.0.1:2379"], &[]);
    assert_fails(
        &out,
        1,
        "--advertise-client-urls is required when --listen-client-urls is set explicitly",
    );
    let out = etcd(&["--listen-peer-urls=http://example.com:2380"], &[]);
    assert_fails(
        &out,
        1,
        "expected IP in URL for binding (http://example.com:2380)",
    );
}

#[test]
fn positional_argument_is_rejected() {
    let out = etcd(&["bar"], &[]);
    assert_fails(&out, 1, "'bar' is not a valid flag");
}

#[test]
fn unsupported_setting_fails_at_start() {
    let out = etcd(&["--enable-pprof"], &[]);
    assert_fails(&out, 1, "--enable-pprof is not supported yet");
    let out = etcd(&[], &[("ETCD_ENABLE_V2", "true")]);
    assert_fails(&out, 1, "--enable-v2 is not supported yet");
}

#[test]
fn config_file_with_bad_value_fails() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(b"name: test\nheartbeat-interval: abc\n")
        .expect("write config");
    let path = file.path().to_str().expect("utf-8 path").to_string();
    let out = etcd(&["--config-file", &path], &[]);
    assert_fails(
        &out,
        1,
        &format!("invalid value \"abc\" for key \"heartbeat-interval\" in config file {path}: expected a non-negative integer number of milliseconds"),
    );
    // The same file given through the environment.
    let out = etcd(&[], &[("ETCD_CONFIG_FILE", &path)]);
    assert_fails(&out, 1, "for key \"heartbeat-interval\" in config file");
}

#[test]
fn config_file_with_unsupported_setting_fails() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(b"enable-pprof: true\n")
        .expect("write config");
    let path = file.path().to_str().expect("utf-8 path").to_string();
    let out = etcd(&["--config-file", &path], &[]);
    assert_fails(&out, 1, "--enable-pprof is not supported yet");
}

#[test]
fn missing_config_file_is_reported() {
    let out = etcd(&["--config-file", "/nonexistent/etcd.conf.yml"], &[]);
    assert_fails(
        &out,
        1,
        "open /nonexistent/etcd.conf.yml: no such file or directory",
    );
}

/// A first start that fails before raft runs (here: the client port is
/// taken) leaves no data dir or `member/` skeleton behind, which a later
/// start would take for an initialized member; a failed start on an
/// existing member's data dir leaves it untouched.
#[test]
fn a_failed_first_start_leaves_no_member_skeleton() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", taken.local_addr().expect("addr"));
    let tmp = tempfile::tempdir().expect("temp dir");
    let data_dir = tmp.path().join("new.etcd");
    let wal_dir = tmp.path().join("elsewhere-wal");
    let start = |with_wal: bool| {
        let mut args = vec![
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={url}"),
            format!("--advertise-client-urls={url}"),
        ];
        if with_wal {
            args.push(format!("--wal-dir={}", wal_dir.display()));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        etcd(&args, &[])
    };
    let out = start(true);
    assert_fails(&out, 1, "address already in use");
    assert!(!data_dir.exists(), "{} left behind", data_dir.display());
    assert!(!wal_dir.exists(), "{} left behind", wal_dir.display());

    // an existing member's files stay
    let member = data_dir.join("member");
    std::fs::create_dir_all(member.join("wal")).expect("mkdir");
    std::fs::write(member.join("wal/keep"), b"x").expect("write");
    let out = start(false);
    assert_fails(&out, 1, "address already in use");
    assert!(
        member.join("wal/keep").exists(),
        "an existing member dir was touched"
    );
}
