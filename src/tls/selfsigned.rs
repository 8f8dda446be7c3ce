//! --auto-tls / --peer-auto-tls: etcd's `transport.SelfCert`. A self-signed
//! certificate for the listen URLs' hosts is written to
//! `<data-dir>/fixtures/{client,peer}/{cert,key}.pem` once and reused on
//! later starts.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

/// Paths of the generated (or reused) certificate and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelfCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Creates (or reuses) the self-signed pair in `dir` for `hosts` (the
/// listen URLs' hosts); `client_auth` adds the clientAuth usage peers need.
pub fn self_cert(
    dir: &Path,
    hosts: &[String],
    validity_years: u64,
    client_auth: bool,
) -> anyhow::Result<SelfCert> {
    if validity_years == 0 {
        anyhow::bail!("selfSignedCertValidity is invalid,it should be greater than 0");
    }
    {
        use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
        // private as the key in it (etcd: 0700); an older, wider one is
        // narrowed
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create cert directory {}", dir.display()))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot make {} private", dir.display()))?;
    }
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    let out = SelfCert {
        cert_file: dir.join("cert.pem"),
        key_file: dir.join("key.pem"),
    };
    if out.cert_file.exists() && out.key_file.exists() {
        return Ok(out);
    }
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "etcd");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now;
    params.not_after = epoch
        + now
        + Duration::from_secs(validity_years.saturating_mul(365 * 24 * 3600).min(1 << 40));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyEncipherment,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    if client_auth {
        params
            .extended_key_usages
            .push(rcgen::ExtendedKeyUsagePurpose::ClientAuth);
    }
    for host in hosts {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<std::net::IpAddr>() {
            Ok(ip) => params.subject_alt_names.push(rcgen::SanType::IpAddress(ip)),
            Err(_) => params
                .subject_alt_names
                .push(rcgen::SanType::DnsName(host.to_string().try_into()?)),
        }
    }
    tracing::warn!(
        certificate_validity_bound_not_after = %format!("{:?}", params.not_after),
        "automatically generate certificates"
    );
    // etcd uses P-521; ring signs with P-256 and P-384 only.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
    let cert = params.self_signed(&key)?;
    std::fs::write(&out.cert_file, cert.pem())
        .with_context(|| format!("cannot write cert file {}", out.cert_file.display()))?;
    tracing::info!(path = %out.cert_file.display(), "created cert file");
    write_private(&out.key_file, key.serialize_pem().as_bytes())
        .with_context(|| format!("cannot write key file {}", out.key_file.display()))?;
    tracing::info!(path = %out.key_file.display(), "created key file");
    Ok(out)
}

/// Writes with mode 0600, as etcd writes the key.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// The hosts of URLs (`host:port` in etcd; the port is dropped there too).
pub fn url_hosts(urls: &[url::Url]) -> Vec<String> {
    urls.iter()
        .filter_map(|u| u.host_str().map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_once_and_reuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixtures = dir.path().join("fixtures").join("client");
        let hosts = vec!["127.0.0.1".to_string(), "localhost".to_string()];
        let a = self_cert(&fixtures, &hosts, 1, false).expect("generate");
        let first = std::fs::read(&a.cert_file).expect("cert");
        let b = self_cert(&fixtures, &hosts, 1, false).expect("reuse");
        assert_eq!(a, b);
        use std::os::unix::fs::PermissionsExt as _;
        for d in [&fixtures, &dir.path().join("fixtures")] {
            let mode = std::fs::metadata(d).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", d.display());
        }
        assert_eq!(first, std::fs::read(&b.cert_file).expect("cert"));
        let bytes = std::fs::read(&a.cert_file).expect("read");
        let chain = crate::tls::pem::certs(&bytes, &a.cert_file).expect("parse");
        let sans = crate::tls::identity::SubjectAltNames::of(&chain[0]);
        assert!(sans.matches_host("127.0.0.1") && sans.matches_host("localhost"));
        assert!(self_cert(&fixtures, &hosts, 0, false).is_err());
    }
}
