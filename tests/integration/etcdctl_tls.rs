//! Our `etcdctl` over TLS, compared with Debian's etcdctl 3.4 against etcd
//! 3.4 serving https:// with certificates made here with rcgen (a CA, a
//! server certificate for 127.0.0.1, a client certificate, and a second CA
//! that signed nothing of the server's): `--cacert/--cert/--key` and their
//! `ETCDCTL_*` variables, https:// endpoints, `--insecure-skip-tls-verify`,
//! a wrong CA, a missing client certificate, plain clients on a TLS port,
//! unreadable or mismatched files. Client log lines (timestamps, pointers,
//! connection error texts) are masked; what is printed otherwise, and the
//! exit codes, must be the same.
//!
//! Where etcd 3.5 (our target) and 3.4 differ — 3.4 ignores
//! `--insecure-skip-tls-verify` with `--insecure-transport=false` and no
//! certificate files — ours is checked against 3.5's behaviour directly.

use crate::support::common;
use crate::support::common::skip_without_reference;
use crate::support::process::Proc;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{REFERENCE_ETCD, REFERENCE_ETCDCTL};

use crate::support::common::OUR_ETCD;
use crate::support::common::OUR_ETCDCTL;

/// The certificates of one test, as files in a temporary directory.
struct Certs {
    dir: tempfile::TempDir,
}

impl Certs {
    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }
}

/// A CA and what it signs.
struct Authority {
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
}

impl Authority {
    fn new(name: &str) -> Authority {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate().expect("CA key");
        Authority { params, key }
    }

    fn cert_pem(&self) -> String {
        self.params
            .self_signed(&self.key)
            .expect("self-sign CA")
            .pem()
    }

    /// A leaf certificate for `cn` (with 127.0.0.1 as its IP SAN when
    /// `server`), as (certificate, key) PEM.
    fn issue(&self, cn: &str, server: bool) -> (String, String) {
        let names = if server {
            vec!["127.0.0.1".to_string(), "localhost".to_string()]
        } else {
            Vec::new()
        };
        let mut params = rcgen::CertificateParams::new(names).expect("leaf params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign leaf");
        (cert.pem(), key.serialize_pem())
    }
}

/// ca.crt, server.{crt,key}, client.{crt,key} from one CA; other-ca.crt
/// from another; self.{crt,key} self-signed for 127.0.0.1.
fn make_certs() -> Certs {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: &str| {
        std::fs::write(dir.path().join(name), text).expect("write certificate file")
    };
    let ca = Authority::new("test CA");
    write("ca.crt", &ca.cert_pem());
    let (cert, key) = ca.issue("server", true);
    write("server.crt", &cert);
    write("server.key", &key);
    let (cert, key) = ca.issue("root", false);
    write("client.crt", &cert);
    write("client.key", &key);
    write("other-ca.crt", &Authority::new("other CA").cert_pem());
    let self_key = rcgen::KeyPair::generate().expect("self-signed key");
    let self_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("self-signed params")
        .self_signed(&self_key)
        .expect("self-sign");
    write("self.crt", &self_cert.pem());
    write("self.key", &self_key.serialize_pem());
    Certs { dir }
}

/// etcd 3.4 serving clients on https:// (killed by PID on drop).
struct TlsServer {
    _proc: Proc,
    endpoint: String,
    _dir: tempfile::TempDir,
}

/// Starts etcd 3.4 with `cert`/`key` on an https:// client URL; with
/// `client_ca`, clients must present a certificate it signed.
fn start_tls_server(cert: &str, key: &str, client_ca: Option<&str>) -> TlsServer {
    start_tls_member(REFERENCE_ETCD, cert, key, client_ca, None)
}

