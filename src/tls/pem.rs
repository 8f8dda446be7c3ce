//! Reading certificates, private keys and CA bundles from PEM, with errors
//! that name the file.

use std::path::Path;

use anyhow::Context as _;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};

/// The file's bytes; Go's text for an error ("open F: no such file or
/// directory").
pub fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        anyhow::anyhow!(
            "open {}: {}",
            path.display(),
            crate::gofmt::os_error_text(&e)
        )
    })
}

/// A certificate chain, leaf first.
pub fn certs(bytes: &[u8], path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse certificates in {}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!(
            "tls: failed to find any PEM data in certificate input ({})",
            path.display()
        );
    }
    Ok(certs)
}

/// A private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn key(bytes: &[u8], path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| {
        anyhow::anyhow!(
            "tls: failed to find any PEM data in key input ({}): {e}",
            path.display()
        )
    })
}

/// The CA certificates of a bundle, as trust anchors.
pub fn roots(bytes: &[u8], path: &Path) -> anyhow::Result<RootCertStore> {
    let mut store = RootCertStore::empty();
    for cert in certs(bytes, path)? {
        store
            .add(cert)
            .with_context(|| format!("add a CA certificate of {}", path.display()))?;
    }
    Ok(store)
}

/// Certificate revocation lists, PEM or DER (Go's x509.ParseCRL takes
/// both).
pub fn crls(
    bytes: &[u8],
    path: &Path,
) -> anyhow::Result<Vec<CertificateRevocationListDer<'static>>> {
    let pem = CertificateRevocationListDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parse revocation lists in {}", path.display()))?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes.to_vec())]);
    }
    anyhow::bail!("no certificate revocation list in {}", path.display())
}
