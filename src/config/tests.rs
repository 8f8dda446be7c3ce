//! End-to-end tests of [`parse`]: flags, environment, config file,
//! precedence, validation and the "not supported yet" rule.

use std::io::Write;
use std::time::Duration;

use super::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Command, ConfigError> {
    let mut argv = vec![OsString::from("etcd")];
    argv.extend(args.iter().map(OsString::from));
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse(argv, env)
}

fn config(args: &[&str], env: &[(&str, &str)]) -> Config {
    match run(args, env) {
        Ok(Command::Run(config)) => *config,
        other => panic!("expected a config for {args:?}, got {other:?}"),
    }
}

fn error(args: &[&str], env: &[(&str, &str)]) -> ConfigError {
    match run(args, env) {
        Err(e) => e,
        other => panic!("expected an error for {args:?}, got {other:?}"),
    }
}

fn yaml_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn url_texts(urls: &[Url]) -> Vec<String> {
    urls.iter().map(url_to_string).collect()
}

#[test]
fn defaults_match_etcd() {
    let c = Config::default();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir, PathBuf::from("default.etcd"));
    assert_eq!(c.wal_dir, None);
    assert_eq!(c.snapshot_count, 100_000);
    assert_eq!(c.heartbeat_interval_ms, 100);
    assert_eq!(c.election_timeout_ms, 1000);
    assert_eq!(url_texts(&c.listen_client_urls), ["http://localhost:2379"]);
    assert_eq!(
        url_texts(&c.advertise_client_urls),
        ["http://localhost:2379"]
    );
    assert_eq!(url_texts(&c.listen_peer_urls), ["http://localhost:2380"]);
    assert_eq!(
        url_texts(&c.initial_advertise_peer_urls),
        ["http://localhost:2380"]
    );
    assert_eq!(c.initial_cluster.len(), 1);
    assert_eq!(c.initial_cluster[0].0, "default");
    assert_eq!(
        url_to_string(&c.initial_cluster[0].1),
        "http://localhost:2380"
    );
    assert_eq!(c.initial_cluster_token, "etcd-cluster");
    assert_eq!(c.initial_cluster_state, ClusterState::New);
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(c.quota_backend_bytes, 0);
    assert_eq!(c.log_level, LogLevel::Info);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.log_outputs, [LogOutput::Stderr]);
    assert!(c.strict_reconfig_check);
    assert!(c.pre_vote);
    assert_eq!(c.grpc_keepalive_min_time, Duration::from_secs(5));
    assert_eq!(c.grpc_keepalive_interval, Duration::from_secs(7200));
    assert_eq!(c.grpc_keepalive_timeout, Duration::from_secs(20));
    assert_eq!(c.max_concurrent_streams, u32::MAX);
    assert_eq!(c.auto_compaction, AutoCompaction::Disabled);
    assert_eq!(
        c.experimental.watch_progress_notify_interval,
        Duration::from_secs(600)
    );
    assert_eq!(c.cors, ["*"]);
    assert!(c
        .warnings
        .contains(&"'data-dir' was empty; using default (data-dir: default.etcd)".to_string()));
}

#[test]
fn version_and_help_exit_zero() {
    let Ok(Command::Exit {
        code,
        output,
        to_stderr,
    }) = run(&["--version"], &[])
    else {
        panic!("--version must exit");
    };
    assert_eq!((code, to_stderr), (0, false));
    let lines: Vec<_> = output.lines().collect();
    assert_eq!(lines[0], "etcd Version: 3.5.17");
    assert!(lines[1].starts_with("Git SHA: "));
    assert_eq!(
        lines[2],
        format!("Go Version: rsetcd {} (Rust)", env!("CARGO_PKG_VERSION"))
    );
    assert!(lines[3].starts_with("Go OS/Arch: linux/"));

    let Ok(Command::Exit { code, output, .. }) = run(&["--help"], &[]) else {
        panic!("--help must exit");
    };
    assert_eq!(code, 0);
    assert!(output.contains("--listen-client-urls 'http://localhost:2379'"));
}

