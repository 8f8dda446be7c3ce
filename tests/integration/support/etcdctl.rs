//! Running etcdctl (ours or Debian's 3.4) as the comparison tests do: one
//! command line with what it reads on stdin and its environment, in an
//! environment of only ETCDCTL_API=3 and those variables, killed when it
//! runs past `RUN_LIMIT`.

#![allow(dead_code)]

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::common::collect_with_limit;

/// How long one etcdctl run may take before it is killed.
pub const RUN_LIMIT: Duration = Duration::from_secs(30);

/// One command line of a table of cases, with its stdin and environment.
pub struct Case {
    pub args: &'static [&'static str],
    pub stdin: &'static str,
    pub env: &'static [(&'static str, &'static str)],
}

pub const fn case(args: &'static [&'static str]) -> Case {
    Case {
        args,
        stdin: "",
        env: &[],
    }
}

pub const fn with_stdin(args: &'static [&'static str], stdin: &'static str) -> Case {
    Case {
        args,
        stdin,
        env: &[],
    }
}

pub const fn with_env(
    args: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
) -> Case {
    Case {
        args,
        stdin: "",
        env,
    }
}

/// What one run showed; `code` is None when it was killed (past the
/// limit, or by a signal).
pub struct Run {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub code: Option<i32>,
}

impl Run {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Runs `binary args…` with `stdin` written to it and `env` set.
pub fn run<A, E>(binary: &str, args: A, stdin: &str, env: E) -> Run
where
    A: IntoIterator,
    A::Item: AsRef<std::ffi::OsStr>,
    E: IntoIterator<Item = (String, String)>,
{
    run_within(binary, args, stdin, env, RUN_LIMIT)
}

/// `run`, killed past `limit` instead of `RUN_LIMIT`.
pub fn run_within<A, E>(binary: &str, args: A, stdin: &str, env: E, limit: Duration) -> Run
where
    A: IntoIterator,
    A::Item: AsRef<std::ffi::OsStr>,
    E: IntoIterator<Item = (String, String)>,
{
    let mut command = Command::new(binary);
    command
        .args(args)
        .env_clear()
        .env("ETCDCTL_API", "3")
        .envs(env)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    if let Some(mut pipe) = child.stdin.take() {
        // A command that exits before reading stdin closes the pipe.
        let _ = pipe.write_all(stdin.as_bytes());
    }
    let (stdout, stderr, code) = collect_with_limit(child, limit);
    Run {
        stdout,
        stderr,
        code,
    }
}
