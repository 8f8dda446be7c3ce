//! One child process of a test (our etcd, etcd 3.4, etcdutl…): started
//! with stdout and stderr in a log file, signalled by PID only while it is
//! not reaped (a reaped child's PID may already be another test's server:
//! tests run side by side in one process), and killed (SIGKILL by PID) when
//! dropped, so a panicking test leaves nothing running. `member::Member`
//! holds one; so do the tests that start a server with flags of their own.

#![allow(dead_code)]

use std::fs::File;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use nix::sys::signal::Signal;

/// A command for `binary` with an environment of only PATH (and
/// ETCD_UNSUPPORTED_ARCH, which etcd 3.4 needs on some architectures): no
/// ETCD_* variable of the test process leaks into the server.
pub fn clean_command(binary: &str) -> Command {
    let mut cmd = Command::new(binary);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ETCD_UNSUPPORTED_ARCH", std::env::consts::ARCH);
    cmd
}

/// A started child process; see the module doc.
pub struct Proc {
    name: String,
    child: Option<Child>,
    log_path: PathBuf,
}

impl Proc {
    /// Starts `cmd` (stdin from /dev/null) with its output in `log_path`.
    pub fn spawn(name: &str, mut cmd: Command, log_path: &Path) -> anyhow::Result<Proc> {
        if let Some(dir) = log_path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let log =
            File::create(log_path).with_context(|| format!("create {}", log_path.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("start {:?}", cmd.get_program()))?;
        Ok(Proc {
            name: name.to_string(),
            child: Some(child),
            log_path: log_path.to_path_buf(),
        })
    }

    /// `binary args…` with a clean environment, logging to `dir/name.log`.
    pub fn start(binary: &str, name: &str, dir: &Path, args: &[String]) -> anyhow::Result<Proc> {
        std::fs::create_dir_all(dir)?;
        let mut cmd = clean_command(binary);
        cmd.args(args);
        Proc::spawn(name, cmd, &dir.join(format!("{name}.log")))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The PID (0 once the process was reaped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Whether the process is alive (false once it exited or was killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The exit status if the process has ended (reaping it).
    pub fn exited(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(child) = self.child.as_mut() else {
            bail!("{}: not running", self.name);
        };
        let status = child.try_wait()?;
        if status.is_some() {
            self.child = None;
        }
        Ok(status)
    }

    /// Sends `sig` by PID, only while the process is not reaped.
    pub fn signal(&mut self, sig: Signal) -> anyhow::Result<()> {
        let child = self.child.as_mut().context("not running")?;
        if let Some(status) = child.try_wait()? {
            bail!("the process has exited ({status}); not signalled");
        }
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id())?);
        nix::sys::signal::kill(pid, sig)?;
        Ok(())
    }

    /// SIGKILL by PID and reap (a stopped process dies too).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            // Child::kill sends SIGKILL to exactly this PID, if not reaped.
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Exit status once the process has ended on its own.
    pub fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.exited()? {
                return Ok(s);
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then the exit status; SIGKILL and an error (with the end
    /// of the log) when it does not exit within `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGTERM).context("send SIGTERM")?;
        match self.wait_exit(timeout) {
            Ok(s) => Ok(s),
            Err(e) => {
                self.kill9();
                bail!("{e} of SIGTERM; killed it. Log:\n{}", self.log_tail());
            }
        }
    }

    /// What the process wrote so far (stdout and stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last 30 lines of the log, for error messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Waits until the log holds `text`.
    pub fn wait_log(&mut self, text: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(text) {
            if !self.is_running() {
                bail!(
                    "{} exited before logging {text:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not log {text:?} within {timeout:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
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