#[test]
fn usage_errors_exit_two_with_usage_text() {
    let e = error(&["--foo"], &[]);
    assert_eq!(e.exit_code(), 2);
    assert_eq!(e.kind(), ConfigErrorKind::Usage);
    assert_eq!(e.message(), "flag provided but not defined: -foo");
    assert!(e
        .to_string()
        .starts_with("flag provided but not defined: -foo\nUsage:\n"));
}

#[test]
fn positional_arguments_are_rejected() {
    let e = error(&["bar"], &[]);
    assert_eq!(
        (e.exit_code(), e.message()),
        (1, "'bar' is not a valid flag")
    );
    let e = error(&["--version", "x"], &[]);
    assert_eq!(e.message(), "'x' is not a valid flag");
    let e = error(&["gateway", "start"], &[]);
    assert_eq!(e.message(), "etcd gateway is not supported yet");
}

#[test]
fn listen_client_urls_need_advertise_urls() {
    let e = error(&["--listen-client-urls", "http://127.0.0.1:2379"], &[]);
    assert_eq!(
        e.message(),
        "--advertise-client-urls is required when --listen-client-urls is set explicitly"
    );
    let e = error(&[], &[("ETCD_LISTEN_CLIENT_URLS", "http://127.0.0.1:2379")]);
    assert_eq!(e.exit_code(), 1);
    let c = config(
        &[
            "--listen-client-urls=http://127.0.0.1:2379,http://127.0.0.1:2379",
            "--advertise-client-urls=http://127.0.0.1:2379",
        ],
        &[],
    );
    assert_eq!(url_texts(&c.listen_client_urls), ["http://127.0.0.1:2379"]);
}

#[test]
fn bind_urls_need_ip_addresses_but_localhost_is_fine() {
    let e = error(&["--listen-peer-urls", "http://example.com:2380"], &[]);
    assert_eq!(
        e.message(),
        "expected IP in URL for binding (http://example.com:2380)"
    );
    config(&["--listen-peer-urls", "http://localhost:2381"], &[]);
    let e = error(&["--initial-advertise-peer-urls", "http://:2380"], &[]);
    assert!(e.message().contains("http://:2380"), "{}", e.message());
}

#[test]
fn timing_rules_follow_etcd() {
    let e = error(&["--heartbeat-interval=300"], &[]);
    assert_eq!(
        e.message(),
        "--election-timeout[1000ms] should be at least as 5 times as --heartbeat-interval[300ms]"
    );
    let e = error(&["--heartbeat-interval=0"], &[]);
    assert_eq!(e.message(), "--heartbeat-interval must be >0 (set to 0ms)");
    let e = error(&["--election-timeout=60000"], &[]);
    assert_eq!(
        e.message(),
        "--election-timeout[60000ms] is too long, and should be set less than 50000ms"
    );
    let c = config(
        &["--heartbeat-interval=200", "--election-timeout=1000"],
        &[],
    );
    assert_eq!(
        (c.heartbeat_interval_ms, c.election_timeout_ms),
        (200, 1000)
    );
}

#[test]
fn name_derives_data_dir_and_initial_cluster() {
    let c = config(
        &[
            "--name",
            "infra0",
            "--initial-advertise-peer-urls",
            "http://10.0.0.1:2380",
        ],
        &[],
    );
    assert_eq!(c.data_dir, PathBuf::from("infra0.etcd"));
    assert_eq!(c.initial_cluster.len(), 1);
    assert_eq!(c.initial_cluster[0].0, "infra0");
    assert_eq!(
        url_to_string(&c.initial_cluster[0].1),
        "http://10.0.0.1:2380"
    );

    let c = config(
        &[
            "--name",
            "a",
            "--initial-cluster",
            "a=http://127.0.0.1:2380,b=http://127.0.0.2:2380",
        ],
        &[],
    );
    let names: Vec<_> = c.initial_cluster.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
}

