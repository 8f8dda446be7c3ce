//! Certificate verifiers beyond rustls' WebPKI ones: a client verifier that
//! also requires an allowed CN or hostname (--peer-cert-allowed-cn,
//! --peer-cert-allowed-hostname, --client-cert-allowed-hostname) and
//! checks revocation lists by serial as etcd does, and the
//! server verifier of outgoing peer connections, which skips verification
//! for self-signed (--peer-auto-tls) members as etcd does.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::identity::{peer_common_name, SubjectAltNames};

/// Who may connect, beyond holding a certificate from a trusted CA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedIdentity {
    CommonName(String),
    Hostname(String),
}

impl AllowedIdentity {
    fn allows(&self, leaf: &CertificateDer<'_>) -> bool {
        match self {
            AllowedIdentity::CommonName(cn) => {
                peer_common_name(std::slice::from_ref(leaf)).as_deref() == Some(cn.as_str())
            }
            AllowedIdentity::Hostname(host) => SubjectAltNames::of(leaf).matches_host(host),
        }
    }
}

/// A CA-verifying client verifier with an optional identity rule.
#[derive(Debug)]
pub struct ClientVerifier {
    pub inner: Arc<dyn ClientCertVerifier>,
    pub allowed: Option<AllowedIdentity>,
    /// --client-crl-file / --peer-crl-file, by serial (beside WebPKI's
    /// own revocation check).
    pub revoked: Option<Arc<RevokedSerials>>,
}

/// The serial numbers a revocation list names, with the list's issuer.
///
/// WebPKI applies a list only to certificates its issuer signed directly,
/// so a list from the root CA that names a certificate issued under an
/// intermediate would revoke nothing. etcd's checkCRL revokes every
/// certificate the client presents whose serial the list names. We do the
/// same for lists whose issuer is one of the CAs of the presented chain or
/// of the trusted CA file (serials are unique per issuer only: a list of
/// another CA must not revoke an unrelated certificate that happens to
/// share a serial).
#[derive(Debug, Default)]
pub struct RevokedSerials {
    /// (issuer name DER, serial without leading zero bytes)
    entries: Vec<(Vec<u8>, Vec<u8>)>,
    /// Subjects of the trusted CA file's certificates: a client may leave
    /// out a CA the server trusts, whose list still speaks for the chain.
    trusted: Vec<Vec<u8>>,
}

/// A serial as Go's `big.Int.Bytes()` gives it: no leading zero bytes.
fn serial_bytes(raw: &[u8]) -> Vec<u8> {
    let start = raw.iter().position(|&b| b != 0).unwrap_or(raw.len());
    raw[start..].to_vec()
}

impl RevokedSerials {
    pub fn from_crls(
        crls: &[rustls_pki_types::CertificateRevocationListDer<'_>],
        trusted_ca_pem: &[u8],
    ) -> anyhow::Result<RevokedSerials> {
        use rustls_pki_types::pem::PemObject as _;
        let trusted = CertificateDer::pem_slice_iter(trusted_ca_pem)
            .filter_map(Result::ok)
            .filter_map(|c| {
                x509_parser::parse_x509_certificate(&c)
                    .ok()
                    .map(|(_, c)| c.subject().as_raw().to_vec())
            })
            .collect();
        let mut entries = Vec::new();
        for der in crls {
            let (_, crl) = x509_parser::parse_x509_crl(der)
                .map_err(|e| anyhow::anyhow!("parse certificate revocation list: {e}"))?;
            let issuer = crl.issuer().as_raw().to_vec();
            for revoked in crl.iter_revoked_certificates() {
                entries.push((issuer.clone(), serial_bytes(revoked.raw_serial())));
            }
        }
        Ok(RevokedSerials { entries, trusted })
    }

    /// The serial of the first certificate of the chain that a list of one
    /// of the chain's CAs names (etcd: "transport: certificate serial %x
    /// revoked").
    pub fn revoked_in(&self, chain: &[&CertificateDer<'_>]) -> Option<Vec<u8>> {
        let parsed: Vec<_> = chain
            .iter()
            .filter_map(|c| x509_parser::parse_x509_certificate(c).ok().map(|(_, c)| c))
            .collect();
        // the chain's CAs: every issuer named (the root included), and
        // every CA the server trusts
        let issuers: Vec<&[u8]> = parsed
            .iter()
            .map(|c| c.issuer().as_raw())
            .chain(self.trusted.iter().map(Vec::as_slice))
            .collect();
        parsed.iter().find_map(|c| {
            let serial = serial_bytes(c.raw_serial());
            self.entries
                .iter()
                .any(|(issuer, s)| *s == serial && issuers.contains(&issuer.as_slice()))
                .then_some(serial)
        })
    }
}

/// A refusal with etcd's reason, for our log.
fn bad_certificate(reason: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
        std::io::Error::other(reason),
    ))))
}

impl ClientCertVerifier for ClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        if let Some(revoked) = &self.revoked {
            let chain: Vec<&CertificateDer<'_>> =
                std::iter::once(end_entity).chain(intermediates).collect();
            if let Some(serial) = revoked.revoked_in(&chain) {
                let hex: String = serial.iter().map(|b| format!("{b:02x}")).collect();
                return Err(bad_certificate(format!(
                    "transport: certificate serial {hex} revoked"
                )));
            }
        }
        if let Some(allowed) = &self.allowed {
            if !allowed.allows(end_entity) {
                // etcd's VerifyPeerCertificate text.
                return Err(bad_certificate(
                    "client certificate authentication failed".into(),
                ));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A server verifier that never looks at the certificate chain, only at
/// the handshake signatures. `accept_any` is Go's InsecureSkipVerify (towards
/// self-signed members; etcdctl --insecure-skip-tls-verify); without it
/// every server is refused (an https peer URL with no CA to check it
/// against).
#[derive(Debug)]
pub struct ChainUnchecked {
    pub provider: Arc<CryptoProvider>,
    pub accept_any: bool,
}

impl ServerCertVerifier for ChainUnchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.accept_any {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::UnknownIssuer,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
