//! Client TLS as a user sees it: https:// client listeners served to
//! Debian's etcdctl 3.4 and curl, mutual TLS refusing clients without a
//! certificate from the trusted CA, --auto-tls, --cipher-suites and TLS
//! versions, and certificates and CA bundles replaced while serving
//! (SIGHUP and file change). Certificates are made here with rcgen.

use crate::support::tls as support;
use crate::support::tls::path;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{curl, curl_available, etcdctl, etcdctl_available, etcdctl_ok, free_port, Ca, Proc};

use crate::support::common::OUR_ETCD as OURS;

/// A single member: client URLs as given, an http peer URL.
fn start(dir: &Path, client_urls: &[String], extra: &[&str]) -> anyhow::Result<Proc> {
    start_with(OURS, dir, client_urls, extra)
}

fn start_with(
    binary: &str,
    dir: &Path,
    client_urls: &[String],
    extra: &[&str],
) -> anyhow::Result<Proc> {
    let peer = format!("http://127.0.0.1:{}", free_port()?);
    let mut args: Vec<String> = vec![
        "--name=tls".into(),
        format!("--data-dir={}", dir.join("data").display()),
        format!("--listen-client-urls={}", client_urls.join(",")),
        format!("--advertise-client-urls={}", client_urls[0]),
        format!("--listen-peer-urls={peer}"),
        format!("--initial-advertise-peer-urls={peer}"),
        format!("--initial-cluster=tls={peer}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start(binary, "member", dir, &args)
}

/// etcdctl's arguments for `endpoint` with the given TLS flags.
fn ctl<'a>(endpoint: &'a str, tls: &[&'a str], command: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--endpoints",
        endpoint,
        "--dial-timeout=2s",
        "--command-timeout=4s",
    ];
    args.extend_from_slice(tls);
    args.extend_from_slice(command);
    args
}

fn wait_ready(member: &mut Proc) {
    member
        .wait_log("ready to serve client requests", Duration::from_secs(30))
        .expect("member ready");
    // Listeners start right after that line.
    std::thread::sleep(Duration::from_millis(300));
}

#[test]
fn https_listener_serves_etcdctl_and_curl_beside_plain_http() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main").expect("ca");
    let server = ca.server("server", "server").expect("server cert");
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let http = format!("http://127.0.0.1:{}", free_port().expect("port"));
    let metrics = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        dir.path(),
        &[https.clone(), http.clone()],
        &[
            &format!("--cert-file={}", path(&server.cert)),
            &format!("--key-file={}", path(&server.key)),
            &format!("--listen-metrics-urls={metrics}"),
        ],
    )
    .expect("start");
    wait_ready(&mut member);
    let log = member.log();
    assert!(
        log.contains("\"msg\":\"serving client traffic securely\""),
        "{log}"
    );
    assert!(
        log.contains(&format!("\"address\":\"{}\"", &https["https://".len()..])),
        "{log}"
    );
    assert!(log.contains("serving client traffic insecurely"), "{log}");

    let cacert = format!("--cacert={}", path(&ca.ca_file()));
    assert_eq!(
        etcdctl_ok(&ctl(&https, &[&cacert], &["put", "greeting", "hello"])).expect("put over TLS"),
        "OK\n"
    );
    assert_eq!(
        etcdctl_ok(&ctl(&https, &[&cacert], &["get", "greeting"])).expect("get over TLS"),
        "greeting\nhello\n"
    );
    // The plain listener serves the same data.
    assert_eq!(
        etcdctl_ok(&ctl(&http, &[], &["get", "greeting", "--print-value-only"]))
            .expect("get over http"),
        "hello\n"
    );
    // Without the CA the server is not trusted.
    let out = etcdctl(&ctl(&https, &[], &["get", "greeting"])).expect("run etcdctl");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Error: context deadline exceeded"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    if curl_available() {
        let ca_file = path(&ca.ca_file()).to_string();
        let (ok, body, err) =
            curl(&["--cacert", &ca_file, &format!("{https}/health")]).expect("curl");
        assert!(ok, "{err}");
        assert_eq!(body, "{\"health\":\"true\",\"reason\":\"\"}");
        let (ok, body, err) = curl(&[
            "--http1.1",
            "--cacert",
            &ca_file,
            &format!("{https}/version"),
        ])
        .expect("curl");
        assert!(ok, "{err}");
        assert!(body.contains("\"etcdserver\":\"3.5"), "{body}");
        let (ok, body, err) =
            curl(&["--cacert", &ca_file, &format!("{https}/metrics")]).expect("curl");
        assert!(ok, "{err}");
        assert!(body.contains("etcd_server_has_leader 1"), "{body}");
        // The https:// metrics listener serves with the client certificate.
        let (ok, body, err) =
            curl(&["--cacert", &ca_file, &format!("{metrics}/metrics")]).expect("curl");
        assert!(ok, "{err}");
        assert!(body.contains("etcd_server_has_leader 1"), "{body}");
        let (ok, body, err) =
            curl(&["--cacert", &ca_file, &format!("{metrics}/health")]).expect("curl");
        assert!(ok && body.contains("\"health\":\"true\""), "{err}");
        // Plain HTTP to the TLS port gets no answer.
        let plain = https.replacen("https://", "http://", 1);
        let (ok, _, _) = curl(&[&format!("{plain}/health")]).expect("curl");
        assert!(!ok);
    }
}

