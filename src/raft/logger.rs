//! Routes raft-rs's slog records into our `tracing` logs, with etcd's
//! `"logger":"raft"` field so operators recognise them.

use slog::{Drain, Level, OwnedKVList, Record};

pub struct TracingDrain;

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, _values: &OwnedKVList) -> Result<(), slog::Never> {
        let msg = format!("{}", record.msg());
        match record.level() {
            Level::Critical | Level::Error => tracing::error!(logger = "raft", "{msg}"),
            Level::Warning => tracing::warn!(logger = "raft", "{msg}"),
            Level::Info => tracing::info!(logger = "raft", "{msg}"),
            Level::Debug | Level::Trace => tracing::debug!(logger = "raft", "{msg}"),
        }
        Ok(())
    }
}

pub fn logger() -> slog::Logger {
    slog::Logger::root(TracingDrain, slog::o!())
}
