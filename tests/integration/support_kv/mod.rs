//! Process management for the KV integration tests: starts our `etcd` or
//! the real etcd (the oracle) on free 127.0.0.1 ports in a caller-owned data
//! dir, waits until it answers KV requests, and stops it by PID (SIGTERM or
//! SIGKILL). A `Server` that is dropped kills its process, so a panicking
//! test leaves nothing behind.

// Each test crate includes this module and uses a different part of it.
#![allow(dead_code)]

use std::fs::File;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::RangeRequest;
use tonic::transport::Channel;

/// Where the real etcd is installed (Debian's etcd-server package).
pub use crate::common::REFERENCE_ETCD;

/// How long a server may take to answer its first KV request.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the real etcd is installed; tests that need it skip otherwise.
pub use crate::common::reference_etcd_available as reference_available;
pub use crate::common::Binary as Flavor;

/// Names each log file uniquely within one test process.
static LOG_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A running etcd process. Stopped (SIGKILL) when dropped.
pub struct Server {
    flavor: Flavor,
    child: Option<Child>,
    data_dir: PathBuf,
    extra_args: Vec<String>,
    client_port: u16,
    peer_port: u16,
    log_path: PathBuf,
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
        let extra_args: Vec<String> = extra_args.iter().map(|s| s.to_string()).collect();
        // A port found free can be taken by someone else before the server
        // binds it; try again on new ports a few times.
        let mut last_err = None;
        for _ in 0..3 {
            let mut server = Server {
                flavor,
                child: None,
                data_dir: data_dir.to_path_buf(),
                extra_args: extra_args.clone(),
                client_port: free_port()?,
                peer_port: free_port()?,
                log_path: PathBuf::new(),
            };
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
        if self.child.is_some() {
            bail!("restart: the server (pid {}) is still running", self.pid());
        }
        self.spawn_and_wait().await
    }

    pub fn client_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The peer port's URL (`--listen-peer-urls`).
    pub fn peer_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.peer_port)
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// PID of the running process (0 if stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Whether the process is still alive (false once it exited or was
    /// stopped), for telling a crash from an error answer.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(None)) => true,
            Some(Ok(Some(_))) | Some(Err(_)) | None => false,
        }
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
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last lines of the log, to append to an error message.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// SIGKILL by PID, then reap the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Child::kill sends SIGKILL to exactly this PID.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM by PID and wait up to `timeout` for the process to exit;
    /// SIGKILL and an error if it does not.
    pub async fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("terminate: the server is not running");
        };
        let pid = Pid::from_raw(i32::try_from(child.id()).context("pid out of range")?);
        kill(pid, Signal::SIGTERM).context("send SIGTERM")?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait().context("wait for etcd")? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "etcd (pid {pid}) did not exit within {timeout:?} of SIGTERM; killed it. Log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn args(&self) -> Vec<String> {
        let client = self.client_url();
        let peer = self.peer_url();
        let name = "kvtest";
        let mut args = vec![
            format!("--name={name}"),
            format!("--data-dir={}", self.data_dir.display()),
            format!("--listen-client-urls={client}"),
            format!("--advertise-client-urls={client}"),
            format!("--listen-peer-urls={peer}"),
            format!("--initial-advertise-peer-urls={peer}"),
            format!("--initial-cluster={name}={peer}"),
        ];
        if self.flavor == Flavor::Reference {
            // A single member elects itself after one election timeout;
            // keep startup short. zap logs are the format ours prints.
            args.push("--heartbeat-interval=10".into());
            args.push("--election-timeout=100".into());
            args.push("--logger=zap".into());
            args.push("--log-outputs=stderr".into());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let seq = LOG_SEQ.fetch_add(1, Ordering::Relaxed);
        let flavor = match self.flavor {
            Flavor::Ours => "ours",
            Flavor::Reference => "etcd",
        };
        let dir_name = self
            .data_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log_dir = self.data_dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("create {}", log_dir.display()))?;
        self.log_path = log_dir.join(format!("{dir_name}.{flavor}.{seq}.log"));
        let log = File::create(&self.log_path)
            .with_context(|| format!("create {}", self.log_path.display()))?;
        let child = Command::new(self.flavor.binary())
            .args(self.args())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("spawn {}", self.flavor.binary()))?;
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Polls with a KV range until one succeeds: only then does a server
    /// answer requests the way it will for the rest of the test.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "{:?} etcd exited during startup ({}). Log:\n{}",
                        self.flavor,
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
                    self.flavor,
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
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => format!("{status}"),
    }
}

/// A clean stop after SIGTERM: our daemon exits 0; etcd runs its shutdown
/// and then re-raises the signal, so it dies by SIGTERM. Both are clean.
pub fn is_clean_sigterm_exit(status: ExitStatus) -> bool {
    status.success() || status.signal() == Some(Signal::SIGTERM as i32)
}

/// Free 127.0.0.1 ports, from below the ephemeral range (one sequence
/// for the whole test binary).
pub use crate::support_ports::free_port;