#[test]
fn client_cert_auth_refuses_clients_without_a_trusted_certificate() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main").expect("ca");
    let rogue = Ca::new(dir.path(), "rogue").expect("rogue ca");
    let server = ca.server("server", "server").expect("server cert");
    let alice = ca.client("alice", "alice").expect("client cert");
    let mallory = rogue.client("mallory", "alice").expect("rogue client cert");
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        dir.path(),
        std::slice::from_ref(&https),
        &[
            &format!("--cert-file={}", path(&server.cert)),
            &format!("--key-file={}", path(&server.key)),
            &format!("--trusted-ca-file={}", path(&ca.ca_file())),
            "--client-cert-auth",
        ],
    )
    .expect("start");
    wait_ready(&mut member);
    let cacert = format!("--cacert={}", path(&ca.ca_file()));
    let (cert, key) = (
        format!("--cert={}", path(&alice.cert)),
        format!("--key={}", path(&alice.key)),
    );
    assert_eq!(
        etcdctl_ok(&ctl(&https, &[&cacert, &cert, &key], &["put", "k", "v"]))
            .expect("put with cert"),
        "OK\n"
    );
    let refused = |tls: &[&str]| {
        let out = etcdctl(&ctl(&https, tls, &["get", "k"])).expect("run etcdctl");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{stderr}");
        // What etcdctl prints for a refused handshake, with etcd as with us.
        assert!(
            stderr.ends_with("Error: context deadline exceeded\n"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
    };
    refused(&[&cacert]);
    let (rogue_cert, rogue_key) = (
        format!("--cert={}", path(&mallory.cert)),
        format!("--key={}", path(&mallory.key)),
    );
    refused(&[&cacert, &rogue_cert, &rogue_key]);
    let log = member.log();
    assert!(log.contains("\"msg\":\"rejected connection\""), "{log}");
    // Go's words, as etcd logs them.
    assert!(
        log.contains("\"error\":\"tls: client didn't provide a certificate\""),
        "{log}"
    );
    assert!(
        log.contains("\"error\":\"tls: failed to verify client certificate: x509: certificate signed by unknown authority\""),
        "{log}"
    );

    if curl_available() {
        let ca_file = path(&ca.ca_file()).to_string();
        let url = format!("{https}/health");
        let (ok, _, _) = curl(&["--cacert", &ca_file, &url]).expect("curl");
        assert!(!ok, "curl without a client certificate got through");
        let (ok, body, err) = curl(&[
            "--cacert",
            &ca_file,
            "--cert",
            path(&alice.cert),
            "--key",
            path(&alice.key),
            &url,
        ])
        .expect("curl");
        assert!(ok && body.contains("\"health\":\"true\""), "{err}");
    }
}

#[test]
fn trusted_ca_file_alone_requires_client_certificates_as_etcd_does() {
    if !etcdctl_available() || !Path::new(support::REFERENCE_ETCD).is_file() {
        eprintln!("skipped: etcd or etcdctl not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main").expect("ca");
    let server = ca.server("server", "server").expect("server cert");
    let alice = ca.client("alice", "alice").expect("client cert");
    let cacert = format!("--cacert={}", path(&ca.ca_file()));
    let cert = format!("--cert={}", path(&alice.cert));
    let key = format!("--key={}", path(&alice.key));
    let mut outcomes = Vec::new();
    for (name, binary) in [("ours", OURS), ("etcd", support::REFERENCE_ETCD)] {
        let sub = dir.path().join(name);
        let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
        let mut member = start_with(
            binary,
            &sub,
            std::slice::from_ref(&https),
            &[
                &format!("--cert-file={}", path(&server.cert)),
                &format!("--key-file={}", path(&server.key)),
                &format!("--trusted-ca-file={}", path(&ca.ca_file())),
            ],
        )
        .expect("start");
        support::etcdctl_eventually(
            &ctl(&https, &[&cacert, &cert, &key], &["put", "k", "v"]),
            Duration::from_secs(30),
        )
        .unwrap_or_else(|e| panic!("{name}: {e}\n{}", member.log()));
        let without = etcdctl(&ctl(&https, &[&cacert], &["get", "k"])).expect("etcdctl");
        let last_line = String::from_utf8_lossy(&without.stderr)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string();
        outcomes.push((name, without.status.code(), last_line));
        assert!(member.is_running());
    }
    assert_eq!(outcomes[0].1, outcomes[1].1, "{outcomes:?}");
    assert_eq!(outcomes[0].2, outcomes[1].2, "{outcomes:?}");
    assert_eq!(outcomes[0].2, "Error: context deadline exceeded");
}

#[test]
fn auto_tls_generates_a_certificate_under_the_data_dir() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member =
        start(dir.path(), std::slice::from_ref(&https), &["--auto-tls"]).expect("start");
    wait_ready(&mut member);
    let fixtures = dir.path().join("data").join("fixtures").join("client");
    let cert = fixtures.join("cert.pem");
    let key = fixtures.join("key.pem");
    assert!(cert.is_file() && key.is_file(), "{}", member.log());
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key).expect("key").permissions().mode() & 0o777,
        0o600
    );
    assert!(member.log().contains("automatically generate certificates"));
    // etcdctl 3.4 honours --insecure-skip-tls-verify only with
    // --insecure-transport=false (with etcd too).
    let skip = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
    assert_eq!(
        etcdctl_ok(&ctl(&https, &skip, &["put", "auto", "tls"])).expect("put"),
        "OK\n"
    );
    assert_eq!(
        etcdctl_ok(&ctl(&https, &skip, &["get", "auto", "--print-value-only"])).expect("get"),
        "tls\n"
    );
    // The self-signed certificate verifies as its own CA, for its hosts.
    let cacert = format!("--cacert={}", path(&cert));
    assert_eq!(
        etcdctl_ok(&ctl(
            &https,
            &[&cacert],
            &["get", "auto", "--print-value-only"]
        ))
        .expect("get"),
        "tls\n"
    );
    // A restart reuses the certificate rather than making another.
    let first = std::fs::read(&cert).expect("cert");
    drop(member);
    let mut member =
        start(dir.path(), std::slice::from_ref(&https), &["--auto-tls"]).expect("restart");
    wait_ready(&mut member);
    assert_eq!(first, std::fs::read(&cert).expect("cert"));
    assert!(!member.log().contains("automatically generate certificates"));
}

