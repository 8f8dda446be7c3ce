//! The LMDB environment that holds the MVCC state (`member/snap/db`, one
//! file, as etcd's bbolt `db`).
//!
//! Opened with `NO_META_SYNC`: a commit fdatasyncs its data pages but not the
//! meta page, which the next commit's fdatasync carries. LMDB keeps its
//! integrity this way; a power loss may only roll back the newest commit,
//! and the raft log (synced before any answer) replays it. That halves the
//! fsyncs on the apply path.

use std::path::Path;

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions, WithoutTls};

use super::schema::{KEY_TABLE, LEASE_TABLE, META_TABLE};

/// An open backend file and the tables of the MVCC schema.
///
/// heed ties a `Database` handle to a borrow of its `Env`; the handles here
/// are widened to `'static` and live in the same struct as the `Env` they
/// belong to, so they are never used after it closes (and heed checks at
/// each use that a handle matches the txn's environment). An online defrag
/// replaces the whole `Backend`; the old one closes when its last reader
/// lets go of it.
pub struct Backend {
    pub env: Env<WithoutTls>,
    /// revision (16 bytes BE) → record (see `mvcc::store`).
    pub kv: Database<'static, Bytes, Bytes>,
    /// named scalars: consistent index, current/compacted revision, ids.
    pub meta: Database<'static, Bytes, Bytes>,
    /// lease id (8 bytes BE) → `LeaseRecord`.
    pub lease: Database<'static, Bytes, Bytes>,
}

type Table<'e> = Database<'e, Bytes, Bytes>;

/// Virtual address space reserved for the map; LMDB grows the file lazily.
pub const DEFAULT_MAP_SIZE: usize = 16 << 30;

impl Backend {
    /// Opens or creates the environment at `path` (a file, not a directory).
    pub fn open(path: &Path, map_size: usize) -> anyhow::Result<Backend> {
        use anyhow::Context as _;
        if let Some(parent) = path.parent() {
            super::private::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        let mut opts = EnvOpenOptions::new().read_txn_without_tls();
        opts.map_size(map_size).max_dbs(8).max_readers(1024);
        // SAFETY: heed requires that the same file is not opened twice in one
        // process and that flags are valid; we open each data dir once and
        // take an exclusive lock on it before (see `storage::DataDir`).
        let mut flags = EnvFlags::NO_SUB_DIR | EnvFlags::NO_META_SYNC;
        if super::unsafe_no_fsync() {
            flags |= EnvFlags::NO_SYNC;
        }
        let env = unsafe { opts.flags(flags).open(path) }
            .with_context(|| format!("open backend {}", path.display()))?;
        let wtxn = env.write_txn()?;
        let (kv, meta, lease) = env
            .create_databases_and_commit(wtxn, |opener, wtxn| -> heed::Result<_> {
                let kv = opener.create_database::<Bytes, Bytes>(wtxn, Some(KEY_TABLE))?;
                let meta = opener.create_database::<Bytes, Bytes>(wtxn, Some(META_TABLE))?;
                let lease = opener.create_database::<Bytes, Bytes>(wtxn, Some(LEASE_TABLE))?;
                Ok(heed::CommitOrAbort::<_, ()>::Commit((kv, meta, lease)))
            })?
            .unwrap_commit();
        // SAFETY: see the struct comment; the handles are plain (env id,
        // dbi) pairs stored next to the Env that outlives their uses.
        let (kv, meta, lease) = unsafe {
            (
                std::mem::transmute::<Table<'_>, Table<'static>>(kv),
                std::mem::transmute::<Table<'_>, Table<'static>>(meta),
                std::mem::transmute::<Table<'_>, Table<'static>>(lease),
            )
        };
        Ok(Backend {
            env,
            kv,
            meta,
            lease,
        })
    }
}

impl Backend {
    /// Makes every commit so far durable (LMDB's forced sync), unless
    /// --unsafe-no-fsync says nothing is synced.
    pub fn sync(&self) -> heed::Result<()> {
        if super::unsafe_no_fsync() {
            return Ok(());
        }
        self.env.force_sync()
    }
}

/// Opens another backend file (a snapshot) for reading only, without a
/// lock file. Close it with `prepare_for_closing` when done.
pub fn open_read_only(path: &Path) -> anyhow::Result<Env<WithoutTls>> {
    use anyhow::Context as _;
    let mut opts = EnvOpenOptions::new().read_txn_without_tls();
    opts.map_size(DEFAULT_MAP_SIZE).max_dbs(8);
    // SAFETY: snapshot files are opened once, read, and closed; nothing
    // else in the process opens them.
    unsafe {
        opts.flags(EnvFlags::NO_SUB_DIR | EnvFlags::READ_ONLY | EnvFlags::NO_LOCK)
            .open(path)
    }
    .with_context(|| format!("open backend snapshot {}", path.display()))
}

/// The MVCC tables of a backend opened with `open_read_only`, in the order
/// key, meta, lease; an error names a missing one.
pub type Tables<'e> = [Database<'e, Bytes, Bytes>; 3];

pub fn open_tables<'e>(env: &'e Env<WithoutTls>, path: &Path) -> anyhow::Result<Tables<'e>> {
    let rtxn = env.read_txn()?;
    let opened = env
        .open_databases_and_commit(rtxn, |opener, rtxn| -> heed::Result<_> {
            let kv = opener.open_database::<Bytes, Bytes>(rtxn, Some(KEY_TABLE))?;
            let meta = opener.open_database::<Bytes, Bytes>(rtxn, Some(META_TABLE))?;
            let lease = opener.open_database::<Bytes, Bytes>(rtxn, Some(LEASE_TABLE))?;
            Ok(heed::CommitOrAbort::<_, ()>::Commit((kv, meta, lease)))
        })?
        .unwrap_commit();
    match opened {
        (Some(kv), Some(meta), Some(lease)) => Ok([kv, meta, lease]),
        _ => anyhow::bail!("{} is not a backend: a table is missing", path.display()),
    }
}
