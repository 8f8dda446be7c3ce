//! Client-side TLS, as etcdctl sets it up from `--cacert`, `--cert`,
//! `--key`, `--insecure-transport` and `--insecure-skip-tls-verify` (etcd's
//! `transport.TLSInfo.ClientConfig`, with Go's error texts for bad files),
//! and which endpoints use it (clientv3 3.5: `https://` always, `http://`
//! never, a bare `host:port` when TLS is configured).

use std::sync::Arc;

use rsetcd::tls::verify::ChainUnchecked;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::{self, SectionKind};
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use tonic::transport::{ClientTlsConfig, Endpoint, Identity};

/// Where Go looks for the system's trusted CAs on Linux, in its order; the
/// first file that exists is used when no `--cacert` is given.
const SYSTEM_CA_FILES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The TLS options of one cluster's connection (global flags, or
/// make-mirror's `--dest-*` flags).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    pub cert: String,
    pub key: String,
    pub cacert: String,
    pub insecure_transport: bool,
    pub insecure_skip_verify: bool,
}

/// A loaded TLS client configuration: the CA pool (none: the system's),
/// the client certificate, and whether the server is verified at all.
#[derive(Clone)]
pub struct TlsClient {
    roots: Option<Arc<RootCertStore>>,
    identity: Option<(Vec<u8>, Vec<u8>)>,
    skip_verify: bool,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("custom_roots", &self.roots.is_some())
            .field("client_cert", &self.identity.is_some())
            .field("skip_verify", &self.skip_verify)
            .finish()
    }
}

/// How one endpoint is dialed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub host_port: String,
    pub secure: bool,
}

impl TlsOptions {
    /// etcdctl's `newClientCfg`: a TLS configuration when any file is given
    /// or `--insecure-transport=false`; errors read as Go prints them.
    pub fn load(&self) -> Result<Option<TlsClient>, String> {
        let files_given = !self.cert.is_empty() || !self.key.is_empty() || !self.cacert.is_empty();
        if !files_given && self.insecure_transport {
            return Ok(None);
        }
        let identity = if self.cert.is_empty() && self.key.is_empty() {
            None
        } else {
            Some(load_identity(&self.cert, &self.key)?)
        };
        let roots = if self.cacert.is_empty() {
            None
        } else {
            Some(Arc::new(load_ca_pool(&self.cacert)?))
        };
        Ok(Some(TlsClient {
            roots,
            identity,
            skip_verify: self.insecure_skip_verify,
        }))
    }
}

/// clientv3's choice per endpoint: `http://` drops credentials, `https://`
/// requires them (the system's CAs when none are configured), and a bare
/// address uses whatever is configured.
pub fn target(endpoint: &str, tls: Option<&TlsClient>) -> Result<Target, String> {
    let (host_port, secure) = if let Some(rest) = endpoint.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = endpoint.strip_prefix("https://") {
        (rest, true)
    } else if endpoint.contains("://") {
        return Err(format!("unsupported endpoint scheme in {endpoint:?}"));
    } else {
        (endpoint, tls.is_some())
    };
    Ok(Target {
        host_port: host_port.trim_end_matches('/').to_string(),
        secure,
    })
}

impl TlsClient {
    /// The client used for `https://` endpoints when no TLS flag was given:
    /// Go's empty `tls.Config`, which verifies against the system's CAs.
    pub fn system_default() -> TlsClient {
        TlsClient {
            roots: None,
            identity: None,
            skip_verify: false,
        }
    }

    /// Configures `endpoint` (an `https://` URI) to dial with this TLS.
    pub fn apply(&self, endpoint: Endpoint) -> Result<Endpoint, String> {
        let mut config = ClientTlsConfig::new();
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier: Arc<dyn ServerCertVerifier> = if self.skip_verify {
            // --insecure-skip-tls-verify: Go's InsecureSkipVerify.
            Arc::new(ChainUnchecked {
                provider,
                accept_any: true,
            })
        } else {
            let roots = match &self.roots {
                Some(roots) => Arc::clone(roots),
                None => Arc::new(system_roots()),
            };
            WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|err| format!("x509: {err}"))?
        };
        endpoint
            .tls_config_with_verifier(config, verifier)
            .map_err(|err| crate::global::innermost_error(&err))
    }
}

/// `tlsutil.NewCertPool`: every PEM block of the file must be a
/// certificate; a file without PEM blocks gives an empty pool.
fn load_ca_pool(path: &str) -> Result<RootCertStore, String> {
    let bytes = read_file(path)?;
    let mut roots = RootCertStore::empty();
    let mut reader: &[u8] = &bytes;
    loop {
        match pem::from_buf(&mut reader) {
            Ok(Some((kind, der))) => {
                if kind != SectionKind::Certificate {
                    return Err("x509: malformed tbs certificate".to_string());
                }
                roots
                    .add(CertificateDer::from(der))
                    .map_err(|_| "x509: malformed certificate".to_string())?;
            }
            Ok(None) => break,
            Err(_) => return Err("x509: malformed certificate".to_string()),
        }
    }
    Ok(roots)
}

/// The system's CA bundle, as Go finds it; empty when there is none (then
/// every server fails verification, as in Go).
fn system_roots() -> RootCertStore {
    for path in SYSTEM_CA_FILES {
        if let Ok(bytes) = std::fs::read(path) {
            let mut roots = RootCertStore::empty();
            let certs = <CertificateDer as pem::PemObject>::pem_slice_iter(&bytes).flatten();
            roots.add_parsable_certificates(certs);
            return roots;
        }
    }
    RootCertStore::empty()
}

