//! `etcdutl hashkv`: the KV history hash a member's HashKV RPC would
//! answer, computed offline from a stopped member's data dir (or a backend
//! file), so a restored or copied member can be checked against the
//! cluster it came from.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::printer::HashKv;
use super::snapshot::open_backend_file;
use super::Result;
use crate::mvcc::Store;
use crate::storage::backend::{Backend, DEFAULT_MAP_SIZE};
use crate::storage::DataDir;

/// The hash of every revision up to `rev` (0: the newest), as etcd's
/// `HashByRev`, of the data dir or backend file at `path`.
pub fn hash_kv(path: &Path, rev: i64) -> Result<HashKv> {
    let is_data_dir = path.is_dir();
    let db = if is_data_dir {
        super::db_path(path)
    } else {
        path.to_path_buf()
    };
    if !db.is_file() {
        return Err(anyhow!("cannot open database at {}", db.display()).into());
    }
    // A data dir's lock keeps a running member's backend out of reach.
    let _lock = if is_data_dir {
        Some(DataDir::open(path, None)?)
    } else {
        None
    };
    open_backend_file(&db, path)?.prepare_for_closing().wait();
    let lock_file = lmdb_lock_file(&db);
    let had_lock_file = lock_file.exists();
    let hashed = (|| -> anyhow::Result<HashKv> {
        let store = Store::open(Backend::open(&db, DEFAULT_MAP_SIZE)?)?;
        let h = store.read()?.hash_kv(rev)?;
        Ok(HashKv {
            hash: h.hash,
            hash_revision: h.hash_revision,
            compact_revision: h.compact_revision,
        })
    })();
    if !had_lock_file && !is_data_dir {
        // Opening the file for the store made LMDB's lock file next to a
        // snapshot the user gave: leave the directory as it was.
        let _ = std::fs::remove_file(&lock_file);
    }
    Ok(hashed?)
}

/// Where LMDB keeps the reader table of a single-file environment.
fn lmdb_lock_file(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}