/// Starts `binary` (etcd 3.4 or ours) like `start_tls_server`; servers
/// given the same `peer_identity` URL get the same member and cluster IDs.
fn start_tls_member(
    binary: &str,
    cert: &str,
    key: &str,
    client_ca: Option<&str>,
    peer_identity: Option<&str>,
) -> TlsServer {
    for _ in 0..3 {
        let dir = tempfile::tempdir().expect("temp dir");
        let client_port = common::free_port().expect("free port");
        let peer_port = common::free_port().expect("free port");
        let client_url = format!("https://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let advertised = peer_identity.unwrap_or(&peer_url).to_string();
        let mut command = Command::new(binary);
        command
            .arg("--name=tls")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={advertised}"))
            .arg(format!("--initial-cluster=tls={advertised}"))
            .arg(format!("--cert-file={cert}"))
            .arg(format!("--key-file={key}"));
        if let Some(ca) = client_ca {
            command
                .arg(format!("--trusted-ca-file={ca}"))
                .arg("--client-cert-auth");
        }
        let proc = Proc::spawn("tls", command, &dir.path().join("server.log")).expect("spawn etcd");
        let server = TlsServer {
            _proc: proc,
            endpoint: format!("127.0.0.1:{client_port}"),
            _dir: dir,
        };
        if wait_listening(client_port) {
            return server;
        }
        // Most likely the port was taken before etcd bound it: try again.
    }
    panic!("etcd with TLS did not start");
}

/// Waits until the port accepts connections and the server has had time
/// to become leader (a single member elects itself at once).
fn wait_listening(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            std::thread::sleep(Duration::from_millis(500));
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

/// Runs `binary` in the certificates' directory (so relative file names
/// work) with `args` after `--endpoints` and the given environment.
fn run(
    binary: &str,
    certs: &Certs,
    endpoint: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Outcome {
    let endpoint_arg = if args.iter().any(|a| a.starts_with("--endpoints")) {
        Vec::new()
    } else {
        vec![format!("--endpoints={endpoint}")]
    };
    let output = Command::new(binary)
        .current_dir(certs.dir.path())
        .args(endpoint_arg)
        .args(args.iter().map(|a| a.replace("@EP", endpoint)))
        .env_clear()
        .env("ETCDCTL_API", "3")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run etcdctl");
    let text = |bytes: &[u8]| {
        String::from_utf8_lossy(bytes)
            .replace(endpoint, "EP")
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
    };
    Outcome {
        code: output.status.code(),
        stdout: text(&output.stdout),
        stderr: text(&output.stderr),
    }
}

/// One command line and its environment.
type Case = (
    &'static [&'static str],
    &'static [(&'static str, &'static str)],
);

/// Against the server that requires client certificates signed by ca.crt.
const MUTUAL_TLS_CASES: &[Case] = &[
    (
        &[
            "--cacert=ca.crt",
            "--cert=client.crt",
            "--key=client.key",
            "put",
            "k",
            "v",
        ],
        &[],
    ),
    (
        &[
            "--cacert",
            "ca.crt",
            "--cert",
            "client.crt",
            "--key",
            "client.key",
            "get",
            "k",
            "-w",
            "json",
        ],
        &[],
    ),
    (
        &[
            "--endpoints=https://@EP",
            "--cacert=ca.crt",
            "--cert=client.crt",
            "--key=client.key",
            "get",
            "k",
        ],
        &[],
    ),
    (
        &["get", "k"],
        &[
            ("ETCDCTL_CACERT", "ca.crt"),
            ("ETCDCTL_CERT", "client.crt"),
            ("ETCDCTL_KEY", "client.key"),
        ],
    ),
    (
        &["--cacert=ca.crt", "get", "k"],
        &[
            ("ETCDCTL_CERT", "client.crt"),
            ("ETCDCTL_KEY", "client.key"),
        ],
    ),
    (
        &[
            "--insecure-skip-tls-verify",
            "--cert=client.crt",
            "--key=client.key",
            "get",
            "k",
        ],
        &[],
    ),
    (
        &["--cert=client.crt", "--key=client.key", "get", "k"],
        &[("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true")],
    ),
    (
        &[
            "--endpoints=https://@EP",
            "--insecure-skip-tls-verify",
            "--cert=client.crt",
            "--key=client.key",
            "member",
            "list",
            "-w",
            "table",
        ],
        &[],
    ),
    // What the etcd-backup script runs over TLS.
    (&["snapshot", "save", "backup.db"], CERT_ENV),
    // The server's certificate is not from this CA.
    (
        &[
            "--command-timeout=1s",
            "--cacert=other-ca.crt",
            "--cert=client.crt",
            "--key=client.key",
            "get",
            "k",
        ],
        &[],
    ),
    // No client certificate: the server refuses the handshake.
    (
        &["--command-timeout=1s", "--cacert=ca.crt", "get", "k"],
        &[],
    ),
    // With a login, the dial must succeed within --dial-timeout (exit 2).
    (
        &[
            "--command-timeout=1s",
            "--cacert=ca.crt",
            "--user=root:pw",
            "get",
            "k",
        ],
        &[],
    ),
    (
        &["--endpoints=127.0.0.1:1", "--user=root:pw", "get", "k"],
        &[],
    ),
    // No TLS at all, or TLS dropped by http://.
    (&["--command-timeout=1s", "get", "k"], &[]),
    (
        &[
            "--command-timeout=1s",
            "--endpoints=http://@EP",
            "--cacert=ca.crt",
            "--cert=client.crt",
            "--key=client.key",
            "get",
            "k",
        ],
        &[],
    ),
    // Files that cannot be used.
    (&["--cacert=missing.crt", "get", "k"], &[]),
    (&["--cacert=ca.crt", "--cert=client.crt", "get", "k"], &[]),
    (&["--cacert=ca.crt", "--key=client.key", "get", "k"], &[]),
    (
        &[
            "--cacert=ca.crt",
            "--cert=missing.crt",
            "--key=client.key",
            "get",
            "k",
        ],
        &[],
    ),
    (
        &[
            "--cacert=ca.crt",
            "--cert=client.crt",
            "--key=missing.key",
            "get",
            "k",
        ],
        &[],
    ),
    (
        &[
            "--cacert=ca.crt",
            "--cert=client.key",
            "--key=client.crt",
            "get",
            "k",
        ],
        &[],
    ),
    (&["--cacert=", "get", "k"], &[]),
    (&["--cert=", "get", "k"], &[]),
    (&["--key", "", "get", "k"], &[]),
];

/// Against a server with a self-signed certificate and no client auth.
const SELF_SIGNED_CASES: &[Case] = &[
    (
        &[
            "--insecure-skip-tls-verify",
            "--cert=client.crt",
            "--key=client.key",
            "put",
            "a",
            "1",
        ],
        &[],
    ),
    (&["--cacert=self.crt", "get", "a"], &[]),
    (
        &[
            "--endpoints=https://@EP",
            "--cacert=self.crt",
            "get",
            "a",
            "-w",
            "fields",
        ],
        &[],
    ),
    (
        &["--command-timeout=1s", "--cacert=ca.crt", "get", "a"],
        &[],
    ),
    (
        &[
            "--command-timeout=1s",
            "--endpoints=https://@EP",
            "get",
            "a",
        ],
        &[],
    ),
];

fn compare(certs: &Certs, server: &TlsServer, cases: &[Case]) -> Vec<String> {
    compare_servers(certs, server, server, cases)
}

/// Debian's etcdctl against `reference`, ours against `candidate`.
fn compare_servers(
    certs: &Certs,
    reference: &TlsServer,
    candidate: &TlsServer,
    cases: &[Case],
) -> Vec<String> {
    let mut failures = Vec::new();
    for (args, env) in cases {
        let expected = run(REFERENCE_ETCDCTL, certs, &reference.endpoint, args, env);
        let actual = run(OUR_ETCDCTL, certs, &candidate.endpoint, args, env);
        if expected != actual {
            failures.push(format!(
                "etcdctl {args:?} (env {env:?}):\n  expected {expected:?}\n  actual   {actual:?}"
            ));
        }
    }
    failures
}

fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn tls_flags_match_real_etcdctl_with_client_certificates() {
    if skip_without_reference() {
        return;
    }
    let certs = make_certs();
    let server = start_tls_server(
        &certs.path("server.crt"),
        &certs.path("server.key"),
        Some(&certs.path("ca.crt")),
    );
    assert_no_failures(compare(&certs, &server, MUTUAL_TLS_CASES));
}

#[test]
fn tls_flags_match_real_etcdctl_with_a_self_signed_server() {
    if skip_without_reference() {
        return;
    }
    let certs = make_certs();
    let server = start_tls_server(&certs.path("self.crt"), &certs.path("self.key"), None);
    assert_no_failures(compare(&certs, &server, SELF_SIGNED_CASES));

    // etcd 3.5: with --insecure-transport=false TLS is on without any file,
    // and --insecure-skip-tls-verify applies to it (3.4 fails to connect).
    let ours = run(
        OUR_ETCDCTL,
        &certs,
        &server.endpoint,
        &[
            "--insecure-transport=false",
            "--insecure-skip-tls-verify",
            "get",
            "a",
        ],
        &[],
    );
    assert_eq!(
        ours,
        Outcome {
            code: Some(0),
            stdout: "a\n1\n".to_string(),
            stderr: String::new(),
        }
    );
    let ours = run(
        OUR_ETCDCTL,
        &certs,
        &server.endpoint,
        &["get", "a", "--print-value-only"],
        &[
            ("ETCDCTL_INSECURE_TRANSPORT", "false"),
            ("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true"),
        ],
    );
    assert_eq!(
        (ours.code, ours.stdout.as_str()),
        (Some(0), "1\n"),
        "{ours:?}"
    );
    // Without skipping, the self-signed certificate is not trusted.
    let ours = run(
        OUR_ETCDCTL,
        &certs,
        &server.endpoint,
        &[
            "--command-timeout=1s",
            "--insecure-transport=false",
            "get",
            "a",
        ],
        &[],
    );
    assert_eq!(ours.code, Some(1));
    assert_eq!(
        ours.stderr,
        "<client log line>\nError: context deadline exceeded\n"
    );
}

/// The wrong CA's failure names the reason in the client log, as etcd
/// 3.5's client does ("certificate signed by unknown authority").
#[test]
fn wrong_ca_is_reported_as_unknown_authority() {
    if skip_without_reference() {
        return;
    }
    let certs = make_certs();
    let server = start_tls_server(&certs.path("self.crt"), &certs.path("self.key"), None);
    let output = Command::new(OUR_ETCDCTL)
        .current_dir(certs.dir.path())
        .args([
            &format!("--endpoints={}", server.endpoint),
            "--command-timeout=1s",
            "--cacert=ca.crt",
            "get",
            "a",
        ])
        .env_clear()
        .output()
        .expect("run etcdctl");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            r#"latest balancer error: connection error: desc = \"transport: authentication handshake failed: x509: certificate signed by unknown authority\""#
        ),
        "{stderr}"
    );
    assert!(
        stderr.ends_with("Error: context deadline exceeded\n"),
        "{stderr}"
    );
}