#[test]
fn bad_initial_cluster_is_reported() {
    let e = error(&["--initial-cluster", "a=localhost:2380"], &[]);
    assert_eq!(
        e.message(),
        "error setting up initial cluster: URL scheme must be http, https, unix, or unixs: localhost:2380"
    );
}

#[test]
fn cluster_state_is_checked() {
    let e = error(&["--initial-cluster-state", "foo"], &[]);
    assert_eq!(e.exit_code(), 2);
    assert_eq!(
        e.message(),
        "invalid value \"foo\" for flag -initial-cluster-state: invalid value (expected \"new\" or \"existing\")"
    );
    let c = config(&["--initial-cluster-state=existing"], &[]);
    assert_eq!(c.initial_cluster_state, ClusterState::Existing);
}

#[test]
fn unsupported_settings_fail_unless_default() {
    let e = error(&["--enable-v2"], &[]);
    assert_eq!(
        (e.exit_code(), e.message()),
        (1, "--enable-v2 is not supported yet")
    );
    config(&["--enable-v2=false"], &[]);
    let e = error(&[], &[("ETCD_ENABLE_PPROF", "true")]);
    assert_eq!(
        e.message(),
        "--enable-pprof is not supported yet (set by ETCD_ENABLE_PPROF)"
    );
    config(
        &[
            "--listen-client-urls=https://127.0.0.1:2379",
            "--advertise-client-urls=https://127.0.0.1:2379",
            "--cert-file=/server.pem",
            "--key-file=/server-key.pem",
        ],
        &[],
    );
    let e = error(&["--listen-metrics-urls=unix://localhost:2381"], &[]);
    assert_eq!(
        e.message(),
        "--listen-metrics-urls with a \"unix\" URL is not supported yet (unix://localhost:2381)"
    );
    config(&["--backend-bbolt-freelist-type=map"], &[]);
}

#[test]
fn logging_settings() {
    let c = config(
        &[
            "--log-level=debug",
            "--log-outputs=stdout,/tmp/etcd.log",
            "--log-format=console",
        ],
        &[],
    );
    assert_eq!(c.log_level, LogLevel::Debug);
    assert_eq!(c.log_format, LogFormat::Console);
    assert_eq!(
        c.log_outputs,
        [
            LogOutput::File(PathBuf::from("/tmp/etcd.log")),
            LogOutput::Stdout
        ]
    );
    let c = config(&["--log-outputs=systemd/journal"], &[]);
    assert_eq!(c.log_outputs, [LogOutput::Journal]);
    let e = error(&["--log-outputs=default,stdout"], &[]);
    assert_eq!(
        e.message(),
        "multi logoutput for \"default\" is not supported yet"
    );
    let e = error(&["--logger=capnslog"], &[]);
    assert_eq!(e.message(), "--logger=capnslog is removed in v3.5");
    let e = error(&["--log-level=loud"], &[]);
    assert!(e
        .message()
        .starts_with("invalid value \"loud\" for --log-level"));
    let e = error(&["--log-format=xml"], &[]);
    assert!(e
        .message()
        .starts_with("invalid value \"xml\" for --log-format"));
}

#[test]
fn environment_fills_in_and_conflicts_with_flags() {
    let c = config(&[], &[("ETCD_NAME", "envname"), ("ETCD_FOO", "bar")]);
    assert_eq!(c.name, "envname");
    assert!(c
        .warnings
        .contains(&"unrecognized environment variable ETCD_FOO=bar".to_string()));
    assert!(c
        .infos
        .contains(&"recognized and used environment variable ETCD_NAME=envname".to_string()));
    let e = error(&["--name", "a"], &[("ETCD_NAME", "b")]);
    assert_eq!(e.exit_code(), 1);
    assert!(e
        .message()
        .starts_with("conflicting environment variable \"ETCD_NAME\""));
}

