//! What a peer's certificate says about it: its Common Name (CN-based
//! auth, --peer-cert-allowed-cn) and its SANs (--peer-cert-allowed-hostname,
//! the peer listener's check of a member's address).

use std::net::IpAddr;

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer as _, GeneralName, X509Certificate};

/// The Common Name of the first (leaf) certificate of a verified chain.
pub fn peer_common_name(chain: &[CertificateDer<'_>]) -> Option<String> {
    let leaf = chain.first()?;
    let (_, cert) = X509Certificate::from_der(leaf.as_ref()).ok()?;
    let cn = cert.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The DNS names and IP addresses of a certificate's SAN extension.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SubjectAltNames {
    pub dns: Vec<String>,
    pub ips: Vec<IpAddr>,
}

impl SubjectAltNames {
    pub fn of(cert: &CertificateDer<'_>) -> SubjectAltNames {
        let mut out = SubjectAltNames::default();
        let Ok((_, cert)) = X509Certificate::from_der(cert.as_ref()) else {
            return out;
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => out.dns.push(d.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                            out.ips.push(IpAddr::from(v4));
                        } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                            out.ips.push(IpAddr::from(v6));
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.dns.is_empty() && self.ips.is_empty()
    }

    /// Go's `x509.Certificate.VerifyHostname`: an IP matches the IP SANs,
    /// a name matches the DNS SANs (case-insensitively, `*.` matching one
    /// label).
    pub fn matches_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            return self.ips.contains(&ip);
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.dns.iter().any(|pattern| {
            let pattern = pattern.trim_end_matches('.').to_ascii_lowercase();
            match pattern.strip_prefix("*.") {
                Some(suffix) => host
                    .split_once('.')
                    .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
                None => pattern == host,
            }
        })
    }

    /// Go's error text for a failed `VerifyHostname`.
    pub fn mismatch_text(&self, host: &str) -> String {
        let valid: Vec<String> = if host.parse::<IpAddr>().is_ok() {
            self.ips.iter().map(IpAddr::to_string).collect()
        } else {
            self.dns.clone()
        };
        if valid.is_empty() {
            format!("x509: certificate is not valid for any names, but wanted to match {host}")
        } else {
            format!(
                "x509: certificate is valid for {}, not {host}",
                valid.join(", ")
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: &str, sans: &[&str]) -> CertificateDer<'static> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().clone()
    }

    #[test]
    fn common_name_of_the_leaf() {
        let c = cert("root", &["localhost"]);
        assert_eq!(peer_common_name(&[c]).as_deref(), Some("root"));
        assert_eq!(peer_common_name(&[]), None);
    }

    #[test]
    fn hostnames_as_go_matches_them() {
        let sans = SubjectAltNames::of(&cert("x", &["127.0.0.1", "localhost", "*.example.com"]));
        assert_eq!(sans.ips, vec!["127.0.0.1".parse::<IpAddr>().expect("ip")]);
        assert!(sans.matches_host("127.0.0.1"));
        assert!(sans.matches_host("LOCALHOST"));
        assert!(sans.matches_host("a.example.com"));
        assert!(!sans.matches_host("a.b.example.com"));
        assert!(!sans.matches_host("10.0.0.1"));
        assert_eq!(
            sans.mismatch_text("10.0.0.1"),
            "x509: certificate is valid for 127.0.0.1, not 10.0.0.1"
        );
    }
}
