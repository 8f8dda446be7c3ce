//! A panic on any thread or tokio task ends the whole process (issue 13):
//! a member whose raft or apply thread died must not go on serving reads,
//! watches and keep-alives from state that no longer moves. The daemon
//! installs `rsetcd::abort_on_panic` first thing; this test runs itself
//! again as a child that installs it and panics off the main thread.

use std::os::unix::process::ExitStatusExt as _;
use std::process::Command;
use std::time::{Duration, Instant};

const CHILD: &str = "RSETCD_PANIC_CHILD";

/// In the child: install the hook, panic where `mode` says, and report
/// survival (exit 0) if the process is still alive afterwards.
fn child(mode: &str) {
    rsetcd::abort_on_panic();
    match mode {
        "thread" => {
            let _ = std::thread::Builder::new()
                .name("apply".into())
                .spawn(|| panic!("the apply thread failed"))
                .map(|h| h.join());
        }
        _ => {
            let runtime = tokio::runtime::Runtime::new().expect("runtime");
            // tokio would catch this and hand back a JoinError
            let task = runtime.spawn(async { panic!("a task failed") });
            let _ = runtime.block_on(task);
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    std::process::exit(0);
}

fn run_child(mode: &str, test_name: &str) -> (std::process::ExitStatus, String) {
    let started = Instant::now();
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(CHILD, mode)
        .output()
        .expect("run the child");
    assert!(started.elapsed() < Duration::from_secs(60));
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_panicking_thread_aborts_the_process() {
    if let Ok(mode) = std::env::var(CHILD) {
        return child(&mode);
    }
    let (status, stderr) = run_child("thread", "a_panicking_thread_aborts_the_process");
    assert_eq!(
        status.signal(),
        Some(libc_sigabrt()),
        "{status:?}\n{stderr}"
    );
    assert!(stderr.contains("the apply thread failed"), "{stderr}");
}

#[test]
fn a_panicking_task_aborts_the_process() {
    if let Ok(mode) = std::env::var(CHILD) {
        return child(&mode);
    }
    let (status, stderr) = run_child("task", "a_panicking_task_aborts_the_process");
    assert_eq!(
        status.signal(),
        Some(libc_sigabrt()),
        "{status:?}\n{stderr}"
    );
    assert!(stderr.contains("a task failed"), "{stderr}");
}

fn libc_sigabrt() -> i32 {
    nix::sys::signal::Signal::SIGABRT as i32
}
