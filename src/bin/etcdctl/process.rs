//! The exec-commands `watch` and `lock` run, started and reported as Go's
//! `os/exec` does: the name is looked up in `$PATH` unless it has a slash,
//! the child shares etcdctl's stdin/stdout/stderr, and failures read
//! `exit status 3`, `signal: killed` or `exec: "x": executable file not
//! found in $PATH`.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::ExitStatusExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

/// How a command ended, when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandFailure {
    /// Go's error text.
    pub text: String,
    /// Go's `WaitStatus.ExitStatus()`: the exit code, or -1 if a signal
    /// ended the command or it never started.
    pub exit_status: i32,
    /// Whether it ran at all (Go's `*exec.ExitError`).
    pub started: bool,
}

/// A command to run, and how its environment differs from etcdctl's.
#[derive(Debug, Clone, Default)]
pub struct Exec {
    pub args: Vec<String>,
    /// Set over etcdctl's environment (Go appends them after it).
    pub env_over: Vec<(String, String)>,
    /// Set unless etcdctl's environment has them (Go prepends them).
    pub env_under: Vec<(String, String)>,
}

/// Runs the command to its end, sharing etcdctl's stdio.
pub async fn run(exec: Exec) -> Result<(), CommandFailure> {
    let outcome = tokio::task::spawn_blocking(move || run_blocking(&exec)).await;
    match outcome {
        Ok(result) => result,
        Err(err) => Err(not_started(format!("exec: {err}"))),
    }
}

fn run_blocking(exec: &Exec) -> Result<(), CommandFailure> {
    let Some(name) = exec.args.first() else {
        return Err(not_started("exec: no command".to_string()));
    };
    let path = look_path(name)?;
    let mut command = Command::new(&path);
    command.args(&exec.args[1..]);
    for (key, value) in &exec.env_under {
        if std::env::var_os(key).is_none() {
            command.env(key, value);
        }
    }
    for (key, value) in &exec.env_over {
        command.env(key, value);
    }
    let status = command.status().map_err(|err| {
        not_started(format!(
            "fork/exec {}: {}",
            path.display(),
            errno_text(&err)
        ))
    })?;
    if status.success() {
        return Ok(());
    }
    Err(CommandFailure {
        text: status_text(status),
        exit_status: status.code().unwrap_or(-1),
        started: true,
    })
}

fn not_started(text: String) -> CommandFailure {
    CommandFailure {
        text,
        exit_status: -1,
        started: false,
    }
}

/// Go's `exec.LookPath`.
fn look_path(name: &str) -> Result<PathBuf, CommandFailure> {
    if name.contains('/') {
        return Ok(PathBuf::from(name));
    }
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(not_started(format!(
        "exec: {}: executable file not found in $PATH",
        rsetcd::gofmt::quote(name.as_bytes())
    )))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_dir() && m.permissions().mode() & 0o111 != 0)
}

pub use rsetcd::gofmt::os_error_text as errno_text;

/// Go's `ProcessState.String()` for a failed command.
fn status_text(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    let Some(signal) = status.signal() else {
        return "exit status -1".to_string();
    };
    let mut text = format!("signal: {}", signal_name(signal));
    if status.core_dumped() {
        text.push_str(" (core dumped)");
    }
    text
}

/// Go's names for signals (`syscall.Signal.String()` on Linux).
fn signal_name(signal: i32) -> String {
    let name = match signal {
        1 => "hangup",
        2 => "interrupt",
        3 => "quit",
        4 => "illegal instruction",
        5 => "trace/breakpoint trap",
        6 => "aborted",
        7 => "bus error",
        8 => "floating point exception",
        9 => "killed",
        10 => "user defined signal 1",
        11 => "segmentation fault",
        12 => "user defined signal 2",
        13 => "broken pipe",
        14 => "alarm clock",
        15 => "terminated",
        _ => return format!("signal {signal}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_args(args: &[&str]) -> Result<(), CommandFailure> {
        run_blocking(&Exec {
            args: args.iter().map(|a| a.to_string()).collect(),
            ..Exec::default()
        })
    }

    #[test]
    fn failures_read_like_go() {
        let missing = run_args(&["no-such-command-here"]).unwrap_err();
        assert_eq!(
            missing.text,
            "exec: \"no-such-command-here\": executable file not found in $PATH"
        );
        let exit = run_args(&["sh", "-c", "exit 3"]).unwrap_err();
        assert_eq!((exit.text.as_str(), exit.exit_status), ("exit status 3", 3));
        let killed = run_args(&["sh", "-c", "kill -9 $$"]).unwrap_err();
        assert_eq!(
            (killed.text.as_str(), killed.exit_status),
            ("signal: killed", -1)
        );
        let nofile = run_args(&["./no/such/file"]).unwrap_err();
        assert_eq!(
            nofile.text,
            "fork/exec ./no/such/file: no such file or directory"
        );
    }

    #[test]
    fn environment_layers_like_go() {
        let exec = Exec {
            args: vec![
                "sh".into(),
                "-c".into(),
                "test \"$OVER\" = o && test \"$PATH\" != under".into(),
            ],
            env_over: vec![("OVER".into(), "o".into())],
            env_under: vec![("PATH".into(), "under".into())],
        };
        assert_eq!(run_blocking(&exec), Ok(()));
    }
}