#[test]
fn config_file_wins_over_flags_and_environment() {
    let file = yaml_file(
        "name: fromfile\nheartbeat-interval: 50\nelection-timeout: 500\n\
         listen-client-urls: http://127.0.0.1:23790\n",
    );
    let path = file.path().to_str().unwrap();
    let c = config(
        &["--config-file", path, "--name", "fromflag"],
        &[("ETCD_NAME", "fromenv"), ("ETCD_BOGUS", "x")],
    );
    assert_eq!(c.name, "fromfile");
    assert_eq!(c.heartbeat_interval_ms, 50);
    assert_eq!(c.data_dir, PathBuf::from("fromfile.etcd"));
    // etcd keeps the default advertise URL when only listen URLs are in the file.
    assert_eq!(
        url_texts(&c.advertise_client_urls),
        ["http://localhost:2379"]
    );
    assert_eq!(c.config_file.as_deref(), Some(file.path()));
    assert!(c.warnings.iter().any(|w| w.starts_with(
        "loaded server configuration, other configuration command line flags and environment variables will be ignored if provided"
    )));
    assert!(!c.warnings.iter().any(|w| w.contains("ETCD_BOGUS")));

    let c = config(&[], &[("ETCD_CONFIG_FILE", path), ("ETCD_NAME", "fromenv")]);
    assert_eq!(c.name, "fromfile");
}

#[test]
fn config_file_errors() {
    let file = yaml_file("heartbeat-interval: abc\n");
    let path = file.path().to_str().unwrap();
    let e = error(&["--config-file", path], &[]);
    assert_eq!(e.exit_code(), 1);
    assert_eq!(
        e.message(),
        format!("invalid value \"abc\" for key \"heartbeat-interval\" in config file {path}: expected a non-negative integer number of milliseconds")
    );
    let file = yaml_file("enable-pprof: true\n");
    let e = error(&["--config-file", file.path().to_str().unwrap()], &[]);
    assert_eq!(
        e.message(),
        "--enable-pprof is not supported yet (set by config file key \"enable-pprof\")"
    );
    let file = yaml_file("initial-cluster-state: foo\n");
    let e = error(&["--config-file", file.path().to_str().unwrap()], &[]);
    assert_eq!(e.message(), "unexpected clusterState \"foo\"");
    let file = yaml_file("heartbeat-interval: 500\n");
    let e = error(&["--config-file", file.path().to_str().unwrap()], &[]);
    assert!(e
        .message()
        .starts_with("--election-timeout[1000ms] should be"));
}

#[test]
fn durations_and_numbers_use_go_syntax() {
    let c = config(
        &[
            "--grpc-keepalive-interval=1h30m",
            "--grpc-keepalive-timeout=1.5s",
            "--max-txn-ops=0x100",
        ],
        &[],
    );
    assert_eq!(c.grpc_keepalive_interval, Duration::from_secs(5400));
    assert_eq!(c.grpc_keepalive_timeout, Duration::from_millis(1500));
    assert_eq!(c.max_txn_ops, 256);
    let e = error(&["--grpc-keepalive-timeout=10"], &[]);
    assert_eq!(
        e.message(),
        "invalid value \"10\" for flag -grpc-keepalive-timeout: parse error (time: missing unit in duration \"10\"; expected a duration such as \"300ms\", \"5s\" or \"10m\")"
    );
}

#[test]
fn raft_timeouts_are_raised_to_the_minimum() {
    let c = config(&["--raft-read-timeout=1s"], &[]);
    assert_eq!(c.raft_read_timeout, Duration::from_secs(5));
    assert!(c
        .infos
        .contains(&"raft-read-timeout increased to minimum value: 5s".to_string()));
}

#[test]
fn every_table_setting_is_supported_or_not() {
    let supported = supported_settings();
    for name in [
        "name",
        "listen-client-urls",
        "log-format",
        "grpc-keepalive-timeout",
        "config-file",
    ] {
        assert!(supported.contains(&name), "{name}");
    }
    let unsupported = unsupported_settings();
    assert!(supported.contains(&"client-cert-auth"));
    assert!(supported.contains(&"client-crl-file"));
    for name in [
        "enable-v2",
        "enable-pprof",
        "experimental-compact-hash-check-enabled",
    ] {
        assert!(unsupported.contains(&name), "{name}");
    }
}
