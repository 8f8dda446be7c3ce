//! SIGINT and SIGTERM for the commands that clean up before they exit
//! (`lock`, `elect`), caught as Go's `signal.Notify` catches them: once
//! registered they no longer kill etcdctl, the command decides what to do.
//! Other commands keep the default, so Ctrl-C ends them at once, as it
//! ends etcd's.

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::exit::{CtlResult, ExitError};

/// The message of a Go context cancelled by a signal.
pub const CONTEXT_CANCELED: &str = "context canceled";

pub struct ShutdownSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl ShutdownSignals {
    pub fn register() -> CtlResult<Self> {
        let install =
            |kind| signal(kind).map_err(|err| ExitError::error(format!("catch signals: {err}")));
        Ok(ShutdownSignals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    /// Resolves when SIGINT or SIGTERM arrives.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}