#[test]
fn cipher_suites_and_tls_versions() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main").expect("ca");
    let server = ca.server("server", "server").expect("server cert");
    let cert = format!("--cert-file={}", path(&server.cert));
    let key = format!("--key-file={}", path(&server.key));

    // Unknown names stop the member with etcd's message.
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        &dir.path().join("bad"),
        std::slice::from_ref(&https),
        &[
            &cert,
            &key,
            "--cipher-suites=TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,FOO",
        ],
    )
    .expect("start");
    let status = member.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(
        member
            .log()
            .contains("unexpected TLS cipher suite \\\"FOO\\\""),
        "{}",
        member.log()
    );
    // TLS 1.0 and 1.1 are refused at startup.
    let mut member = start(
        &dir.path().join("old"),
        std::slice::from_ref(&https),
        &[&cert, &key, "--tls-min-version=TLS1.1"],
    )
    .expect("start");
    assert_eq!(
        member
            .wait_exit(Duration::from_secs(10))
            .expect("exits")
            .code(),
        Some(1)
    );
    assert!(
        member
            .log()
            .contains("unexpected TLS version \\\"TLS1.1\\\" (must be one of: TLS1.2, TLS1.3)"),
        "{}",
        member.log()
    );
    if !curl_available() {
        eprintln!("skipped the handshake checks: curl not installed");
        return;
    }
    let ca_file = path(&ca.ca_file()).to_string();
    // One TLS 1.2 suite: clients offering only another one are refused.
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        &dir.path().join("suites"),
        std::slice::from_ref(&https),
        &[
            &cert,
            &key,
            "--cipher-suites=TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "--tls-max-version=TLS1.2",
        ],
    )
    .expect("start");
    wait_ready(&mut member);
    let health = format!("{https}/health");
    let with = |cipher: &str, extra: &[&str]| {
        let mut args = vec!["--cacert", ca_file.as_str(), "--ciphers", cipher];
        args.extend_from_slice(extra);
        args.push(health.as_str());
        curl(&args).expect("curl").0
    };
    assert!(with("ECDHE-ECDSA-AES128-GCM-SHA256", &[]));
    assert!(!with(
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        &["--tls-max", "1.2"]
    ));
    assert!(!with(
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        &["--tls-max", "1.2"]
    ));
    // --tls-max-version TLS1.2: a TLS 1.3-only client is refused.
    let (ok, _, _) = curl(&["--cacert", &ca_file, "--tlsv1.3", &health]).expect("curl");
    assert!(!ok);
    drop(member);

    // --tls-min-version TLS1.3: TLS 1.2 clients are refused.
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        &dir.path().join("tls13"),
        std::slice::from_ref(&https),
        &[&cert, &key, "--tls-min-version=TLS1.3"],
    )
    .expect("start");
    wait_ready(&mut member);
    let health = format!("{https}/health");
    let (ok, _, _) = curl(&["--cacert", &ca_file, "--tls-max", "1.2", &health]).expect("curl");
    assert!(!ok);
    let (ok, _, err) = curl(&["--cacert", &ca_file, "--tlsv1.3", &health]).expect("curl");
    assert!(ok, "{err}");
    if etcdctl_available() {
        let cacert = format!("--cacert={}", ca_file);
        assert_eq!(
            etcdctl_ok(&ctl(&https, &[&cacert], &["put", "v13", "x"]))
                .expect("etcdctl over TLS 1.3"),
            "OK\n"
        );
    }
}

