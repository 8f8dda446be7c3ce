//! Test servers: start the real etcd (`/usr/bin/etcd`) or our
//! `CARGO_BIN_EXE_etcd` with the same flags on free 127.0.0.1 ports in a
//! temporary data directory, wait until it answers a KV get, and kill it by
//! PID when the `TestServer` is dropped (so a panicking test leaves nothing
//! running).
//!
//! Two servers started with the same `ServerOptions::peer_identity_url` get
//! the same member and cluster IDs (etcd derives them from the advertised
//! peer URLs and the cluster name), so the same requests sent to both give
//! byte-identical responses: that is how differential tests compare a real
//! and a candidate implementation.
//!
//! Use: `mod common;` then `common::TestServer::start_reference(&opts)?`.

// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::fs::File;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::RangeRequest;

/// Debian's etcd 3.4, the reference implementation.
pub const REFERENCE_ETCD: &str = "/usr/bin/etcd";
/// Debian's etcdctl 3.4 (run with `ETCDCTL_API=3`).
pub const REFERENCE_ETCDCTL: &str = "/usr/bin/etcdctl";
/// Our binaries, as cargo built them for this test run.
pub const OUR_ETCD: &str = env!("CARGO_BIN_EXE_etcd");
pub const OUR_ETCDCTL: &str = env!("CARGO_BIN_EXE_etcdctl");

/// How long a server may take to answer its first get.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Which etcd binary to run (every harness names it so; `ServerKind` and
/// `Flavor` are the same type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binary {
    /// Our `etcd`, built by cargo for this test run.
    Ours,
    /// The installed etcd 3.4, the behaviour we must match.
    Reference,
}

pub use Binary as ServerKind;

impl Binary {
    pub fn binary(self) -> &'static str {
        match self {
            Binary::Reference => REFERENCE_ETCD,
            Binary::Ours => OUR_ETCD,
        }
    }
}

/// Whether the reference etcd (the server alone) is installed.
pub fn reference_etcd_available() -> bool {
    Path::new(REFERENCE_ETCD).is_file()
}

/// Whether the reference binaries are installed; tests skip otherwise.
pub fn reference_available() -> bool {
    Path::new(REFERENCE_ETCD).is_file() && Path::new(REFERENCE_ETCDCTL).is_file()
}

/// How to start a server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// `--name`, also the member name in `--initial-cluster`.
    pub name: String,
    /// The advertised peer URL. `None` advertises the URL the server listens
    /// on; give two servers the same value to give them the same IDs (a
    /// single-member cluster never dials its own advertised peer URL).
    pub peer_identity_url: Option<String>,
    /// More flags, e.g. `--snapshot-count=100`.
    pub extra_args: Vec<String>,
    /// Variables set for this server only (tests share one process: a
    /// variable set on it would reach every other test's servers).
    pub env: Vec<(String, String)>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            name: "default".to_string(),
            peer_identity_url: None,
            extra_args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A running etcd process in its own temporary data directory.
pub struct TestServer {
    pub pid: u32,
    /// `http://127.0.0.1:<port>`.
    pub client_url: String,
    /// Holds the data dir (`dir/data`) and the log (`dir/server.log`);
    /// removed on drop.
    pub dir: tempfile::TempDir,
    child: Child,
}

impl TestServer {
    pub fn start_reference(options: &ServerOptions) -> anyhow::Result<TestServer> {
        Self::start(ServerKind::Reference, options)
    }

    pub fn start_ours(options: &ServerOptions) -> anyhow::Result<TestServer> {
        Self::start(ServerKind::Ours, options)
    }

    /// Starts `kind` and waits until it serves a get. Retries on new ports
    /// when one found free was taken before the server bound it.
    pub fn start(kind: ServerKind, options: &ServerOptions) -> anyhow::Result<TestServer> {
        let mut last_error = None;
        for _ in 0..3 {
            match Self::try_start(kind, options) {
                Ok(server) => return Ok(server),
                Err((error, log)) if log.contains("address already in use") => {
                    last_error = Some(error)
                }
                Err((error, log)) => return Err(error.context(log_tail(&log))),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("could not start {}", kind.binary())))
    }

