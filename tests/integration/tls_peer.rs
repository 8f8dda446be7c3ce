//! Peer TLS as an operator sees it: members talking over https:// peer
//! URLs with certificates from one CA elect a leader and replicate; a new
//! member with such a certificate joins; members whose certificate comes
//! from another CA, has a CN other than --peer-cert-allowed-cn, or names
//! another address than theirs, are refused and never get data; --peer-auto-tls members
//! form a cluster with self-signed certificates.

use crate::support::tls as support;

use std::path::Path;
use std::time::Duration;

use support::{etcdctl_available, etcdctl_eventually, etcdctl_ok, free_port, Ca, Pair, Proc};

use crate::support::common::OUR_ETCD as OURS;

struct Node {
    name: String,
    client: String,
    peer: String,
}

impl Node {
    fn new(name: &str) -> Node {
        Node {
            name: name.to_string(),
            client: format!("http://127.0.0.1:{}", free_port().expect("port")),
            peer: format!("https://127.0.0.1:{}", free_port().expect("port")),
        }
    }
}

fn initial_cluster(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("{}={}", n.name, n.peer))
        .collect::<Vec<_>>()
        .join(",")
}

fn start(
    dir: &Path,
    node: &Node,
    cluster: &str,
    state: &str,
    tls: &[String],
) -> anyhow::Result<Proc> {
    let mut args = vec![
        format!("--name={}", node.name),
        format!("--data-dir={}", dir.join(&node.name).display()),
        format!("--listen-client-urls={}", node.client),
        format!("--advertise-client-urls={}", node.client),
        format!("--listen-peer-urls={}", node.peer),
        format!("--initial-advertise-peer-urls={}", node.peer),
        format!("--initial-cluster={cluster}"),
        format!("--initial-cluster-state={state}"),
        "--initial-cluster-token=tls-peer".to_string(),
        "--heartbeat-interval=50".to_string(),
        "--election-timeout=500".to_string(),
    ];
    args.extend(tls.iter().cloned());
    Proc::start(OURS, &node.name, dir, &args)
}

/// Peer TLS flags for a member holding `pair`, trusting `ca`.
fn peer_flags(pair: &Pair, ca: &Ca) -> Vec<String> {
    vec![
        format!("--peer-cert-file={}", pair.cert.display()),
        format!("--peer-key-file={}", pair.key.display()),
        format!("--peer-trusted-ca-file={}", ca.ca_file().display()),
        "--peer-client-cert-auth".to_string(),
        "--peer-cert-allowed-cn=member".to_string(),
    ]
}

fn get(endpoint: &str, key: &str, serializable: bool) -> anyhow::Result<String> {
    let mut args = vec![
        "--endpoints",
        endpoint,
        "--command-timeout=4s",
        "get",
        key,
        "--print-value-only",
    ];
    if serializable {
        args.push("--consistency=s");
    }
    etcdctl_ok(&args)
}

