//! On-disk layout of a member's data dir, as etcd's:
//! `<data-dir>/member/wal/` (the raft log) and `<data-dir>/member/snap/db`
//! (the MVCC state in LMDB). A lock file keeps a second process out.

pub mod backend;
pub mod hash;
pub mod lmdb_check;
pub mod private;
pub mod snapshot;
pub mod wal;

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

pub struct DataDir {
    pub root: PathBuf,
    pub wal_dir: PathBuf,
    pub db_path: PathBuf,
    /// Held for the life of the process: an exclusive flock on the dir.
    _lock: File,
}

impl DataDir {
    pub fn open(data_dir: &Path, wal_dir: Option<&Path>) -> anyhow::Result<DataDir> {
        let member = data_dir.join("member");
        let snap = member.join("snap");
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
        })
    }
}
