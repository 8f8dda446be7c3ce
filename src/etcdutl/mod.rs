//! etcd's `etcdutl`: offline tools over a data dir or a backend snapshot
//! file, with etcd 3.5's outputs and error texts. The `etcdutl` binary is a
//! thin command line over this module; `etcdctl`'s deprecated `snapshot
//! status/restore` call the same functions.
//!
//! - `snapshot`: the snapshot file (a backend copy plus etcd's SHA-256
//!   trailer), `status` and `restore`.
//! - `hashkv`: etcd's KV history hash of a data dir or backend file.
//! - `backup`: a copy of a data dir under a new member identity.
//! - `defrag`: a compacting rewrite of a stopped member's backend.
//! - `identity`: rewriting the membership a backend carries (restore and
//!   backup both make a member of a new cluster).
//! - `printer`: etcdutl's output formats.

pub mod backup;
pub mod defrag;
pub mod hashkv;
pub mod identity;
pub mod printer;
pub mod snapshot;

use std::path::{Path, PathBuf};

/// Backend meta keys these tools read and write (`storage::schema`).
pub(crate) mod meta {
    pub use crate::storage::schema::{
        META_CLUSTER_ID as CLUSTER_ID, META_COMPACT_REV as COMPACT_REV,
        META_CURRENT_REV as CURRENT_REV, META_MEMBER_ID as MEMBER_ID,
    };
}

/// A failure, with the exit code etcd's `cobrautl.ExitWithError` gives it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad arguments or flag combinations (exit 128).
    #[error("{0}")]
    BadArgs(String),
    /// A valid flag with an unsupported value, e.g. an output format
    /// (exit 4).
    #[error("{0}")]
    BadFeature(String),
    /// The operation failed (exit 1).
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::BadArgs(_) => 128,
            Error::BadFeature(_) => 4,
            Error::Failed(_) => 1,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

/// `<data-dir>/member/snap/db`, the backend file.
pub fn db_path(data_dir: &Path) -> PathBuf {
    snap_dir(data_dir).join("db")
}

/// `<data-dir>/member/snap`.
pub fn snap_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("snap")
}

/// `<data-dir>/member/wal`, the default WAL dir.
pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("member").join("wal")
}

/// An I/O error as Go prints it: "no such file or directory".
pub(crate) fn io_text(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_lowercase(),
        None => e.to_string(),
    }
}

/// Creates `dir` and its missing parents, private to the user (0700, as
/// etcd's `fileutil.CreateDirAll`).
pub(crate) fn create_private_dir_all(dir: &Path) -> anyhow::Result<()> {
    crate::storage::private::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("mkdir {}: {}", dir.display(), io_text(&e)))
}

/// Makes a rename or a new file in `dir` durable.
pub(crate) fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| anyhow::anyhow!("fsync {}: {}", dir.display(), io_text(&e)))
}
