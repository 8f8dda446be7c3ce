//! Accepting TLS connections on a listener for tonic: each handshake runs
//! in its own task (a slow or silent client cannot hold up others), with
//! the config loaded at that moment; refused handshakes are logged as etcd
//! logs them and never reach the server.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt as _;

use super::identity::SubjectAltNames;
use super::info::{ReloadableTls, Role};

/// A handshake that has not finished by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The verified TLS connections of `listener`, for tonic's
/// `serve_with_incoming*`. Ends when the server drops it.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<ReloadableTls>,
) -> ReceiverStream<Result<TlsStream<TcpStream>, std::io::Error>> {
    ReceiverStream::new(accept_loop(listener, tls))
}

/// The verified TLS connections of `listener` for `axum::serve` (the
/// --listen-metrics-urls https:// listeners).
pub struct AxumListener {
    connections: mpsc::Receiver<Result<TlsStream<TcpStream>, std::io::Error>>,
    local: std::net::SocketAddr,
}

impl AxumListener {
    pub fn new(listener: TcpListener, tls: Arc<ReloadableTls>) -> std::io::Result<AxumListener> {
        let local = listener.local_addr()?;
        Ok(AxumListener {
            connections: accept_loop(listener, tls),
            local,
        })
    }
}

impl axum::serve::Listener for AxumListener {
    type Io = TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.connections.recv().await {
                Some(Ok(conn)) => {
                    let Ok(remote) = conn.get_ref().0.peer_addr() else {
                        continue;
                    };
                    return (conn, remote);
                }
                Some(Err(_)) => continue,
                // The accept loop ended: nothing will come any more.
                None => std::future::pending().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

fn accept_loop(
    listener: TcpListener,
    tls: Arc<ReloadableTls>,
) -> mpsc::Receiver<Result<TlsStream<TcpStream>, std::io::Error>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut tcp = tonic::transport::server::TcpIncoming::from(listener)
            .with_nodelay(Some(true))
            .with_keepalive(Some(Duration::from_secs(30)));
        loop {
            let next = tokio::select! {
                _ = tx.closed() => break,
                next = tcp.next() => next,
            };
            let stream = match next {
                None => break,
                Some(Ok(s)) => s,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            };
            let (tx, tls) = (tx.clone(), tls.clone());
            tokio::spawn(async move {
                if let Some(conn) = handshake(stream, &tls).await {
                    let _ = tx.send(Ok(conn)).await;
                }
            });
        }
    });
    rx
}

async fn handshake(stream: TcpStream, tls: &ReloadableTls) -> Option<TlsStream<TcpStream>> {
    let remote = stream
        .peer_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.current().server.clone());
    let conn = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            rejected(&remote, "", None, &handshake_error(&e));
            return None;
        }
        Err(_) => {
            rejected(&remote, "", None, "TLS handshake timed out");
            return None;
        }
    };
    let (tcp, session) = conn.get_ref();
    let server_name = session.server_name().unwrap_or_default().to_string();
    let leaf = session.peer_certificates().and_then(|c| c.first()).cloned();
    if tls.info.role == Role::Peer && !tls.info.skip_client_san_verification {
        if let (Some(leaf), Ok(addr)) = (&leaf, tcp.peer_addr()) {
            let sans = SubjectAltNames::of(leaf);
            if let Err(e) = check_address(&sans, addr).await {
                rejected(&remote, &server_name, Some(&sans), &e);
                return None;
            }
        }
    }
    Some(conn)
}

/// A refused handshake in the words Go's TLS stack uses (what etcd logs),
/// rustls' own text otherwise.
fn handshake_error(e: &std::io::Error) -> String {
    use rustls::{AlertDescription, CertificateError, Error};
    let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<Error>()) else {
        return e.to_string();
    };
    let alert = |a: &AlertDescription| match a {
        AlertDescription::BadCertificate => "bad certificate".to_string(),
        AlertDescription::UnknownCA => "unknown certificate authority".to_string(),
        AlertDescription::CertificateExpired => "expired certificate".to_string(),
        AlertDescription::CertificateRequired => "certificate required".to_string(),
        AlertDescription::ProtocolVersion => "protocol version not supported".to_string(),
        AlertDescription::HandshakeFailure => "handshake failure".to_string(),
        other => format!("{other:?}"),
    };
    let verify = |c: &CertificateError| match c {
        CertificateError::UnknownIssuer => {
            "x509: certificate signed by unknown authority".to_string()
        }
        CertificateError::Expired | CertificateError::NotValidYet => {
            "x509: certificate has expired or is not yet valid".to_string()
        }
        CertificateError::Revoked => "transport: certificate revoked".to_string(),
        CertificateError::Other(o) => o.to_string(),
        other => format!("x509: {other:?}"),
    };
    match tls {
        Error::NoCertificatesPresented => "tls: client didn't provide a certificate".into(),
        Error::InvalidCertificate(c) => {
            format!("tls: failed to verify client certificate: {}", verify(c))
        }
        Error::AlertReceived(a) => format!("remote error: tls: {}", alert(a)),
        other => other.to_string(),
    }
}

/// etcd's `logTLSHandshakeFailure`.
fn rejected(remote: &str, server_name: &str, sans: Option<&SubjectAltNames>, error: &str) {
    match sans {
        Some(s) => tracing::warn!(
            remote_addr = remote,
            server_name,
            ip_addresses = %format!("{:?}", s.ips.iter().map(IpAddr::to_string).collect::<Vec<_>>()),
            dns_names = %format!("{:?}", s.dns),
            error,
            "rejected connection"
        ),
        None => tracing::warn!(
            remote_addr = remote,
            server_name,
            error,
            "rejected connection"
        ),
    }
}

/// etcd's `checkCertSAN`: a member's certificate that names addresses or
/// hosts must name the address it connects from.
async fn check_address(sans: &SubjectAltNames, addr: SocketAddr) -> Result<(), String> {
    if sans.is_empty() {
        return Ok(());
    }
    let ip = addr.ip().to_canonical();
    if !sans.ips.is_empty() {
        if sans.ips.iter().any(|a| a.to_canonical() == ip) {
            return Ok(());
        }
        if sans.dns.is_empty() {
            return Err(sans.mismatch_text(&ip.to_string()));
        }
    }
    let mut lookup_error = String::new();
    for name in sans.dns.iter().filter(|n| !n.starts_with("*.")) {
        match tokio::net::lookup_host((name.as_str(), 0)).await {
            Ok(addrs) => {
                if addrs.into_iter().any(|a| a.ip().to_canonical() == ip) {
                    return Ok(());
                }
            }
            Err(e) => lookup_error = format!(" ({e})"),
        }
    }
    Err(format!(
        "tls: {:?} does not match any of DNSNames {:?}{lookup_error}",
        ip.to_string(),
        sans.dns
    ))
}
