//! One etcd member process (ours or etcd 3.4) on 127.0.0.1 ports with its
//! data dir: the one way the tests start a server. `Cluster` starts several,
//! `common::TestServer` and `kv::Server` one each; all hold a `Member`,
//! which holds a `Proc` (killed by PID on drop, signalled only while not
//! reaped), and keeps every start's log.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;
use rsetcd::proto::etcdserverpb::cluster_client::ClusterClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{HashKvRequest, RangeRequest, StatusRequest, StatusResponse};
use tonic::transport::{Channel, Endpoint};

pub use crate::support::common::Binary as Flavor;
use crate::support::process::{clean_command, Proc};

/// One etcd member process, ours or etcd 3.4: its ports, data dir and
/// arguments, kept for restarts on the same ports and data dir.
pub struct Member {
    pub name: String,
    pub flavor: Flavor,
    pub client_port: u16,
    /// The advertised peer port (a proxy's, when behind one).
    pub peer_port: u16,
    /// Where the member really listens for peers, when behind a proxy.
    pub listen_peer_port: Option<u16>,
    pub data_dir: PathBuf,
    /// Arguments of every start.
    pub args: Vec<String>,
    /// Another build of our etcd to run (e.g. one with failpoints).
    pub binary: Option<String>,
    /// Variables set on every start, in either environment.
    pub extra_env: Vec<(String, String)>,
    /// Where its logs go (default: beside the data dir), e.g. off a disk
    /// that loses unsynced writes.
    pub log_dir: Option<PathBuf>,
    /// `None`: a clean environment (PATH only, see `clean_command`);
    /// `Some(vars)`: the test process's environment plus `vars`.
    env: Option<Vec<(String, String)>>,
    /// The running process (None before the first start and once killed).
    proc: Option<Proc>,
    /// Each start's log, oldest first.
    logs: Vec<PathBuf>,
}

/// Names log files uniquely within the test process (two `Member`s may
/// run on one data dir, one after the other).
static LOG_SEQ: AtomicUsize = AtomicUsize::new(0);

impl Member {
    /// A member not started yet, in a clean environment; it listens for
    /// peers on `peer_port` (unless `listen_peer_port` says otherwise).
    pub fn new(
        name: &str,
        flavor: Flavor,
        client_port: u16,
        peer_port: u16,
        data_dir: PathBuf,
    ) -> Member {
        Member {
            name: name.to_string(),
            flavor,
            client_port,
            peer_port,
            listen_peer_port: None,
            data_dir,
            args: Vec::new(),
            binary: None,
            extra_env: Vec::new(),
            log_dir: None,
            env: None,
            proc: None,
            logs: Vec::new(),
        }
    }

    /// Runs in the test process's environment plus `vars`.
    pub fn inherit_env(mut self, vars: &[(String, String)]) -> Member {
        self.env = Some(vars.to_vec());
        self
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn pid(&self) -> u32 {
        self.proc.as_ref().map(Proc::pid).unwrap_or(0)
    }

    pub fn is_running(&mut self) -> bool {
        self.proc.as_mut().is_some_and(Proc::is_running)
    }

    /// Exit status once the process has ended on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let proc = self.proc.as_mut().context("not running")?;
        let status = proc.wait_exit(timeout)?;
        Ok(status)
    }

    /// The log of the current (or last) start.
    pub fn log(&self) -> String {
        self.logs
            .last()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// The last 30 lines of `log`, for error messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Every log of this member (all starts).
    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        for p in &self.logs {
            out.push_str(&std::fs::read_to_string(p).unwrap_or_default());
        }
        out
    }

    /// The exit status if the process has ended (then it is reaped).
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let proc = self.proc.as_mut().context("not running")?;
        let status = proc.exited()?;
        if status.is_some() {
            self.proc = None;
        }
        Ok(status)
    }

    pub fn kill9(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
    }

    pub fn signal(&mut self, sig: Signal) -> anyhow::Result<()> {
        self.proc.as_mut().context("not running")?.signal(sig)
    }

    /// SIGTERM and wait for the exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait_exit(Duration::from_secs(30))
    }

    /// Starts the process with `args` (again, after a kill or an exit);
    /// returns at once: wait with `wait_serving` or a harness's own check.
    pub fn start(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("{}: still running (pid {})", self.name, self.pid());
        }
        let seq = LOG_SEQ.fetch_add(1, Ordering::Relaxed);
        let log_path = match &self.log_dir {
            Some(dir) => dir.join(format!("{}.{seq}.log", self.name)),
            None => self.data_dir.with_extension(format!("{seq}.log")),
        };
        let binary = self.binary.as_deref().unwrap_or(self.flavor.binary());
        let mut cmd = match &self.env {
            None => clean_command(binary),
            Some(vars) => {
                let mut cmd = Command::new(binary);
                cmd.envs(vars.iter().map(|(k, v)| (k, v)));
                cmd
            }
        };
        cmd.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        cmd.args(&self.args);
        self.proc = Some(Proc::spawn(&self.name, cmd, &log_path)?);
        self.logs.push(log_path);
        Ok(())
    }

    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(Endpoint::from_shared(self.client_url())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            .connect()
            .await?)
    }

    pub async fn kv(&self) -> anyhow::Result<KvClient<Channel>> {
        Ok(KvClient::new(self.channel().await?))
    }

    pub async fn maintenance(&self) -> anyhow::Result<MaintenanceClient<Channel>> {
        Ok(MaintenanceClient::new(self.channel().await?))
    }

    pub async fn cluster(&self) -> anyhow::Result<ClusterClient<Channel>> {
        Ok(ClusterClient::new(self.channel().await?))
    }

    pub async fn status(&self) -> anyhow::Result<StatusResponse> {
        Ok(self
            .maintenance()
            .await?
            .status(StatusRequest {})
            .await?
            .into_inner())
    }

    /// (hash, revision) at `rev`.
    pub async fn hash_kv(&self, rev: i64) -> anyhow::Result<(u32, i64)> {
        let r = self
            .maintenance()
            .await?
            .hash_kv(HashKvRequest { revision: rev })
            .await?
            .into_inner();
        Ok((r.hash, r.header.map(|h| h.revision).unwrap_or(0)))
    }

    /// Waits until a linearizable read through this member succeeds.
    pub async fn wait_serving(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if !self.is_running() {
                bail!("{} exited during startup:\n{}", self.name, self.log());
            }
            let ok = async {
                self.kv()
                    .await?
                    .range(RangeRequest {
                        key: b"\0".to_vec(),
                        ..Default::default()
                    })
                    .await?;
                anyhow::Ok(())
            }
            .await;
            if ok.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} not serving after {timeout:?}: {ok:?}\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some(p) = &mut self.proc {
            // A SIGSTOPped process must be woken to die cleanly.
            let _ = p.signal(Signal::SIGCONT);
        }
        self.kill9();
    }
}
