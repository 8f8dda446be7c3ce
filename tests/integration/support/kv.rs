//! Process management for the KV integration tests: starts our `etcd` or
//! the real etcd (the oracle) on free 127.0.0.1 ports in a caller-owned data
//! dir, waits until it answers KV requests, and stops it by PID (SIGTERM or
//! SIGKILL). A `Server` that is dropped kills its process, so a panicking
//! test leaves nothing behind.

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::Signal;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::RangeRequest;
use tonic::transport::Channel;

/// Where the real etcd is installed (Debian's etcd-server package).
pub use crate::support::common::REFERENCE_ETCD;
use crate::support::member::Member;

/// How long a server may take to answer its first KV request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the real etcd is installed; tests that need it skip otherwise.
pub use crate::support::common::reference_etcd_available as reference_available;
pub use crate::support::common::Binary as Flavor;

/// A running etcd process. Stopped (SIGKILL) when dropped.
pub struct Server {
    member: Member,
}

impl Server {
    /// Starts `flavor` on fresh free ports with `data_dir` (created if
    /// missing) and waits until it serves KV requests. `extra_args` are
    /// additional `--flag=value` arguments, e.g. `--snapshot-count=50`.
    pub async fn start(
        flavor: Flavor,
        data_dir: &Path,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        Self::start_logging_to(flavor, data_dir, None, extra_args).await
    }

    /// As `start`, with its logs in `log_dir` (default: beside the data
    /// dir).
    pub async fn start_logging_to(
        flavor: Flavor,
        data_dir: &Path,
        log_dir: Option<&Path>,
        extra_args: &[&str],
    ) -> anyhow::Result<Self> {
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        // A port found free can be taken by someone else before the server
        // binds it; try again on new ports a few times.
        let mut last_err = None;
        for _ in 0..3 {
            let member = Member::new(
                "kvtest",
                flavor,
                free_port()?,
                free_port()?,
                data_dir.to_path_buf(),
            )
            .inherit_env(&[]);
            let mut server = Server { member };
            server.member.log_dir = log_dir.map(Path::to_path_buf);
            server.member.args = server.args(&extra_args);
            match server.spawn_and_wait().await {
                Ok(()) => return Ok(server),
                Err(e) if server.log().contains("address already in use") => last_err = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| anyhow!("could not start etcd")))
    }

    /// Starts the process again on the same data dir and ports, after it
    /// was stopped with `kill` or `terminate`.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if self.member.is_running() {
            bail!("restart: the server (pid {}) is still running", self.pid());
        }
        self.spawn_and_wait().await
    }

    pub fn client_url(&self) -> String {
        self.member.client_url()
    }

    /// The peer port's URL (`--listen-peer-urls`).
    pub fn peer_url(&self) -> String {
        self.member.peer_url()
    }

    pub fn data_dir(&self) -> &Path {
        &self.member.data_dir
    }

    /// PID of the running process (0 if stopped).
    pub fn pid(&self) -> u32 {
        self.member.pid()
    }

    /// Whether the process is still alive (false once it exited or was
    /// stopped), for telling a crash from an error answer.
    pub fn is_running(&mut self) -> bool {
        self.member.is_running()
    }

    /// A new connection to the server's KV service.
    pub async fn kv(&self) -> anyhow::Result<KvClient<Channel>> {
        let url = self.client_url();
        KvClient::connect(url.clone())
            .await
            .with_context(|| format!("connect to {url}"))
    }

    /// The current process's stderr and stdout so far, for failure messages.
    pub fn log(&self) -> String {
        self.member.log()
    }

    /// The last lines of the log, to append to an error message.
    pub fn log_tail(&self) -> String {
        self.member.log_tail()
    }

    /// SIGKILL by PID, then reap the process.
    pub fn kill(&mut self) {
        self.member.kill9();
    }

    /// SIGTERM by PID and wait up to `timeout` for the process to exit;
    /// SIGKILL and an error if it does not.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        if self.member.pid() == 0 {
            bail!("terminate: the server is not running");
        }
        // One that already exited (not reaped yet) gives its status.
        if let Some(status) = self.member.exited().context("wait for etcd")? {
            return Ok(status);
        }
        let pid = self.member.pid();
        self.member
            .signal(Signal::SIGTERM)
            .context("send SIGTERM")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.member.exited().context("wait for etcd")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.member.kill9();
                bail!(
                    "etcd (pid {pid}) did not exit within {timeout:?} of SIGTERM; killed it. Log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn args(&self, extra_args: &[String]) -> Vec<String> {
        let client = self.client_url();
        let peer = self.peer_url();
        let name = "kvtest";
        let mut args = vec![
            format!("--name={name}"),
            format!("--data-dir={}", self.member.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={name}={peer}"),
        ];
        if self.member.flavor == Flavor::Reference {
            // A single member elects itself after one election timeout;
            // keep startup short. zap logs are the format ours prints.
            args.push("--heartbeat-interval=10".into());
            args.push("--election-timeout=100".into());
            args.push("--logger=zap".into());
            args.push("--log-outputs=stderr".into());
        }
        args.extend(extra_args.iter().cloned());
        args
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.member.start()?;
        self.wait_ready().await
    }

    /// Polls with a KV range until one succeeds: only then does a server
    /// answer requests the way it will for the rest of the test.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if self.member.pid() != 0 {
                if let Some(status) = self.member.exited()? {
                    bail!(
                        "{:?} etcd exited during startup ({}). Log:\n{}",
                        self.member.flavor,
                        describe(status),
                        self.log_tail()
                    );
                }
            }
            if let Ok(mut kv) = self.kv().await {
                let probe = RangeRequest {
                    key: b"ready-probe".to_vec(),
                    ..Default::default()
                };
                if let Ok(Ok(_)) =
                    tokio::time::timeout(Duration::from_secs(2), kv.range(probe)).await
                {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                bail!(
                    "{:?} etcd did not serve a KV range within {READY_TIMEOUT:?}. Log:\n{}",
                    self.member.flavor,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// "exit code N" or "killed by SIGNAL", for messages.
pub use crate::support::process::describe;

/// A clean stop after SIGTERM: our daemon exits 0; etcd runs its shutdown
/// and then re-raises the signal, so it dies by SIGTERM. Both are clean.
pub fn is_clean_sigterm_exit(status: ExitStatus) -> bool {
    status.success() || status.signal() == Some(Signal::SIGTERM as i32)
}

/// Free 127.0.0.1 ports, from below the ephemeral range (one sequence
/// for the whole test binary).
pub use crate::support::ports::free_port;