/// Retries a get with the given TLS flags until it succeeds or fails as
/// `want_ok` says.
fn wait_access(
    endpoint: &str,
    tls: &[&str],
    want_ok: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let out = etcdctl(&ctl(endpoint, tls, &["get", "k"]))?;
        if out.status.success() == want_ok {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!(
                "access with {tls:?} still {} after {timeout:?}: {}",
                if want_ok { "refused" } else { "allowed" },
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn replaced_certificates_and_ca_are_used_without_restart() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let old = Ca::new(dir.path(), "old").expect("old ca");
    let new = Ca::new(dir.path(), "new").expect("new ca");
    let old_server = old.server("old-server", "server").expect("cert");
    let new_server = new.server("new-server", "server").expect("cert");
    let old_client = old.client("old-client", "client").expect("cert");
    let new_client = new.client("new-client", "client").expect("cert");
    // The files the member is configured with.
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).expect("dir");
    let (cert, key, ca) = (
        live.join("cert.pem"),
        live.join("key.pem"),
        live.join("ca.pem"),
    );
    let install = |server: &support::Pair, ca_file: &Path| {
        support::replace_file(&server.key, &key).expect("key");
        support::replace_file(&server.cert, &cert).expect("cert");
        support::replace_file(ca_file, &ca).expect("ca");
    };
    install(&old_server, &old.ca_file());
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        &dir.path().join("member"),
        std::slice::from_ref(&https),
        &[
            &format!("--cert-file={}", path(&cert)),
            &format!("--key-file={}", path(&key)),
            &format!("--trusted-ca-file={}", path(&ca)),
            "--client-cert-auth",
        ],
    )
    .expect("start");
    wait_ready(&mut member);
    let as_old = [
        format!("--cacert={}", path(&old.ca_file())),
        format!("--cert={}", path(&old_client.cert)),
        format!("--key={}", path(&old_client.key)),
    ];
    let as_new = [
        format!("--cacert={}", path(&new.ca_file())),
        format!("--cert={}", path(&new_client.cert)),
        format!("--key={}", path(&new_client.key)),
    ];
    let as_old: Vec<&str> = as_old.iter().map(String::as_str).collect();
    let as_new: Vec<&str> = as_new.iter().map(String::as_str).collect();
    etcdctl_ok(&ctl(&https, &as_old, &["put", "k", "v"])).expect("old client before");
    wait_access(&https, &as_new, false, Duration::from_secs(1)).expect("new client refused before");

    // SIGHUP: the member switches to the new server certificate and CA.
    install(&new_server, &new.ca_file());
    member
        .signal(nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    member
        .wait_log("\"trigger\":\"SIGHUP\"", Duration::from_secs(10))
        .expect("reload on SIGHUP");
    assert!(member.is_running(), "SIGHUP ended the member");
    wait_access(&https, &as_new, true, Duration::from_secs(5)).expect("new client after SIGHUP");
    wait_access(&https, &as_old, false, Duration::from_secs(5)).expect("old client after SIGHUP");

    // A broken replacement is refused; the running certificate stays.
    std::fs::write(&cert, "not a certificate\n").expect("break cert");
    member
        .wait_log(
            "cannot reload TLS certificates; keeping the ones in use",
            Duration::from_secs(10),
        )
        .expect("warning for a broken certificate");
    wait_access(&https, &as_new, true, Duration::from_secs(1)).expect("still serving");

    // Files changed without a signal: picked up by the poll.
    install(&old_server, &old.ca_file());
    wait_access(&https, &as_old, true, Duration::from_secs(10))
        .expect("old client after file change");
    wait_access(&https, &as_new, false, Duration::from_secs(5))
        .expect("new client after file change");
    assert!(
        member.log().contains("\"trigger\":\"file change\""),
        "{}",
        member.log()
    );
    assert!(member.is_running());
}

#[test]
fn client_cert_allowed_hostname_admits_only_that_host() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main").expect("ca");
    let server = ca.server("server", "server").expect("server cert");
    let allowed = ca
        .issue("allowed", "gateway", &["gateway.example.com"], false)
        .expect("cert");
    let other = ca
        .issue("other", "gateway", &["other.example.com"], false)
        .expect("cert");
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        dir.path(),
        std::slice::from_ref(&https),
        &[
            &format!("--cert-file={}", path(&server.cert)),
            &format!("--key-file={}", path(&server.key)),
            &format!("--trusted-ca-file={}", path(&ca.ca_file())),
            "--client-cert-auth",
            "--client-cert-allowed-hostname=gateway.example.com",
        ],
    )
    .expect("start");
    wait_ready(&mut member);
    let cacert = format!("--cacert={}", path(&ca.ca_file()));
    let flags = |pair: &support::Pair| {
        [
            cacert.clone(),
            format!("--cert={}", path(&pair.cert)),
            format!("--key={}", path(&pair.key)),
        ]
    };
    let ok = flags(&allowed);
    let ok: Vec<&str> = ok.iter().map(String::as_str).collect();
    assert_eq!(
        etcdctl_ok(&ctl(&https, &ok, &["put", "k", "v"])).expect("allowed host"),
        "OK\n"
    );
    let refused = flags(&other);
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    let out = etcdctl(&ctl(&https, &refused, &["get", "k"])).expect("etcdctl");
    assert!(!out.status.success());
    assert!(member
        .log()
        .contains("client certificate authentication failed"));
}