#[test]
fn members_over_peer_tls_replicate_and_refuse_foreign_certificates() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "cluster").expect("ca");
    let rogue_ca = Ca::new(dir.path(), "rogue").expect("rogue ca");
    let nodes: Vec<Node> = (0..3).map(|i| Node::new(&format!("m{i}"))).collect();
    let cluster = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    let mut members: Vec<Proc> = nodes
        .iter()
        .map(|n| {
            let pair = ca.server(&n.name, "member").expect("cert");
            start(dir.path(), n, &cluster, "new", &peer_flags(&pair, &ca)).expect("start")
        })
        .collect();
    etcdctl_eventually(
        &[
            "--endpoints",
            &nodes[0].client,
            "--command-timeout=4s",
            "put",
            "k",
            "over-tls",
        ],
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", members[0].log()));
    assert_eq!(
        get(&nodes[2].client, "k", false).expect("get on m2"),
        "over-tls\n"
    );
    for m in members.iter_mut() {
        assert!(m.is_running());
        let log = m.log();
        assert!(log.contains("\"msg\":\"starting with peer TLS\""), "{log}");
        assert!(
            log.contains("established a stream to a remote peer"),
            "{log}"
        );
        assert!(!log.contains("rejected connection"), "{log}");
    }

    // A new member with a certificate of the cluster's CA joins and
    // receives the data.
    let joiner = Node::new("m3");
    // Right after the start --strict-reconfig-check may still find the
    // cluster unhealthy: retried.
    etcdctl_eventually(
        &[
            "--endpoints",
            &nodes[0].client,
            "member",
            "add",
            "m3",
            &format!("--peer-urls={}", joiner.peer),
        ],
        Duration::from_secs(10),
    )
    .expect("member add m3");
    let joined_cluster = initial_cluster(&nodes.iter().chain([&joiner]).collect::<Vec<_>>());
    let pair = ca.server("m3", "member").expect("cert");
    let mut m3 = start(
        dir.path(),
        &joiner,
        &joined_cluster,
        "existing",
        &peer_flags(&pair, &ca),
    )
    .expect("start m3");
    let value = etcdctl_eventually(
        &[
            "--endpoints",
            &joiner.client,
            "--command-timeout=4s",
            "get",
            "k",
            "--print-value-only",
            "--consistency=s",
        ],
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", m3.log()));
    assert_eq!(value, "over-tls\n");
    assert!(m3.is_running());

    // Two intruders are added as members (so the cluster would send them
    // data) but present the wrong certificates: one from another CA, one
    // from the cluster's CA with a CN other than the allowed one.
    let rogue_pair = rogue_ca.server("rogue", "member").expect("rogue cert");
    let intruder_pair = ca.server("intruder", "intruder").expect("intruder cert");
    // Right CA and CN, but issued for another address than the one it
    // connects from (etcd's SAN check of peers).
    let elsewhere_pair = ca
        .issue("elsewhere", "member", &["10.0.0.1"], true)
        .expect("elsewhere cert");
    let mut all: Vec<&Node> = nodes.iter().chain([&joiner]).collect();
    let rogue = Node::new("rogue");
    let intruder = Node::new("intruder");
    let elsewhere = Node::new("elsewhere");
    for (node, pair, trusted) in [
        (&rogue, &rogue_pair, &rogue_ca),
        (&intruder, &intruder_pair, &ca),
        (&elsewhere, &elsewhere_pair, &ca),
    ] {
        etcdctl_eventually(
            &[
                "--endpoints",
                &nodes[0].client,
                "member",
                "add",
                &node.name,
                &format!("--peer-urls={}", node.peer),
            ],
            Duration::from_secs(10),
        )
        .expect("member add");
        all.push(node);
        let mut proc = start(
            dir.path(),
            node,
            &initial_cluster(&all),
            "existing",
            &peer_flags(pair, trusted),
        )
        .expect("start intruder");
        // Its requests for the membership are refused at the handshake:
        // it cannot join.
        let status = proc
            .wait_exit(Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}\n{}", proc.log()));
        assert!(!status.success());
        let log = proc.log();
        assert!(
            log.contains("cannot fetch cluster info from peer urls"),
            "{log}"
        );
        assert!(!log.contains("published local member"), "{log}");
        assert!(!log.contains("established a stream"), "{log}");
        assert!(
            !log.contains("received and saved database snapshot"),
            "{log}"
        );
        // Out again, so the next one can be added under
        // --strict-reconfig-check.
        let list =
            etcdctl_ok(&["--endpoints", &nodes[0].client, "member", "list"]).expect("member list");
        let id = list
            .lines()
            .find(|l| l.contains(&format!(", {}, ", node.peer)))
            .and_then(|l| l.split(',').next())
            .unwrap_or_else(|| panic!("{} not listed: {list}", node.name))
            .to_string();
        etcdctl_ok(&["--endpoints", &nodes[0].client, "member", "remove", &id])
            .expect("member remove");
        all.pop();
    }
    let cluster_logs: String = members.iter().map(Proc::log).collect();
    assert!(
        cluster_logs.contains("\"msg\":\"rejected connection\""),
        "{cluster_logs}"
    );
    // The rogue's CA does not know ours: it gives up on our certificate.
    assert!(
        cluster_logs.contains("remote error: tls: unknown certificate authority"),
        "{cluster_logs}"
    );
    assert!(
        cluster_logs.contains("client certificate authentication failed"),
        "{cluster_logs}"
    );
    assert!(
        cluster_logs.contains("x509: certificate is valid for 10.0.0.1, not 127.0.0.1"),
        "{cluster_logs}"
    );
    // The cluster keeps working with its members.
    etcdctl_ok(&[
        "--endpoints",
        &nodes[1].client,
        "--command-timeout=4s",
        "put",
        "after",
        "intruders",
    ])
    .expect("put after the intruders");
    assert_eq!(
        get(&joiner.client, "after", false).expect("get"),
        "intruders\n"
    );
    drop(m3);
}

#[test]
fn peer_auto_tls_members_form_a_cluster() {
    if !etcdctl_available() {
        eprintln!("skipped: {} not installed", support::ETCDCTL);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes: Vec<Node> = (0..3).map(|i| Node::new(&format!("a{i}"))).collect();
    let cluster = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    let members: Vec<Proc> = nodes
        .iter()
        .map(|n| {
            start(
                dir.path(),
                n,
                &cluster,
                "new",
                &["--peer-auto-tls".to_string()],
            )
            .expect("start")
        })
        .collect();
    etcdctl_eventually(
        &[
            "--endpoints",
            &nodes[1].client,
            "--command-timeout=4s",
            "put",
            "auto",
            "peer-tls",
        ],
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", members[1].log()));
    assert_eq!(
        get(&nodes[2].client, "auto", false).expect("get"),
        "peer-tls\n"
    );
    for n in &nodes {
        let fixtures = dir.path().join(&n.name).join("fixtures").join("peer");
        assert!(fixtures.join("cert.pem").is_file() && fixtures.join("key.pem").is_file());
    }
}

#[test]
fn https_metrics_url_without_client_certificates_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::new("alone");
    node.peer = node.peer.replacen("https://", "http://", 1);
    let port = free_port().expect("port");
    let mut proc = start(
        dir.path(),
        &node,
        &initial_cluster(&[&node]),
        "new",
        &[format!("--listen-metrics-urls=https://127.0.0.1:{port}")],
    )
    .expect("start");
    let status = proc.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
    assert!(
        proc.log().contains(&format!(
            "cannot listen on TLS for 127.0.0.1:{port}: KeyFile and CertFile are not presented"
        )),
        "{}",
        proc.log()
    );
}

#[test]
fn https_peer_url_without_certificates_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::new("alone");
    let mut proc = start(dir.path(), &node, &initial_cluster(&[&node]), "new", &[]).expect("start");
    let status = proc.wait_exit(Duration::from_secs(10)).expect("exits");
    assert_eq!(status.code(), Some(1));
    let port = node.peer.rsplit(':').next().expect("port");
    assert!(
        proc.log().contains(&format!(
            "cannot listen on TLS for 127.0.0.1:{port}: KeyFile and CertFile are not presented"
        )),
        "{}",
        proc.log()
    );
}

fn openssl_available() -> bool {
    std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether a TLS handshake with the peer port succeeds when trusting `ca`
/// and presenting `client`.
fn handshake_ok(peer_url: &str, ca: &Path, client: &Pair) -> bool {
    let addr = peer_url.trim_start_matches("https://");
    std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            addr,
            "-brief",
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(ca)
        .arg("-cert")
        .arg(&client.cert)
        .arg("-key")
        .arg(&client.key)
        .stdin(std::process::Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn peer_certificates_and_ca_reload_on_sighup_and_from_a_yaml_config() {
    if !openssl_available() {
        eprintln!("skipped: openssl not installed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let old = Ca::new(dir.path(), "old").expect("ca");
    let new = Ca::new(dir.path(), "new").expect("ca");
    let old_member = old.server("old-member", "member").expect("cert");
    let new_member = new.server("new-member", "member").expect("cert");
    let live = dir.path().join("live");
    std::fs::create_dir_all(&live).expect("dir");
    let (cert, key, ca) = (
        live.join("peer.pem"),
        live.join("peer-key.pem"),
        live.join("peer-ca.pem"),
    );
    let install = |pair: &Pair, ca_file: &Path| {
        support::replace_file(&pair.key, &key).expect("key");
        support::replace_file(&pair.cert, &cert).expect("cert");
        support::replace_file(ca_file, &ca).expect("ca");
    };
    install(&old_member, &old.ca_file());
    // The peer TLS settings come from the YAML file's peer-transport-security.
    let node = Node::new("solo");
    let yaml = format!(
        "name: solo\n\
         data-dir: {data}\n\
         listen-client-urls: {client}\n\
         advertise-client-urls: {client}\n\
         listen-peer-urls: {peer}\n\
         initial-advertise-peer-urls: {peer}\n\
         initial-cluster: solo={peer}\n\
         peer-transport-security:\n  \
           cert-file: {cert}\n  \
           key-file: {key}\n  \
           trusted-ca-file: {ca}\n  \
           client-cert-auth: true\n",
        data = dir.path().join("solo").display(),
        client = node.client,
        peer = node.peer,
        cert = cert.display(),
        key = key.display(),
        ca = ca.display(),
    );
    let config = dir.path().join("etcd.conf.yml");
    std::fs::write(&config, yaml).expect("config");
    let mut member = Proc::start(
        OURS,
        "solo",
        dir.path(),
        &[format!("--config-file={}", config.display())],
    )
    .expect("start");
    member
        .wait_log("ready to serve client requests", Duration::from_secs(30))
        .expect("ready");
    assert!(member.log().contains("\"msg\":\"starting with peer TLS\""));
    assert!(handshake_ok(&node.peer, &old.ca_file(), &old_member));
    assert!(!handshake_ok(&node.peer, &new.ca_file(), &new_member));

    install(&new_member, &new.ca_file());
    member
        .signal(nix::sys::signal::Signal::SIGHUP)
        .expect("SIGHUP");
    member
        .wait_log("\"trigger\":\"SIGHUP\"", Duration::from_secs(10))
        .expect("reload");
    assert!(member.log().contains("\"side\":\"peer\""));
    assert!(handshake_ok(&node.peer, &new.ca_file(), &new_member));
    assert!(!handshake_ok(&node.peer, &old.ca_file(), &old_member));
    // Still a working member.
    assert!(member.is_running());
}

/// The corruption checks ask the other members for their hashes over the
/// peer port: with https:// peer URLs too, with the peer certificates.
#[test]
fn corruption_checks_reach_members_over_peer_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = Ca::new(dir.path(), "cluster").expect("ca");
    let nodes: Vec<Node> = (0..3).map(|i| Node::new(&format!("c{i}"))).collect();
    let cluster = initial_cluster(&nodes.iter().collect::<Vec<_>>());
    let flags = |n: &Node| {
        let pair = ca.server(&n.name, "member").expect("cert");
        let mut flags = peer_flags(&pair, &ca);
        flags.push("--experimental-initial-corrupt-check=true".into());
        flags.push("--experimental-corrupt-check-time=500ms".into());
        flags
    };
    let mut members: Vec<Proc> = nodes
        .iter()
        .map(|n| start(dir.path(), n, &cluster, "new", &flags(n)).expect("start"))
        .collect();
    for m in members.iter_mut() {
        m.wait_log("ready to serve client requests", Duration::from_secs(30))
            .expect("ready");
    }
    // A few periodic checks on the leader.
    std::thread::sleep(Duration::from_secs(3));
    for m in members.iter_mut() {
        assert!(m.is_running());
        let log = m.log();
        assert!(log.contains("enabled corruption checking"), "{log}");
        assert!(!log.contains("failed hash kv request"), "{log}");
    }
    // A restarted member compares its hash with the others' before serving.
    drop(members.remove(2));
    let mut again =
        start(dir.path(), &nodes[2], &cluster, "new", &flags(&nodes[2])).expect("restart");
    again
        .wait_log("ready to serve client requests", Duration::from_secs(30))
        .expect("ready again");
    let log = again.log();
    assert!(
        log.contains("initial corruption checking passed; no corruption"),
        "{log}"
    );
    assert!(!log.contains("failed hash kv request"), "{log}");
}
