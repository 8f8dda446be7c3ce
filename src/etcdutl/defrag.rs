//! `etcdutl defrag`: rewrites a stopped member's backend with LMDB's
//! compacting copy and swaps it in, giving free pages back to the
//! filesystem.

use std::path::Path;

use anyhow::{anyhow, Context as _};

use super::{sync_dir, Result};
use crate::storage::backend::{Backend, DEFAULT_MAP_SIZE};
use crate::storage::DataDir;

/// Defragments the backend of the data dir at `data_dir`.
pub fn defrag(data_dir: &Path) -> Result<()> {
    let db = super::db_path(data_dir);
    if !db.exists() {
        return Err(anyhow!("cannot open database at {}", db.display()).into());
    }
    // The data dir lock keeps a running etcd out of our way (and us out of its).
    let _dir = DataDir::open(data_dir, None)?;
    let tmp = db.with_file_name("db.defrag");
    let _ = std::fs::remove_file(&tmp);
    {
        let backend = Backend::open(&db, DEFAULT_MAP_SIZE)
            .with_context(|| format!("cannot open database at {}", db.display()))?;
        backend
            .env
            .copy_to_path(&tmp, heed::CompactionOption::Enabled)
            .with_context(|| format!("copy {} to {}", db.display(), tmp.display()))?
            .sync_all()
            .context("sync defragmented copy")?;
    }
    std::fs::rename(&tmp, &db).with_context(|| format!("replace {}", db.display()))?;
    if let Some(dir) = db.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}
