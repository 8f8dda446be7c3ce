//! systemd integration as a service manager sees it: the test owns the
//! NOTIFY_SOCKET datagram socket, reads each notification with the sender's
//! credentials (SO_PASSCRED), and checks that READY=1 comes from the main
//! PID only once the client port answers a linearizable read, that
//! WATCHDOG=1 arrives every half WATCHDOG_USEC, and that SIGTERM brings
//! STOPPING=1 and a clean exit. Also: abstract sockets, and SIGHUP
//! reloading the log level from the config file.

use crate::support::common;
use crate::support::process::Proc;

use std::io::IoSliceMut;
use std::os::fd::AsRawFd as _;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::PutRequest;

/// One notification: when it arrived, who sent it, what it said.
struct Note {
    at: Instant,
    pid: i32,
    text: String,
}

/// The service manager's end: a datagram socket passing credentials.
struct NotifySocket {
    socket: UnixDatagram,
}

impl NotifySocket {
    fn bind(path: &std::path::Path) -> anyhow::Result<Self> {
        let socket = UnixDatagram::bind(path).context("bind notify socket")?;
        Self::with_credentials(socket)
    }

    fn bind_abstract(name: &str) -> anyhow::Result<Self> {
        use std::os::linux::net::SocketAddrExt as _;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())?;
        Self::with_credentials(UnixDatagram::bind_addr(&addr)?)
    }

    fn with_credentials(socket: UnixDatagram) -> anyhow::Result<Self> {
        setsockopt(&socket, sockopt::PassCred, &true).context("SO_PASSCRED")?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(NotifySocket { socket })
    }

    /// The next notification, or None after the read timeout.
    fn recv(&self) -> anyhow::Result<Option<Note>> {
        let mut buf = [0u8; 4096];
        let mut cmsg = nix::cmsg_space!(nix::libc::ucred);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = match recvmsg::<()>(
            self.socket.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EAGAIN) => return Ok(None),
            Err(e) => bail!("recvmsg: {e}"),
        };
        let mut pid = 0;
        for c in msg.cmsgs()? {
            if let ControlMessageOwned::ScmCredentials(cred) = c {
                pid = cred.pid();
            }
        }
        let len = msg.bytes;
        Ok(Some(Note {
            at: Instant::now(),
            pid,
            text: String::from_utf8_lossy(&buf[..len]).into_owned(),
        }))
    }

    /// Waits for a notification containing `needle`, collecting the others.
    fn wait_for(
        &self,
        needle: &str,
        timeout: Duration,
        seen: &mut Vec<Note>,
    ) -> anyhow::Result<Note> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(n) = self.recv()? {
                if n.text.lines().any(|l| l == needle) {
                    return Ok(n);
                }
                seen.push(n);
            }
        }
        let texts: Vec<&str> = seen.iter().map(|n| n.text.as_str()).collect();
        bail!("no {needle:?} within {timeout:?}; got {texts:?}")
    }
}

/// Our etcd on free ports with extra environment; killed on drop.
struct Daemon {
    proc: Proc,
    client_url: String,
    _dir: tempfile::TempDir,
}

impl Daemon {
    fn start(env: &[(&str, String)], extra: &[String]) -> anyhow::Result<Daemon> {
        let dir = tempfile::tempdir()?;
        let (client, peer) = (common::free_port()?, common::free_port()?);
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_etcd"));
        cmd.arg(format!("--data-dir={}", dir.path().join("data").display()))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster=default={peer_url}"))
            .args(extra)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("WATCHDOG_PID");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let proc = Proc::spawn("etcd", cmd, &dir.path().join("server.log"))?;
        Ok(Daemon {
            proc,
            client_url,
            _dir: dir,
        })
    }

    fn pid(&self) -> i32 {
        self.proc.pid() as i32
    }

    fn log(&self) -> String {
        self.proc.log()
    }

    fn signal(&mut self, sig: nix::sys::signal::Signal) -> anyhow::Result<()> {
        self.proc.signal(sig)
    }

    fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        self.proc.wait_exit(timeout)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A linearizable get with a short deadline and no retry.
fn linearizable_get(url: &str) -> anyhow::Result<()> {
    runtime().block_on(common::get_once(url))
}

#[test]
fn ready_watchdog_and_stopping_reach_the_notify_socket() -> anyhow::Result<()> {
    let sockdir = tempfile::tempdir()?;
    let path = sockdir.path().join("notify");
    let notify = NotifySocket::bind(&path)?;
    let started = Instant::now();
    let mut daemon = Daemon::start(
        &[
            ("NOTIFY_SOCKET", path.display().to_string()),
            // 400 ms: pings every 200 ms.
            ("WATCHDOG_USEC", "400000".to_string()),
        ],
        &[],
    )?;
    let mut before = Vec::new();
    let ready = notify
        .wait_for("READY=1", Duration::from_secs(30), &mut before)
        .with_context(|| daemon.log())?;
    assert_eq!(
        ready.pid,
        daemon.pid(),
        "READY=1 must come from the main PID"
    );
    assert!(
        ready
            .text
            .contains("STATUS=serving client requests on 127.0.0.1:"),
        "{}",
        ready.text
    );
    // Startup states were reported before READY.
    let statuses: Vec<&str> = before
        .iter()
        .filter_map(|n| n.text.strip_prefix("STATUS="))
        .collect();
    assert!(
        statuses.iter().any(|s| s.contains("replaying")),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| s.contains("waiting for a leader")),
        "{statuses:?}"
    );
    assert!(
        statuses.iter().any(|s| s.contains("linearizable read")),
        "{statuses:?}"
    );
    // At READY=1 the client port already answers a linearizable read, at
    // once and without retrying.
    linearizable_get(&daemon.client_url).context("linearizable read right after READY=1")?;
    // The daemon's own readiness read went through the client port.
    let metrics = http_get(&daemon.client_url, "/metrics")?;
    let range_calls = metrics
        .lines()
        .find(|l| l.starts_with("grpc_server_handled_total{grpc_code=\"OK\",grpc_method=\"Range\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(range_calls >= 2.0, "Range calls seen: {range_calls}");

    // Watchdog: pings at half of WATCHDOG_USEC, from the main PID.
    let window = Instant::now();
    let mut pings = Vec::new();
    while window.elapsed() < Duration::from_secs(2) {
        if let Some(n) = notify.recv()? {
            if n.text == "WATCHDOG=1" {
                assert_eq!(n.pid, daemon.pid());
                pings.push(n.at);
            }
        }
    }
    assert!(
        (6..=14).contains(&pings.len()),
        "{} pings in 2 s, expected about 10",
        pings.len()
    );
    let mut gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    assert!(
        median >= Duration::from_millis(150) && median <= Duration::from_millis(300),
        "median ping interval {median:?}"
    );

    // SIGTERM: STOPPING=1 from the main PID, then a clean exit.
    daemon.signal(nix::sys::signal::Signal::SIGTERM)?;
    let stopping = notify.wait_for("STOPPING=1", Duration::from_secs(10), &mut Vec::new())?;
    assert_eq!(stopping.pid, daemon.pid());
    let status = daemon.wait_exit(Duration::from_secs(20))?;
    assert!(
        status.success(),
        "exit status {status}; log:\n{}",
        daemon.log()
    );
    assert!(started.elapsed() < Duration::from_secs(60));
    Ok(())
}

#[test]
fn abstract_notify_socket_gets_ready() -> anyhow::Result<()> {
    let name = format!("rsetcd-test-notify-{}", std::process::id());
    let notify = NotifySocket::bind_abstract(&name)?;
    let daemon = Daemon::start(&[("NOTIFY_SOCKET", format!("@{name}"))], &[])?;
    let ready = notify
        .wait_for("READY=1", Duration::from_secs(30), &mut Vec::new())
        .with_context(|| daemon.log())?;
    assert_eq!(ready.pid, daemon.pid());
    // No WATCHDOG_USEC: no pings.
    let quiet_until = Instant::now() + Duration::from_millis(700);
    while Instant::now() < quiet_until {
        if let Some(n) = notify.recv()? {
            assert_ne!(n.text, "WATCHDOG=1");
        }
    }
    Ok(())
}

#[test]
fn sighup_reloads_the_log_level_from_the_config_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("etcd.yaml");
    let (client, peer) = (common::free_port()?, common::free_port()?);
    let write_config = |level: &str| {
        std::fs::write(
            &config,
            format!(
                "name: default\ndata-dir: {}\nlisten-client-urls: http://127.0.0.1:{client}\nadvertise-client-urls: http://127.0.0.1:{client}\nlisten-peer-urls: http://127.0.0.1:{peer}\ninitial-advertise-peer-urls: http://127.0.0.1:{peer}\ninitial-cluster: default=http://127.0.0.1:{peer}\nlog-level: {level}\n",
                dir.path().join("data").display()
            ),
        )
    };
    write_config("info")?;
    let log_path = dir.path().join("server.log");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etcd"));
    cmd.arg(format!("--config-file={}", config.display()))
        .env_remove("NOTIFY_SOCKET");
    let mut daemon = Daemon {
        proc: Proc::spawn("etcd", cmd, &log_path)?,
        client_url: format!("http://127.0.0.1:{client}"),
        _dir: tempfile::tempdir()?,
    };
    let read_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while linearizable_get(&daemon.client_url).is_err() {
        if Instant::now() > deadline {
            bail!("not serving; log:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!read_log().contains("\"level\":\"debug\""));

    write_config("debug")?;
    daemon.signal(nix::sys::signal::Signal::SIGHUP)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read_log().contains("changed the log level") {
        if Instant::now() > deadline {
            bail!("no reload logged; log:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let line = read_log()
        .lines()
        .find(|l| l.contains("changed the log level"))
        .map(str::to_string)
        .unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&line)?;
    assert_eq!(v["previous"], "info", "{line}");
    assert_eq!(v["current"], "debug", "{line}");
    // The process lives on (SIGHUP's default action would end it) and now
    // logs at debug level.
    runtime().block_on(async {
        let mut kv = KvClient::connect(daemon.client_url.clone()).await?;
        kv.put(PutRequest {
            key: b"k".to_vec(),
            value: b"v".to_vec(),
            ..Default::default()
        })
        .await?;
        anyhow::Ok(())
    })?;
    assert!(daemon.proc.is_running(), "etcd exited on SIGHUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read_log().contains("\"level\":\"debug\"") {
        if Instant::now() > deadline {
            bail!("no debug lines after reload; log:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }

    // A reload with nothing changed says so.
    daemon.signal(nix::sys::signal::Signal::SIGHUP)?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !read_log().contains("configuration reloaded; nothing changed") {
        if Instant::now() > deadline {
            bail!("second reload not logged; log:\n{}", read_log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    daemon.signal(nix::sys::signal::Signal::SIGTERM)?;
    assert!(daemon.wait_exit(Duration::from_secs(20))?.success());
    Ok(())
}

/// `systemctl reload etcd` with /etc/etcd/etcd.conf: systemd gives the
/// daemon the file's variables only at start, so the daemon reads the file
/// the unit names in RSETCD_ENVIRONMENT_FILE again on SIGHUP. A changed
/// log level applies at once, a changed restart-only setting is named, and
/// a line deleted from the file unsets its variable, as a restart would.
#[test]
fn sighup_reads_the_environment_file_again() -> anyhow::Result<()> {
    let conf_dir = tempfile::tempdir()?;
    let conf = conf_dir.path().join("etcd.conf");
    let write = |lines: &str| std::fs::write(&conf, format!("# as /etc/etcd/etcd.conf\n{lines}"));
    write("ETCD_LOG_LEVEL=\"info\"\nETCD_SNAPSHOT_COUNT=\"100000\"\n")?;
    // as systemd starts it: the file's variables, and where the file is
    let mut daemon = Daemon::start(
        &[
            ("ETCD_LOG_LEVEL", "info".into()),
            ("ETCD_SNAPSHOT_COUNT", "100000".into()),
            ("RSETCD_ENVIRONMENT_FILE", conf.display().to_string()),
        ],
        &[],
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while linearizable_get(&daemon.client_url).is_err() {
        if Instant::now() > deadline {
            bail!("not serving; log:\n{}", daemon.log());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // the n-th log line containing `text`, as JSON, once it is there
    let nth_line = |daemon: &Daemon, text: &str, n: usize| -> anyhow::Result<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = daemon.log();
            if let Some(line) = log.lines().filter(|l| l.contains(text)).nth(n) {
                return Ok(serde_json::from_str(line)?);
            }
            if Instant::now() > deadline {
                bail!("no {text:?} (#{n}) in the log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    };

    write("ETCD_LOG_LEVEL=\"debug\"\nETCD_SNAPSHOT_COUNT=\"5000\"\n")?;
    daemon.signal(nix::sys::signal::Signal::SIGHUP)?;
    let changed = nth_line(&daemon, "changed the log level", 0)?;
    assert_eq!(
        (&changed["previous"], &changed["current"]),
        (&"info".into(), &"debug".into())
    );
    let pending = nth_line(&daemon, "take effect only at restart", 0)?;
    assert_eq!(pending["settings"], "snapshot-count", "{pending}");

    // The level line deleted: back to etcd's default, as after a restart.
    write("ETCD_SNAPSHOT_COUNT=\"5000\"\n")?;
    daemon.signal(nix::sys::signal::Signal::SIGHUP)?;
    let changed = nth_line(&daemon, "changed the log level", 1)?;
    assert_eq!(
        (&changed["previous"], &changed["current"]),
        (&"debug".into(), &"info".into())
    );

    daemon.signal(nix::sys::signal::Signal::SIGTERM)?;
    assert!(daemon.wait_exit(Duration::from_secs(20))?.success());
    Ok(())
}

/// A plain HTTP/1.1 GET; returns the body.
fn http_get(base: &str, path: &str) -> anyhow::Result<String> {
    use std::io::{Read as _, Write as _};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let (head, body) = out.split_once("\r\n\r\n").context("no HTTP header end")?;
    if !head.starts_with("HTTP/1.1 200") {
        bail!("GET {path}: {head}");
    }
    Ok(body.to_string())
}

#[test]
fn journal_output_without_journald_fails_as_etcd_does() -> anyhow::Result<()> {
    if std::path::Path::new("/run/systemd/journal/socket").exists() {
        eprintln!("skipping: journald runs on this machine");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let out = Command::new(env!("CARGO_BIN_EXE_etcd"))
        .arg(format!("--data-dir={}", dir.path().join("data").display()))
        .arg("--log-outputs=systemd/journal")
        .env_remove("NOTIFY_SOCKET")
        .stdin(Stdio::null())
        .output()?;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line: serde_json::Value = serde_json::from_str(stderr.trim())
        .with_context(|| format!("not one JSON line: {stderr}"))?;
    assert_eq!(line["msg"], "failed to verify flags");
    assert_eq!(
        line["error"],
        "can't find journal (dial unixgram /run/systemd/journal/socket: connect: no such file or directory)"
    );
    Ok(())
}
