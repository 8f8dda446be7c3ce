//! TLS test support: certificates made at test time with rcgen (a CA,
//! server/peer certificates for 127.0.0.1 and localhost, client
//! certificates by CN, and a second "rogue" CA), members started as real
//! processes on free ports (SIGKILL on drop), and Debian's etcdctl 3.4.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

pub use crate::support::ports::free_port;

pub use crate::support::common::{REFERENCE_ETCD, REFERENCE_ETCDCTL as ETCDCTL};

/// Debian's etcdctl is what the client tests drive.
pub fn etcdctl_available() -> bool {
    Path::new(ETCDCTL).is_file()
}

/// A certificate authority that issues certificates into `dir`.
pub struct Ca {
    pub name: String,
    pub cert_pem: String,
    /// What certificates it issues carry after their own: empty for a
    /// root, this CA's certificate (and its parents') for an intermediate.
    chain_pem: String,
    /// This CA's serial (as a Pair, for revocation lists of its parent).
    pub serial: u64,
    params: rcgen::CertificateParams,
    key: rcgen::KeyPair,
    pub dir: PathBuf,
}

/// Paths of an issued certificate and its key.
#[derive(Debug, Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub serial: u64,
}

impl Ca {
    pub fn new(dir: &Path, name: &str) -> anyhow::Result<Ca> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        let ca = Ca {
            name: name.to_string(),
            cert_pem: cert.pem(),
            chain_pem: String::new(),
            serial: 0,
            params,
            key,
            dir: dir.to_path_buf(),
        };
        std::fs::write(ca.ca_file(), &ca.cert_pem)?;
        Ok(ca)
    }

    /// An intermediate CA issued by this one; what it issues is written
    /// with the chain up to (not including) the root, as servers and
    /// clients present it.
    pub fn intermediate(&self, name: &str) -> anyhow::Result<Ca> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} intermediate CA"));
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let serial = next_serial()?;
        params.serial_number = Some(serial.into());
        let key = rcgen::KeyPair::generate()?;
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let ca = Ca {
            name: name.to_string(),
            chain_pem: format!("{}{}", cert.pem(), self.chain_pem),
            cert_pem: cert.pem(),
            serial,
            params,
            key,
            dir: self.dir.clone(),
        };
        std::fs::write(ca.ca_file(), &ca.cert_pem)?;
        Ok(ca)
    }

    /// This CA as an entry of its parent's revocation list.
    pub fn as_pair(&self) -> Pair {
        Pair {
            cert: self.ca_file(),
            key: PathBuf::new(),
            serial: self.serial,
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// A certificate usable as server and client (etcd members use one for
    /// both), for 127.0.0.1 and localhost.
    pub fn server(&self, file: &str, cn: &str) -> anyhow::Result<Pair> {
        self.issue(file, cn, &["127.0.0.1", "localhost"], true)
    }

    /// A client certificate with CN `cn` and no SANs.
    pub fn client(&self, file: &str, cn: &str) -> anyhow::Result<Pair> {
        self.issue(file, cn, &[], false)
    }

    /// A certificate with the given SANs.
    pub fn issue(&self, file: &str, cn: &str, sans: &[&str], server: bool) -> anyhow::Result<Pair> {
        let mut params =
            rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        if server {
            params
                .extended_key_usages
                .push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        }
        let serial = next_serial()?;
        params.serial_number = Some(serial.into());
        let key = rcgen::KeyPair::generate()?;
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer)?;
        let pair = Pair {
            cert: self.dir.join(format!("{file}.pem")),
            key: self.dir.join(format!("{file}-key.pem")),
            serial,
        };
        std::fs::write(&pair.cert, format!("{}{}", cert.pem(), self.chain_pem))?;
        std::fs::write(&pair.key, key.serialize_pem())?;
        Ok(pair)
    }
}

/// A serial no other certificate of this test process has (the clock in
/// nanoseconds, never repeated).
fn next_serial() -> anyhow::Result<u64> {
    static LAST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos() as u64;
    let previous = LAST.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
    Ok(if now > previous {
        now
    } else {
        LAST.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1
    })
}

impl Ca {
    /// A revocation list of this CA naming `revoked`, written to `file`.
    pub fn crl(&self, file: &str, revoked: &[&Pair]) -> anyhow::Result<PathBuf> {
        let now = rcgen::date_time_ymd(2024, 1, 1);
        let params = rcgen::CertificateRevocationListParams {
            this_update: now,
            next_update: rcgen::date_time_ymd(2099, 1, 1),
            crl_number: 1u64.into(),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|p| rcgen::RevokedCertParams {
                    serial_number: p.serial.into(),
                    revocation_time: now,
                    reason_code: Some(rcgen::RevocationReason::KeyCompromise),
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        let crl = params.signed_by(&issuer)?;
        let path = self.dir.join(format!("{file}.pem"));
        std::fs::write(&path, crl.pem()?)?;
        Ok(path)
    }
}

/// Atomically replaces `to` with `from`'s contents (as a deployment tool
/// would: write aside, rename over).
pub fn replace_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let tmp = to.with_extension("tmp");
    std::fs::copy(from, &tmp)?;
    std::fs::rename(&tmp, to)?;
    Ok(())
}

/// One etcd process (ours unless `binary` says otherwise).
pub use crate::support::process::Proc;

/// Runs Debian's etcdctl (API v3) with `args`, bounded in time.
pub fn etcdctl(args: &[&str]) -> anyhow::Result<Output> {
    let child = Command::new(ETCDCTL)
        .args(args)
        .env_clear()
        .env("ETCDCTL_API", "3")
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("start etcdctl")?;
    Ok(child.wait_with_output()?)
}

/// stdout, or an error with etcdctl's stderr.
pub fn etcdctl_ok(args: &[&str]) -> anyhow::Result<String> {
    let out = etcdctl(args)?;
    if !out.status.success() {
        bail!(
            "etcdctl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Retries `etcdctl_ok` until it succeeds (a member that just started).
pub fn etcdctl_eventually(args: &[&str], timeout: Duration) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        match etcdctl_ok(args) {
            Ok(out) => return Ok(out),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

pub fn curl_available() -> bool {
    Command::new("curl")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// curl with `args`; (success, stdout, stderr).
pub fn curl(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .context("run curl")?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A path as the &str a flag takes.
pub fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