    fn try_start(
        kind: ServerKind,
        options: &ServerOptions,
    ) -> Result<TestServer, (anyhow::Error, String)> {
        let setup = || -> anyhow::Result<(tempfile::TempDir, u16, u16, File)> {
            let dir = tempfile::tempdir().context("create temp dir")?;
            let log = File::create(dir.path().join("server.log")).context("create log")?;
            Ok((dir, free_port()?, free_port()?, log))
        };
        let (dir, client_port, peer_port, log) = setup().map_err(|e| (e, String::new()))?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let advertised_peer = options
            .peer_identity_url
            .clone()
            .unwrap_or(peer_url.clone());
        let stderr = log.try_clone().map_err(|e| (e.into(), String::new()))?;
        let child = Command::new(kind.binary())
            .arg(format!("--name={}", options.name))
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={advertised_peer}"))
            .arg(format!(
                "--initial-cluster={}={advertised_peer}",
                options.name
            ))
            .args(&options.extra_args)
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(|e| (anyhow!("spawn {}: {e}", kind.binary()), String::new()))?;
        let mut server = TestServer {
            pid: child.id(),
            client_url,
            dir,
            child,
        };
        match server.wait_ready(client_port) {
            Ok(()) => Ok(server),
            Err(error) => {
                let log = server.log();
                Err((error, log))
            }
        }
    }

    /// `127.0.0.1:<port>`, the form etcdctl's `--endpoints` takes.
    pub fn endpoint(&self) -> String {
        self.client_url.trim_start_matches("http://").to_string()
    }

    /// Everything the server wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// Polls until a TCP connect and a KV get succeed.
    fn wait_ready(&mut self, client_port: u16) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("build tokio runtime")?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("poll server")? {
                bail!("server exited during startup with {status}");
            }
            let connected = TcpStream::connect(("127.0.0.1", client_port)).is_ok();
            if connected && runtime.block_on(get_once(&self.client_url)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("server not ready after {READY_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // Child::kill sends SIGKILL to exactly this PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub async fn get_once(url: &str) -> anyhow::Result<()> {
    let attempt = async {
        let mut kv = KvClient::connect(url.to_string()).await?;
        kv.range(RangeRequest {
            key: b"health".to_vec(),
            ..RangeRequest::default()
        })
        .await?;
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(2), attempt).await?
}

/// Free 127.0.0.1 ports, from below the ephemeral range (one sequence
/// for the whole test binary).
pub use crate::support_ports::free_port;

fn log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    format!(
        "server log (last lines):\n{}",
        lines[lines.len().saturating_sub(30)..].join("\n")
    )
}

/// Reads a child's pipe to its end on a thread of its own (both pipes
/// at once, so a child filling one never blocks on the other).
pub fn read_in_background(
    pipe: Option<impl std::io::Read + Send + 'static>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Options that give ours and the reference the same member and cluster
/// ids, so whole answers (headers included) compare.
pub fn twin_options() -> ServerOptions {
    // Any fixed URL works; nothing listens or dials there.
    ServerOptions {
        name: "twin".to_string(),
        peer_identity_url: Some(format!("http://127.0.0.1:{}", free_port().unwrap_or(1))),
        extra_args: Vec::new(),
        env: Vec::new(),
    }
}

/// True (with the reason printed) when the reference etcd 3.4 is missing.
pub fn skip_without_reference() -> bool {
    if !reference_available() {
        eprintln!("skipping: the reference etcd/etcdctl are not installed");
        return true;
    }
    false
}

/// `message` with the `token` header etcd's clients send.
pub fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert("token", token.parse().expect("ascii token"));
    r
}

/// Runs our `etcd` once in an empty temp dir with only PATH and `env`
/// set (the start-up checks: flags, config, refusals).
pub fn run_etcd(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etcd"));
    cmd.args(args).current_dir(dir.path()).env_clear();
    if let Some(path) = std::env::var_os("PATH") {
        cmd.env("PATH", path);
    }
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run etcd")
}

/// Reads `child`'s stdout and stderr while waiting for it at most `limit`
/// (then it is killed and has no exit code): what a user running it saw.
pub fn collect_with_limit(mut child: Child, limit: Duration) -> (Vec<u8>, Vec<u8>, Option<i32>) {
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let started = std::time::Instant::now();
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
        code,
    )
}

/// Sends `sig` to `child` unless it has exited: once a child is reaped its
/// PID may already belong to another process (tests share one process and
/// start servers side by side), so a signal by that PID could hit another
/// test's server. A child not reaped keeps its PID, even as a zombie.
pub fn signal_child(child: &mut Child, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
    if let Some(status) = child.try_wait()? {
        anyhow::bail!("the process has exited ({status}); not signalled");
    }
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
    nix::sys::signal::kill(pid, sig)?;
    Ok(())
}
