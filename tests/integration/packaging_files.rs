//! The files the distro packages install, checked the way the packages use
//! them: `etc/etcd/etcd.conf` loaded as etcd.service's EnvironmentFile and
//! `etc/etcd/etcd.conf.yml` through `ETCD_CONFIG_FILE` both start a serving
//! member (also with every commented-out setting switched on at the value
//! shown, which proves those values are accepted); every `ETCD_*` name in
//! etcd.conf is an etcd flag and every flag of `etcd --help` is in it; and
//! `systemd/etcd-backup` with `etc/etcd/backup.conf` saves a snapshot that
//! etcdutl reads, keeps the newest N and fails visibly.

use crate::support::common;
use crate::support::process::Proc;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::{PutRequest, RangeRequest};

use crate::support::common::OUR_ETCD as ETCD;

fn repo_file(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// One `NAME=value` line of an environment file, as systemd reads it
/// (surrounding double or single quotes removed).
fn env_line(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once('=')?;
    let value = value.trim();
    let unquoted = ['"', '\'']
        .iter()
        .find_map(|q| value.strip_prefix(*q)?.strip_suffix(*q))
        .unwrap_or(value);
    Some((name.trim().to_string(), unquoted.to_string()))
}

/// The active settings of etcd.conf; with `all`, the commented-out ones too.
fn etcd_conf_settings(all: bool) -> anyhow::Result<Vec<(String, String)>> {
    let text = std::fs::read_to_string(repo_file("etc/etcd/etcd.conf"))?;
    let mut settings = Vec::new();
    for line in text.lines() {
        let setting = if all {
            line.trim_start_matches('#')
        } else {
            line
        };
        if setting.starts_with("ETCD_") {
            settings.push(env_line(setting).ok_or_else(|| anyhow!("bad line {line:?}"))?);
        }
    }
    Ok(settings)
}

/// A member started from configuration files, killed by PID on drop.
struct Member {
    proc: Proc,
    client_url: String,
    /// Holds the data dir and the log; removed on drop.
    dir: tempfile::TempDir,
}

impl Member {
    fn log(&self) -> String {
        self.proc.log()
    }

    /// Starts etcd with exactly `env` (plus ports chosen here), retrying on
    /// new ports if one was taken meanwhile; `configure` gets the data dir,
    /// client URL and peer URL and returns the environment.
    fn start(
        configure: impl Fn(&Path, &str, &str) -> anyhow::Result<Vec<(String, String)>>,
    ) -> anyhow::Result<Member> {
        let mut last = None;
        for _ in 0..3 {
            let dir = tempfile::tempdir()?;
            let client_url = format!("http://127.0.0.1:{}", common::free_port()?);
            let peer_url = format!("http://127.0.0.1:{}", common::free_port()?);
            let env = configure(dir.path(), &client_url, &peer_url)?;
            let mut cmd = Command::new(ETCD);
            cmd.env_clear().envs(env).current_dir(dir.path());
            let proc = Proc::spawn("etcd", cmd, &dir.path().join("etcd.log"))?;
            let mut member = Member {
                proc,
                client_url,
                dir,
            };
            match member.wait_serving() {
                Ok(()) => return Ok(member),
                Err(e) if member.log().contains("address already in use") => last = Some(e),
                Err(e) => return Err(e.context(member.log())),
            }
        }
        Err(last.unwrap_or_else(|| anyhow!("etcd did not start")))
    }

    /// Waits until a put and a get of that key succeed.
    fn wait_serving(&mut self) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.proc.exited()? {
                bail!("etcd exited during startup with {status}");
            }
            if runtime.block_on(put_get(&self.client_url)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("etcd not serving after 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

async fn put_get(url: &str) -> anyhow::Result<()> {
    let attempt = async {
        let mut kv = KvClient::connect(url.to_string()).await?;
        kv.put(PutRequest {
            key: b"packaging".to_vec(),
            value: b"works".to_vec(),
            ..PutRequest::default()
        })
        .await?;
        let got = kv
            .range(RangeRequest {
                key: b"packaging".to_vec(),
                ..RangeRequest::default()
            })
            .await?
            .into_inner();
        match got.kvs.first() {
            Some(kv) if kv.value == b"works" => anyhow::Ok(()),
            _ => bail!("get after put did not return the value"),
        }
    };
    tokio::time::timeout(Duration::from_secs(2), attempt).await?
}

/// etcd.conf's settings with the URLs, data dir and cluster moved to this
/// test's ports and temp dir (as a user edits them for another host).
fn env_file_member(all: bool) -> anyhow::Result<Member> {
    let settings = etcd_conf_settings(all)?;
    Member::start(|dir, client, peer| {
        let mut env: Vec<(String, String)> = settings
            .iter()
            .filter(|(name, _)| name != "ETCD_CONFIG_FILE")
            .cloned()
            .collect();
        let data_dir = dir.join("default.etcd").display().to_string();
        for (name, value) in [
            ("ETCD_DATA_DIR", data_dir.as_str()),
            ("ETCD_LISTEN_CLIENT_URLS", client),
            ("ETCD_ADVERTISE_CLIENT_URLS", client),
            ("ETCD_LISTEN_PEER_URLS", peer),
            ("ETCD_INITIAL_ADVERTISE_PEER_URLS", peer),
            ("ETCD_INITIAL_CLUSTER", &format!("default={peer}")),
        ] {
            env.retain(|(n, _)| n != name);
            env.push((name.to_string(), value.to_string()));
        }
        Ok(env)
    })
}

/// etcd.conf.yml with its data dir and URLs moved, loaded the way
/// etcd.service does when etcd.conf sets ETCD_CONFIG_FILE.
fn yaml_member(all: bool) -> anyhow::Result<Member> {
    let sample = std::fs::read_to_string(repo_file("etc/etcd/etcd.conf.yml"))?;
    Member::start(|dir, client, peer| {
        let mut yaml = String::new();
        for line in sample.lines() {
            let indent = line.len() - line.trim_start().len();
            let body = line.trim_start();
            // "#key: value" is a commented-out setting; "# text" is prose.
            let line = match body.strip_prefix('#') {
                Some(key) if all && key.starts_with(|c: char| c.is_ascii_lowercase()) => {
                    format!("{}{key}", &line[..indent])
                }
                _ => line.to_string(),
            };
            let line = if line.starts_with("data-dir:") {
                format!("data-dir: '{}'", dir.join("default.etcd").display())
            } else {
                line.replace("http://localhost:2379", client)
                    .replace("http://localhost:2380", peer)
            };
            yaml.push_str(&line);
            yaml.push('\n');
        }
        let path = dir.join("etcd.conf.yml");
        std::fs::write(&path, yaml)?;
        Ok(vec![
            ("ETCD_CONFIG_FILE".to_string(), path.display().to_string()),
            // Ignored once a config file is given, as in etcd.
            ("ETCD_NAME".to_string(), "not-this-name".to_string()),
        ])
    })
}

#[test]
fn etcd_conf_names_exactly_the_flags_of_etcd_help() -> anyhow::Result<()> {
    let help = Command::new(ETCD).arg("--help").output()?;
    let help = String::from_utf8(help.stdout)?;
    let mut flags: BTreeSet<String> = help
        .lines()
        .filter_map(|l| l.strip_prefix("  --"))
        .filter_map(|l| l.split([' ', '=']).next())
        .map(|flag| format!("ETCD_{}", flag.replace('-', "_").to_uppercase()))
        .collect();
    assert!(flags.len() > 100, "too few flags parsed from --help");
    flags.insert("ETCD_CONFIG_FILE".to_string());
    let names: Vec<String> = etcd_conf_settings(true)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let in_conf: BTreeSet<String> = names.iter().cloned().collect();
    assert_eq!(in_conf.len(), names.len(), "a setting appears twice");
    let unknown: Vec<_> = in_conf.difference(&flags).collect();
    let missing: Vec<_> = flags.difference(&in_conf).collect();
    assert!(unknown.is_empty(), "not etcd flags: {unknown:?}");
    assert!(
        missing.is_empty(),
        "flags missing from etcd.conf: {missing:?}"
    );
    Ok(())
}

#[test]
fn etcd_conf_as_environment_file_serves() -> anyhow::Result<()> {
    let member = env_file_member(false)?;
    assert!(member.dir.path().join("default.etcd/member").is_dir());
    Ok(())
}

#[test]
fn etcd_conf_with_every_commented_setting_switched_on_serves() -> anyhow::Result<()> {
    let member = env_file_member(true)?;
    assert!(!member.log().contains("not supported"), "{}", member.log());
    Ok(())
}

#[test]
fn etcd_conf_yml_through_etcd_config_file_serves() -> anyhow::Result<()> {
    let member = yaml_member(false)?;
    let log = member.log();
    assert!(log.contains("loaded server configuration"), "{log}");
    assert!(member.dir.path().join("default.etcd/member").is_dir());
    assert!(!log.contains("not-this-name"), "{log}");
    Ok(())
}

#[test]
fn etcd_conf_yml_with_every_commented_key_switched_on_serves() -> anyhow::Result<()> {
    let member = yaml_member(true)?;
    assert!(!member.log().contains("unrecognized config file key"));
    Ok(())
}

/// Runs systemd/etcd-backup with the shipped backup.conf plus `overrides`.
fn run_backup(dir: &Path, overrides: &str) -> anyhow::Result<std::process::Output> {
    let mut conf = std::fs::read_to_string(repo_file("etc/etcd/backup.conf"))?;
    conf.push_str(overrides);
    let conf_path = dir.join("backup.conf");
    std::fs::write(&conf_path, conf)?;
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_etcdctl"))
        .parent()
        .ok_or_else(|| anyhow!("no bin dir"))?;
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Ok(Command::new(repo_file("systemd/etcd-backup"))
        .env("PATH", path)
        .env("ETCD_BACKUP_CONF", &conf_path)
        .output()?)
}

fn snapshots(dir: &Path) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<anyhow::Result<_>>()?;
    names.sort();
    Ok(names)
}

#[test]
fn backup_script_saves_verifies_and_keeps_the_newest() -> anyhow::Result<()> {
    let member = env_file_member(false)?;
    let work = tempfile::tempdir()?;
    let backups = work.path().join("backups");
    std::fs::create_dir(&backups)?;
    let overrides = format!(
        "ETCD_BACKUP_ENDPOINTS=\"http://127.0.0.1:{}, {}\"\nETCD_BACKUP_DIR=\"{}\"\nETCD_BACKUP_KEEP=2\nETCD_BACKUP_DIAL_TIMEOUT=1s\n",
        common::free_port()?,
        member.client_url,
        backups.display()
    );
    let mut kept = Vec::new();
    for _ in 0..3 {
        let out = run_backup(work.path(), &overrides)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stderr.contains("is not healthy; trying the next endpoint"));
        assert!(stdout.contains("TOTAL KEYS"), "status table: {stdout}");
        kept = snapshots(&backups)?;
        // Timestamps have one-second resolution.
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_eq!(kept.len(), 2, "{kept:?}");
    for name in &kept {
        assert!(name.starts_with("etcd-snapshot-") && name.ends_with("Z.db"));
        let status = Command::new(env!("CARGO_BIN_EXE_etcdutl"))
            .args(["snapshot", "status", "-w", "json"])
            .arg(backups.join(name))
            .output()?;
        assert!(status.status.success());
        assert!(String::from_utf8_lossy(&status.stdout).contains("\"totalKey\""));
        // etcd's format: a bbolt file (its meta magic at byte 16), which
        // etcd's own etcdctl reads with the same numbers
        let bytes = std::fs::read(backups.join(name))?;
        assert_eq!(bytes.get(16..20), Some(&[0xed, 0xda, 0x0c, 0xed][..]));
        if common::reference_available() {
            let etcds = Command::new(common::REFERENCE_ETCDCTL)
                .env("ETCDCTL_API", "3")
                .args(["snapshot", "status", "-w", "json"])
                .arg(backups.join(name))
                .output()?;
            assert!(etcds.status.success(), "{etcds:?}");
            assert_eq!(etcds.stdout, status.stdout);
        }
    }

    // A snapshot whose bytes do not match its SHA-256 trailer (an etcdctl
    // that damages the last byte of what it saves): refused, removed.
    let wrapper_dir = work.path().join("damaging-etcdctl");
    std::fs::create_dir(&wrapper_dir)?;
    let wrapper = wrapper_dir.join("etcdctl");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n{} \"$@\" || exit $?\ncase \"$*\" in *'snapshot save'*)\n  for f; do :; done\n  \
             b=$(tail -c1 \"$f\" | od -An -tu1 | tr -d ' '); n=$(( (b + 1) % 256 ))\n  \
             printf \"$(printf '\\\\%03o' \"$n\")\" | dd of=\"$f\" bs=1 seek=$(( $(stat -c %s \"$f\") - 1 )) conv=notrunc 2>/dev/null\nesac\n",
            env!("CARGO_BIN_EXE_etcdctl")
        ),
    )?;
    std::fs::set_permissions(
        &wrapper,
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let damaged = format!(
        "ETCD_BACKUP_ENDPOINTS=\"{}\"\nETCD_BACKUP_DIR=\"{}\"\nPATH=\"{}:$PATH\"\n",
        member.client_url,
        backups.display(),
        wrapper_dir.display()
    );
    let out = run_backup(work.path(), &damaged)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("Error: expected sha256 ["), "{stderr}");
    assert!(
        stderr.contains("does not pass 'etcdutl snapshot status'; removed it"),
        "{stderr}"
    );
    assert_eq!(snapshots(&backups)?, kept);

    // No member reachable: non-zero exit, a message, no file left behind.
    let unreachable = format!(
        "ETCD_BACKUP_ENDPOINTS=\"http://127.0.0.1:{}\"\nETCD_BACKUP_DIR=\"{}\"\nETCD_BACKUP_DIAL_TIMEOUT=1s\n",
        common::free_port()?,
        backups.display()
    );
    let out = run_backup(work.path(), &unreachable)?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("etcd-backup: error: no endpoint of 'http://127.0.0.1:"));
    assert_eq!(snapshots(&backups)?, kept);

    let bad_keep = format!(
        "ETCD_BACKUP_DIR=\"{}\"\nETCD_BACKUP_KEEP=0\n",
        backups.display()
    );
    let out = run_backup(work.path(), &bad_keep)?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("ETCD_BACKUP_KEEP must be at least 1"));
    Ok(())
}

/// The README's test command (.ci/run) never stops, starts or reconfigures
/// a service on the machine it runs on (it used to stop any etcd the user
/// ran): package installs go through a policy-rc.d that refuses service
/// starts, and no line outside comments calls a service manager.
#[test]
fn the_test_command_touches_no_service() -> anyhow::Result<()> {
    let script = std::fs::read_to_string(repo_file(".ci/run"))?;
    let offending: Vec<&str> = script
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            // `service <name> start|stop|restart|reload`
            let service = words.windows(3).any(|w| {
                w[0] == "service" && ["start", "stop", "restart", "reload"].contains(&w[2])
            });
            service
                || l.contains("invoke-rc.d")
                || l.contains("systemctl ")
                || l.contains("deb-systemd-invoke")
        })
        .collect();
    assert!(
        offending.is_empty(),
        ".ci/run touches services: {offending:#?}"
    );
    assert!(
        script.contains("policy-rc.d") && script.contains("exit 101"),
        ".ci/run installs packages without refusing service starts"
    );
    Ok(())
}
