//! --tls-min-version and --tls-max-version hold for the connections a
//! member opens to its peers, not only for the ones it accepts (etcd
//! builds both sides from one TLSInfo): a member requiring TLS 1.3 does not
//! complete a handshake with a peer that speaks only TLS 1.2, a member
//! allowing at most TLS 1.2 talks TLS 1.2 to a peer that offers both, and
//! a member without the flags talks to either.

use crate::support::tls as support;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use support::{free_port, Ca, Pair, Proc};

use crate::support::common::OUR_ETCD as OURS;

/// A stand-in peer on https://127.0.0.1:port that completes TLS handshakes
/// with the given versions only and records the version of each.
struct FakePeer {
    url: String,
    versions: Arc<Mutex<Vec<rustls::ProtocolVersion>>>,
    accepted: Arc<Mutex<usize>>,
}

impl FakePeer {
    async fn start(
        pair: &Pair,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> anyhow::Result<FakePeer> {
        let chain = CertificateDer::pem_file_iter(&pair.cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&pair.key)?;
        let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("https://{}", listener.local_addr()?);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(Mutex::new(0));
        let (seen2, accepted2) = (seen.clone(), accepted.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                *accepted2.lock().expect("count") += 1;
                let (acceptor, seen) = (acceptor.clone(), seen2.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(tcp).await {
                        if let Some(v) = tls.get_ref().1.protocol_version() {
                            seen.lock().expect("versions").push(v);
                        }
                        // Hold the connection a moment, then drop it.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                });
            }
        });
        Ok(FakePeer {
            url,
            versions: seen,
            accepted,
        })
    }

    /// Waits until the member tried at least twice; the versions of the
    /// handshakes that completed.
    async fn attempts(&self) -> Vec<rustls::ProtocolVersion> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while *self.accepted.lock().expect("count") < 2 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            *self.accepted.lock().expect("count") >= 2,
            "the member never connected to its peer"
        );
        // Handshakes in flight finish.
        tokio::time::sleep(Duration::from_millis(500)).await;
        self.versions.lock().expect("versions").clone()
    }
}

/// A member of a two-member cluster whose other member is `peer`.
fn start_member(dir: &Path, ca: &Ca, pair: &Pair, peer: &str, extra: &[&str]) -> Proc {
    let client = format!("http://127.0.0.1:{}", free_port().expect("port"));
    let own = format!("https://127.0.0.1:{}", free_port().expect("port"));
    let mut args = vec![
        "--name=m1".to_string(),
        format!("--data-dir={}", dir.join("data").display()),
        format!("--listen-client-urls={client}"),
        format!("--advertise-client-urls={client}"),
        format!("--listen-peer-urls={own}"),
        format!("--initial-advertise-peer-urls={own}"),
        format!("--initial-cluster=m1={own},m2={peer}"),
        "--heartbeat-interval=50".to_string(),
        "--election-timeout=500".to_string(),
        format!("--peer-cert-file={}", pair.cert.display()),
        format!("--peer-key-file={}", pair.key.display()),
        format!("--peer-trusted-ca-file={}", ca.ca_file().display()),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::start(OURS, "m1", dir, &args).expect("start member")
}

async fn versions_seen(
    peer_versions: &[&'static rustls::SupportedProtocolVersion],
    member_flags: &[&str],
) -> anyhow::Result<Vec<rustls::ProtocolVersion>> {
    let dir = tempfile::tempdir()?;
    let ca = Ca::new(dir.path(), "versions")?;
    let pair = ca.server("member", "member")?;
    let fake = FakePeer::start(&pair, peer_versions).await?;
    let mut member = start_member(dir.path(), &ca, &pair, &fake.url, member_flags);
    let seen = fake.attempts().await;
    assert!(member.is_running(), "member exited:\n{}", member.log());
    Ok(seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outgoing_peer_connections_keep_the_tls_version_flags() -> anyhow::Result<()> {
    use rustls::version::{TLS12, TLS13};
    use rustls::ProtocolVersion::{TLSv1_2, TLSv1_3};

    // No flags: TLS 1.2 and 1.3 peers both get a handshake.
    let seen = versions_seen(&[&TLS12], &[]).await?;
    assert!(seen.contains(&TLSv1_2), "{seen:?}");
    let seen = versions_seen(&[&TLS13, &TLS12], &[]).await?;
    assert!(seen.contains(&TLSv1_3), "{seen:?}");

    // At least TLS 1.3: a TLS 1.2-only peer gets no completed handshake.
    let seen = versions_seen(&[&TLS12], &["--tls-min-version=TLS1.3"]).await?;
    assert!(seen.is_empty(), "handshakes despite min TLS1.3: {seen:?}");

    // At most TLS 1.2: only TLS 1.2 with a peer that offers both, none
    // with a TLS 1.3-only peer.
    let seen = versions_seen(&[&TLS13, &TLS12], &["--tls-max-version=TLS1.2"]).await?;
    assert!(
        !seen.is_empty() && seen.iter().all(|v| *v == TLSv1_2),
        "{seen:?}"
    );
    let seen = versions_seen(&[&TLS13], &["--tls-max-version=TLS1.2"]).await?;
    assert!(seen.is_empty(), "handshakes despite max TLS1.2: {seen:?}");
    Ok(())
}