#[test]
fn client_crl_file_refuses_revoked_certificates() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "main").expect("ca");
    let server = ca.server("server", "server").expect("server cert");
    let good = ca.client("good", "good").expect("cert");
    let revoked = ca.client("revoked", "revoked").expect("cert");
    let crl = ca.crl("crl", &[&revoked]).expect("crl");
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        dir.path(),
        std::slice::from_ref(&https),
        &[
            &format!("--cert-file={}", path(&server.cert)),
            &format!("--key-file={}", path(&server.key)),
            &format!("--trusted-ca-file={}", path(&ca.ca_file())),
            &format!("--client-crl-file={}", path(&crl)),
            "--client-cert-auth",
        ],
    )
    .expect("start");
    wait_ready(&mut member);
    let flags = |pair: &support::Pair| {
        [
            format!("--cacert={}", path(&ca.ca_file())),
            format!("--cert={}", path(&pair.cert)),
            format!("--key={}", path(&pair.key)),
        ]
    };
    let ok = flags(&good);
    let ok: Vec<&str> = ok.iter().map(String::as_str).collect();
    assert_eq!(
        etcdctl_ok(&ctl(&https, &ok, &["put", "k", "v"])).expect("good certificate"),
        "OK\n"
    );
    let bad = flags(&revoked);
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let out = etcdctl(&ctl(&https, &bad, &["get", "k"])).expect("etcdctl");
    assert!(!out.status.success());
    assert!(
        member.log().contains("transport: certificate revoked"),
        "{}",
        member.log()
    );
}

