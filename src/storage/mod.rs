//! On-disk layout of a member's data dir, as etcd's:
//! `<data-dir>/member/wal/` (the raft log) and `<data-dir>/member/snap/db`
//! (the MVCC state in LMDB). A lock file keeps a second process out.

pub mod backend;
pub mod hash;
pub mod lmdb_check;
pub mod snapshot;
pub mod wal;

use std::fs::{self, File, OpenOptions};
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
        fs::create_dir_all(&snap).with_context(|| format!("create {}", snap.display()))?;
        set_private(data_dir);
        let wal_dir = wal_dir
            .map(Path::to_path_buf)
            .unwrap_or_else(|| member.join("wal"));
        let lock_path = member.join("lock");
        let lock = OpenOptions::new()
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

/// etcd makes the data dir 0700; do the same (best effort for existing dirs).
fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
}