/// make-mirror copies into a cluster reached with the `--dest-*` TLS
/// flags (client certificate required there).
#[test]
fn make_mirror_reaches_a_tls_destination() {
    if skip_without_reference() {
        return;
    }
    let certs = make_certs();
    let dest = start_tls_server(
        &certs.path("server.crt"),
        &certs.path("server.key"),
        Some(&certs.path("ca.crt")),
    );
    let source = common::TestServer::start_reference(&common::ServerOptions::default())
        .expect("start source etcd");
    let put = run(
        OUR_ETCDCTL,
        &certs,
        &source.endpoint(),
        &["put", "m/k", "v"],
        &[],
    );
    assert_eq!(put.code, Some(0), "{put:?}");

    let mut mirror = Command::new(OUR_ETCDCTL)
        .current_dir(certs.dir.path())
        .args([
            &format!("--endpoints={}", source.endpoint()),
            "make-mirror",
            "--dest-cacert=ca.crt",
            "--dest-cert=client.crt",
            "--dest-key=client.key",
            &dest.endpoint,
        ])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start make-mirror");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mirrored = loop {
        let got = run(
            REFERENCE_ETCDCTL,
            &certs,
            &dest.endpoint,
            &[
                "--cacert=ca.crt",
                "--cert=client.crt",
                "--key=client.key",
                "get",
                "m/k",
            ],
            &[],
        );
        if got.stdout == "m/k\nv\n" || Instant::now() > deadline {
            break got;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let _ = mirror.kill();
    let _ = mirror.wait();
    assert_eq!(mirrored.stdout, "m/k\nv\n", "{mirrored:?}");
}

/// With client certificates and auth on, etcd takes the user from the
/// certificate's CN ("root" here) unless `--user` logs in as someone.
const CN_AUTH_CASES: &[Case] = &[
    (&["user", "add", "root:rootpw"], CERT_ENV),
    (&["auth", "enable"], CERT_ENV),
    (&["put", "k", "v"], CERT_ENV),
    (&["get", "k"], CERT_ENV),
    (&["user", "add", "alice:x"], CERT_ENV),
    (&["--user=alice:x", "get", "k"], CERT_ENV),
    (&["--user=alice:wrong", "get", "k"], CERT_ENV),
    (&["--user=root:rootpw", "user", "list"], CERT_ENV),
    (&["auth", "disable"], CERT_ENV),
];

const CERT_ENV: &[(&str, &str)] = &[
    ("ETCDCTL_CACERT", "ca.crt"),
    ("ETCDCTL_CERT", "client.crt"),
    ("ETCDCTL_KEY", "client.key"),
];

#[test]
fn certificate_common_name_logs_in_like_etcdctl() {
    if skip_without_reference() {
        return;
    }
    let certs = make_certs();
    let start = || {
        start_tls_server(
            &certs.path("server.crt"),
            &certs.path("server.key"),
            Some(&certs.path("ca.crt")),
        )
    };
    let (reference, candidate) = (start(), start());
    let failures = compare_servers(&certs, &reference, &candidate, CN_AUTH_CASES);
    assert_no_failures(failures);
}

/// Both halves of the system: Debian's etcdctl against etcd 3.4 and ours
/// against our etcd, each serving https:// with the same certificates.
#[test]
fn tls_against_our_server_matches_real_etcd() {
    if skip_without_reference() {
        return;
    }
    let certs = make_certs();
    let identity = format!(
        "http://127.0.0.1:{}",
        common::free_port().expect("free port")
    );
    let pair = |cert: &str, key: &str, client_ca: Option<&str>| {
        let start = |binary| {
            start_tls_member(
                binary,
                &certs.path(cert),
                &certs.path(key),
                client_ca.map(|ca| certs.path(ca)).as_deref(),
                Some(&identity),
            )
        };
        (start(REFERENCE_ETCD), start(OUR_ETCD))
    };
    let mut failures = Vec::new();
    let (reference, ours) = pair("server.crt", "server.key", Some("ca.crt"));
    failures.extend(compare_servers(&certs, &reference, &ours, MUTUAL_TLS_CASES));
    drop((reference, ours));
    let (reference, ours) = pair("self.crt", "self.key", None);
    failures.extend(compare_servers(
        &certs,
        &reference,
        &ours,
        SELF_SIGNED_CASES,
    ));
    drop((reference, ours));
    let (reference, ours) = pair("server.crt", "server.key", Some("ca.crt"));
    failures.extend(compare_servers(&certs, &reference, &ours, CN_AUTH_CASES));
    assert_no_failures(failures);
}