/// Revocation under an intermediate CA (issue 23), as etcd's checkCRL:
/// a serial the list names revokes the certificate whichever CA of the
/// chain issued the list. WebPKI alone applies a list only to what its
/// issuer signed directly, so the root's list naming a leaf issued by an
/// intermediate revoked nothing before.
#[test]
fn a_crl_revokes_certificates_issued_under_an_intermediate() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Ca::new(dir.path(), "root").expect("ca");
    let issuing = root.intermediate("issuing").expect("intermediate");
    let withdrawn = root.intermediate("withdrawn").expect("intermediate");
    let server = issuing.server("server", "server").expect("server cert");
    let good = issuing.client("good", "good").expect("cert");
    // named by the root's list, though the intermediate issued it
    let by_root = issuing.client("by-root", "by-root").expect("cert");
    // named by the intermediate's own list (WebPKI's case)
    let by_issuer = issuing.client("by-issuer", "by-issuer").expect("cert");
    // issued by an intermediate the root revoked
    let under_withdrawn = withdrawn.client("under", "under").expect("cert");
    // another CA's list naming the good certificate's serial: not ours
    let stranger = Ca::new(dir.path(), "stranger").expect("ca");
    let root_crl = root
        .crl("root-crl", &[&by_root, &withdrawn.as_pair()])
        .expect("crl");
    let issuing_crl = issuing.crl("issuing-crl", &[&by_issuer]).expect("crl");
    let stranger_crl = stranger.crl("stranger-crl", &[&good]).expect("crl");
    let crl = dir.path().join("crl.pem");
    let lists: Vec<String> = [&root_crl, &issuing_crl, &stranger_crl]
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read crl"))
        .collect();
    std::fs::write(&crl, lists.concat()).expect("write crl");
    // the server trusts the root and the issuing intermediate, so a client
    // may present its leaf alone
    let trusted = dir.path().join("trusted.pem");
    std::fs::write(&trusted, format!("{}{}", root.cert_pem, issuing.cert_pem)).expect("write");
    let leaf_alone = support::Pair {
        cert: dir.path().join("by-root-leaf.pem"),
        ..by_root.clone()
    };
    let chain = std::fs::read_to_string(&by_root.cert).expect("read cert");
    let end = chain
        .find("-----END CERTIFICATE-----")
        .expect("a certificate")
        + "-----END CERTIFICATE-----\n".len();
    std::fs::write(&leaf_alone.cert, &chain[..end]).expect("write leaf");
    let https = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut member = start(
        dir.path(),
        std::slice::from_ref(&https),
        &[
            &format!("--cert-file={}", path(&server.cert)),
            &format!("--key-file={}", path(&server.key)),
            &format!("--trusted-ca-file={}", path(&trusted)),
            &format!("--client-crl-file={}", path(&crl)),
            "--client-cert-auth",
        ],
    )
    .expect("start");
    wait_ready(&mut member);
    let flags = |pair: &support::Pair| {
        [
            format!("--cacert={}", path(&root.ca_file())),
            format!("--cert={}", path(&pair.cert)),
            format!("--key={}", path(&pair.key)),
        ]
    };
    let ok = flags(&good);
    let ok: Vec<&str> = ok.iter().map(String::as_str).collect();
    assert_eq!(
        etcdctl_ok(&ctl(&https, &ok, &["put", "k", "v"])).expect("good certificate"),
        "OK\n",
        "{}",
        member.log()
    );
    for (what, pair) in [
        ("the root's list", &by_root),
        ("the intermediate's list", &by_issuer),
        ("a revoked intermediate", &under_withdrawn),
        // the chain holds only the intermediate; the root is trusted
        ("the root's list, leaf presented alone", &leaf_alone),
    ] {
        let bad = flags(pair);
        let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
        let out = etcdctl(&ctl(&https, &bad, &["get", "k"])).expect("etcdctl");
        assert!(
            !out.status.success(),
            "a certificate revoked by {what} was accepted"
        );
    }
    let log = member.log();
    assert!(
        log.contains(&format!(
            "transport: certificate serial {:x} revoked",
            by_root.serial
        )),
        "{log}"
    );
    assert!(log.contains("transport: certificate revoked"), "{log}");
}
