//! On-disk layout of a member's data dir, as etcd's:
//! `<data-dir>/member/wal/` (the raft log) and `<data-dir>/member/snap/db`
//! (the MVCC state in LMDB). A lock file keeps a second process out.

pub mod backend;
pub mod bbolt;
pub mod hash;
pub mod lmdb_check;
pub mod private;
pub mod schema;
pub mod snapshot;
pub mod wal;

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context as _;

/// --unsafe-no-fsync (etcd 3.5): the raft log's appends and the backend's
/// commits are written but not fsynced, for tests and throwaway clusters
/// (segment cuts and snapshot files are still synced, as in etcd). Process-wide, as
/// in etcd (its WAL and bbolt both take it), and set once at startup
/// before any file is opened: a defragmented or restored backend opens
/// the same way.
static UNSAFE_NO_FSYNC: AtomicBool = AtomicBool::new(false);

pub fn set_unsafe_no_fsync(on: bool) {
    UNSAFE_NO_FSYNC.store(on, Ordering::Relaxed);
}

pub fn unsafe_no_fsync() -> bool {
    UNSAFE_NO_FSYNC.load(Ordering::Relaxed)
}

pub struct DataDir {
    pub root: PathBuf,
    pub wal_dir: PathBuf,
    pub db_path: PathBuf,
    /// Held for the life of the process: an exclusive flock on the dir.
    _lock: File,
    /// What this start created (the data dir, member/, a separate WAL dir),
    /// for `StartGuard`; true: with all it holds.
    created: Vec<(PathBuf, bool)>,
}

/// Removes what a start created when the start fails before raft runs
/// (a taken port, a bad certificate, a join refused): a failed first
/// start leaves no `member/` skeleton that a later start would take for
/// an initialized member. Disarmed once the raft log exists and raft may
/// have voted: from then on the data is the member's.
pub struct StartGuard {
    created: Vec<(PathBuf, bool)>,
    armed: bool,
}

impl StartGuard {
    pub fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for StartGuard {
    fn drop(&mut self) {
        if !self.armed || self.created.is_empty() {
            return;
        }
        for (dir, whole) in self.created.iter().rev() {
            // the data dir itself goes only if nothing else is in it
            let removed = if *whole {
                fs::remove_dir_all(dir)
            } else {
                fs::remove_dir(dir)
            };
            match removed {
                // not created after all (the start failed before it)
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Ok(()) => {
                    tracing::info!(path = %dir.display(), "removed what the failed start created")
                }
                Err(e) => {
                    tracing::warn!(path = %dir.display(), error = %e, "cannot remove what the failed start created")
                }
            }
        }
    }
}

impl DataDir {
    pub fn open(data_dir: &Path, wal_dir: Option<&Path>) -> anyhow::Result<DataDir> {
        let member = data_dir.join("member");
        let snap = member.join("snap");
        let mut created = Vec::new();
        if !data_dir.exists() {
            created.push((data_dir.to_path_buf(), false));
        }
        if !member.exists() {
            created.push((member.clone(), true));
        }
        if let Some(w) = wal_dir.filter(|w| !w.exists()) {
            created.push((w.to_path_buf(), true));
        }
        for dir in [data_dir, &member, &snap] {
            private::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        let wal_dir = wal_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| member.join("wal"));
        let lock_path = member.join("lock");
        let lock = private::file_options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("open {}", lock_path.display()))?;
        nix::fcntl::Flock::lock(
            lock.try_clone()?,
            nix::fcntl::FlockArg::LockExclusiveNonblock,
        )
        .map(std::mem::forget)
        .map_err(|(_, e)| {
            anyhow::anyhow!(
                "data dir {} is in use by another process ({e})",
                data_dir.display()
            )
        })?;
        Ok(DataDir {
            root: data_dir.to_path_buf(),
            wal_dir,
            db_path: snap.join("db"),
            _lock: lock,
            created,
        })
    }

    /// A guard that removes what this start created unless disarmed.
    pub fn start_guard(&self) -> StartGuard {
        StartGuard {
            created: self.created.clone(),
            armed: true,
        }
    }
}
