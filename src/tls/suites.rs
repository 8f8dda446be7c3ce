//! etcd's `--cipher-suites`, `--tls-min-version` and `--tls-max-version`
//! mapped onto rustls: Go's suite names become rustls suites, the versions
//! become rustls protocol versions.
//!
//! As in Go, the list restricts TLS 1.2 only; TLS 1.3 suites are not
//! configurable and stay on. Names Go knows but rustls does not implement
//! (CBC, RC4, 3DES, RSA key exchange) are refused with a clear error rather
//! than silently dropped.

use std::sync::Arc;

use rustls::crypto::ring::cipher_suite as ring_suites;
use rustls::crypto::CryptoProvider;
use rustls::{SupportedCipherSuite, SupportedProtocolVersion};

/// TLS 1.2 suites by Go's names (and the two legacy ChaCha20 aliases etcd's
/// tlsutil accepts).
const TLS12: &[(&str, SupportedCipherSuite)] = &[
    (
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        ring_suites::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        ring_suites::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        ring_suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        ring_suites::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        ring_suites::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        ring_suites::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        ring_suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        ring_suites::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// TLS 1.3 names Go accepts in the list and ignores.
const TLS13: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

/// Suites Go knows (tls.CipherSuites and tls.InsecureCipherSuites) that
/// rustls does not implement.
const UNSUPPORTED: &[&str] = &[
    "TLS_RSA_WITH_RC4_128_SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256",
    "TLS_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
];

/// The crypto provider and protocol versions every TLS config of this
/// member uses.
#[derive(Debug, Clone)]
pub struct Suites {
    pub provider: Arc<CryptoProvider>,
    pub versions: Vec<&'static SupportedProtocolVersion>,
}

impl Suites {
    /// `names` as given to --cipher-suites (empty: rustls' defaults);
    /// `min` and `max` as --tls-min-version / --tls-max-version ("" is
    /// etcd's default: TLS 1.2 up to TLS 1.3).
    pub fn new(names: &[String], min: &str, max: &str) -> anyhow::Result<Suites> {
        let mut provider = rustls::crypto::ring::default_provider();
        if !names.is_empty() {
            let mut tls12 = Vec::new();
            for name in names {
                if let Some((_, suite)) = TLS12.iter().find(|(n, _)| n == name) {
                    if !tls12.contains(suite) {
                        tls12.push(*suite);
                    }
                } else if TLS13.contains(&name.as_str()) {
                    // Go ignores TLS 1.3 names: those suites are always on.
                } else if UNSUPPORTED.contains(&name.as_str()) {
                    anyhow::bail!(
                        "TLS cipher suite {name:?} is not supported: only ECDHE suites with AES-GCM or ChaCha20-Poly1305 are ({})",
                        TLS12.iter().map(|(n, _)| *n).filter(|n| n.ends_with("SHA256") || n.ends_with("SHA384")).collect::<Vec<_>>().join(", ")
                    );
                } else {
                    anyhow::bail!("unexpected TLS cipher suite {name:?}");
                }
            }
            // TLS 1.3 suites first (rustls' order), then the listed ones in
            // the order given: Go prefers them in that order too.
            let mut suites: Vec<SupportedCipherSuite> = provider
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS13)
                .copied()
                .collect();
            suites.extend(tls12);
            provider.cipher_suites = suites;
        }
        let version = |text: &str, flag: &str| -> anyhow::Result<Option<u8>> {
            match text {
                "" => Ok(None),
                "TLS1.2" => Ok(Some(2)),
                "TLS1.3" => Ok(Some(3)),
                "TLS1.0" | "TLS1.1" => anyhow::bail!(
                    "{flag} {text} is not supported: TLS 1.0 and 1.1 are insecure and not implemented (must be one of: TLS1.2, TLS1.3)"
                ),
                other => anyhow::bail!(
                    "unexpected TLS version {other:?} (must be one of: TLS1.2, TLS1.3)"
                ),
            }
        };
        let min = version(min, "--tls-min-version")?.unwrap_or(2);
        let max = version(max, "--tls-max-version")?.unwrap_or(3);
        if min > max {
            anyhow::bail!("min version (TLS1.{min}) is greater than max version (TLS1.{max})");
        }
        let mut versions = Vec::new();
        if min <= 3 && max >= 3 {
            versions.push(&rustls::version::TLS13);
        }
        if min <= 2 && max >= 2 {
            versions.push(&rustls::version::TLS12);
        }
        Ok(Suites {
            provider: Arc::new(provider),
            versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn maps_go_names_and_keeps_tls13() {
        let s = Suites::new(
            &names(&[
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
            ]),
            "",
            "",
        )
        .expect("valid suites");
        let tls12: Vec<_> = s
            .provider
            .cipher_suites
            .iter()
            .filter(|c| c.version() == &rustls::version::TLS12)
            .map(|c| format!("{:?}", c.suite()))
            .collect();
        assert_eq!(
            tls12,
            vec![
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
            ]
        );
        assert_eq!(
            s.provider
                .cipher_suites
                .iter()
                .filter(|c| c.version() == &rustls::version::TLS13)
                .count(),
            3
        );
        assert_eq!(s.versions.len(), 2);
    }

    #[test]
    fn unknown_and_unsupported_names_fail() {
        let e = Suites::new(&names(&["FOO"]), "", "").unwrap_err();
        assert_eq!(e.to_string(), "unexpected TLS cipher suite \"FOO\"");
        let e = Suites::new(&names(&["TLS_RSA_WITH_AES_128_CBC_SHA"]), "", "").unwrap_err();
        assert!(e.to_string().contains("is not supported"), "{e}");
    }

    #[test]
    fn versions() {
        let s = Suites::new(&[], "TLS1.3", "").expect("1.3 only");
        assert_eq!(s.versions, vec![&rustls::version::TLS13]);
        let s = Suites::new(&[], "", "TLS1.2").expect("1.2 only");
        assert_eq!(s.versions, vec![&rustls::version::TLS12]);
        let e = Suites::new(&[], "TLS1.0", "").unwrap_err();
        assert!(e.to_string().contains("not supported"), "{e}");
        assert!(Suites::new(&[], "TLS1.3", "TLS1.2").is_err());
    }
}
