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

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

use crate::support::member::Member;
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
    /// Killed on drop, before `dir` goes (fields drop in order).
    member: Member,
    /// Holds the data dir (`dir/data`) and its logs; removed on drop.
    pub dir: tempfile::TempDir,
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
        let setup = || -> anyhow::Result<(tempfile::TempDir, u16, u16)> {
            let dir = tempfile::tempdir().context("create temp dir")?;
            Ok((dir, free_port()?, free_port()?))
        };
        let (dir, client_port, peer_port) = setup().map_err(|e| (e, String::new()))?;
        let client_url = format!("http://127.0.0.1:{client_port}");
        let peer_url = format!("http://127.0.0.1:{peer_port}");
        let advertised_peer = options
            .peer_identity_url
            .clone()
            .unwrap_or(peer_url.clone());
        let data_dir = dir.path().join("data");
        let mut member = Member::new(
            &options.name,
            kind,
            client_port,
            peer_port,
            data_dir.clone(),
        )
        .inherit_env(&options.env);
        member.args = vec![
            format!("--name={}", options.name),
            format!("--data-dir={}", data_dir.display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={advertised_peer}"),
            format!("--initial-cluster={}={advertised_peer}", options.name),
        ];
        member.args.extend(options.extra_args.iter().cloned());
        member.start().map_err(|e| (e, String::new()))?;
        let mut server = TestServer {
            pid: member.pid(),
            client_url,
            dir,
            member,
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
        self.member.log()
    }

    /// Polls until a TCP connect and a KV get succeed.
    fn wait_ready(&mut self, client_port: u16) -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("build tokio runtime")?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.member.exited().context("poll server")? {
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
pub use crate::support::ports::free_port;

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