/// `tlsutil.NewCert` + `tls.X509KeyPair`: both files present and readable,
/// a certificate in the first and a private key in the second.
fn load_identity(cert_path: &str, key_path: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    if cert_path.is_empty() || key_path.is_empty() {
        return Err(format!(
            "KeyFile and CertFile must both be present[key: {key_path}, cert: {cert_path}]"
        ));
    }
    let cert = read_file(cert_path)?;
    let key = read_file(key_path)?;
    let kinds = |bytes: &[u8]| -> Vec<SectionKind> {
        let mut kinds = Vec::new();
        let mut reader = bytes;
        while let Ok(Some((kind, _))) = pem::from_buf(&mut reader) {
            kinds.push(kind);
        }
        kinds
    };
    let is_key = |k: &SectionKind| {
        matches!(
            k,
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
        )
    };
    let cert_kinds = kinds(&cert);
    if !cert_kinds.contains(&SectionKind::Certificate) {
        return Err(if cert_kinds.iter().any(is_key) {
            "tls: failed to find certificate PEM data in certificate input, but did find a private key; PEM inputs may have been switched".to_string()
        } else {
            "tls: failed to find any PEM data in certificate input".to_string()
        });
    }
    let key_kinds = kinds(&key);
    if !key_kinds.iter().any(is_key) {
        return Err(if key_kinds.contains(&SectionKind::Certificate) {
            "tls: found a certificate rather than a key in the PEM for the private key".to_string()
        } else {
            "tls: failed to find any PEM data in key input".to_string()
        });
    }
    Ok((cert, key))
}

/// Reads a file, failing with Go's `open <path>: <reason>`.
fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("open {path}: {}", go_io_reason(&err)))
}

/// The syscall text Go prints for an I/O error.
fn go_io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        std::io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => {
            let text = err.to_string();
            text.split(" (os error")
                .next()
                .unwrap_or(&text)
                .to_lowercase()
        }
    }
}

/// Go's text for a failed server verification, as the connection error
/// clientv3 reports it.
pub fn handshake_error_text(err: &rustls::Error) -> String {
    use rustls::CertificateError;
    let reason = match err {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "x509: certificate signed by unknown authority".to_string()
        }
        rustls::Error::InvalidCertificate(CertificateError::NotValidForName)
        | rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext { .. }) => {
            "x509: certificate is not valid for the requested name".to_string()
        }
        rustls::Error::InvalidCertificate(CertificateError::Expired)
        | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
            "x509: certificate has expired or is not yet valid".to_string()
        }
        rustls::Error::AlertReceived(alert) => format!("remote error: tls: {}", alert_text(*alert)),
        other => other.to_string(),
    };
    format!("authentication handshake failed: {reason}")
}

/// Go's name for a TLS alert the server sent.
fn alert_text(alert: rustls::AlertDescription) -> String {
    go_alert_name(&format!("{alert:?}"))
}

/// rustls's alert names (`BadCertificate`) as Go prints them.
fn go_alert_name(name: &str) -> String {
    match name {
        "BadCertificate" => "bad certificate".to_string(),
        "CertificateRequired" => "certificate required".to_string(),
        "UnknownCA" => "unknown certificate authority".to_string(),
        "HandshakeFailure" => "handshake failure".to_string(),
        "ProtocolVersion" => "protocol version not supported".to_string(),
        "CertificateExpired" => "expired certificate".to_string(),
        "CertificateUnknown" => "unknown certificate".to_string(),
        other => other.to_lowercase(),
    }
}

/// rustls's "received fatal alert: X" (as text) in Go's words.
pub fn alert_error_text(text: &str) -> Option<String> {
    let name = text.strip_prefix("received fatal alert: ")?;
    Some(format!(
        "authentication handshake failed: remote error: tls: {}",
        go_alert_name(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_pick_transport_like_clientv3() {
        let tls = TlsClient::system_default();
        let plain = |e| target(e, None).unwrap();
        let with_tls = |e| target(e, Some(&tls)).unwrap();
        assert!(!plain("127.0.0.1:2379").secure);
        assert!(plain("https://127.0.0.1:2379").secure);
        assert!(with_tls("127.0.0.1:2379").secure);
        assert!(!with_tls("http://127.0.0.1:2379").secure);
        assert_eq!(with_tls("https://h:1/").host_port, "h:1");
        assert!(target("unix://x", None).is_err());
    }

    #[test]
    fn file_errors_read_as_go_prints_them() {
        let options = TlsOptions {
            cacert: "/nonexistent/ca.crt".into(),
            insecure_transport: true,
            ..TlsOptions::default()
        };
        assert_eq!(
            options.load().unwrap_err(),
            "open /nonexistent/ca.crt: no such file or directory"
        );
        let options = TlsOptions {
            cert: "c.crt".into(),
            insecure_transport: true,
            ..TlsOptions::default()
        };
        assert_eq!(
            options.load().unwrap_err(),
            "KeyFile and CertFile must both be present[key: , cert: c.crt]"
        );
        let plain = TlsOptions {
            insecure_transport: true,
            ..TlsOptions::default()
        };
        assert!(plain.load().unwrap().is_none());
    }
}
