//! Online defragmentation: give the backend's free pages back to the
//! filesystem without stopping readers and while holding writers back only
//! for the last few changes.
//!
//! etcd stops the world for the whole copy (etcd issue #9222). Here:
//! 1. LMDB's compacting copy runs inside a read txn of the live backend;
//!    the apply thread keeps writing meanwhile.
//! 2. The copy catches up without any lock: records are keyed by revision,
//!    so what was written since is exactly the records above the copy's
//!    revision; compactions since the start are journaled by `WriteTxn`
//!    (their dropped revisions); the small meta and lease tables are copied
//!    whole.
//! 3. For the last catch-up the defrag holds the old backend's LMDB write
//!    lock, so the apply thread waits only for that short step; then the
//!    copy is synced, renamed over `db` and swapped in. Readers on the old
//!    backend finish on it; it closes when the last one lets go.
//!
//! A crash before the rename leaves `db` untouched (the stray copy is
//! removed at the next start); after it, `db` is a complete, synced backend.

use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use heed::{RoTxn, RwTxn};

use super::revision::Revision;
use super::store::{Store, META_CURRENT_REV};
use super::Error;
use crate::storage::backend::Backend;

/// Prefix of the copies a defrag writes next to `db`.
const COPY_PREFIX: &str = "db.defrag-";

/// Unlocked catch-up rounds before the locked one: each round copies what
/// was written during the previous one, so the locked round is short.
const UNLOCKED_ROUNDS: usize = 2;

/// What a defrag did, for logs and the benchmark.
#[derive(Debug, Clone)]
pub struct DefragStats {
    pub size_before: i64,
    pub size_after: i64,
    pub size_in_use: i64,
    pub took: Duration,
    /// How long writers were held back (the locked catch-up and swap).
    pub write_stall: Duration,
}

/// Removes copies left by a defrag that a crash interrupted.
pub fn remove_stray_copies(db_path: &Path) {
    let Some(dir) = db_path.parent() else {
        return;
    };
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        if e.file_name().to_string_lossy().starts_with(COPY_PREFIX) {
            tracing::info!(path = %e.path().display(), "removing the copy of an interrupted defrag");
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Store {
    /// Rewrites the backend compactly and swaps it in (see the module doc).
    /// One defrag runs at a time; a second caller waits for the first.
    /// Blocking: call from a blocking thread, never from the async runtime.
    pub fn defrag(&self) -> Result<DefragStats, Error> {
        let _one = self.defrag_lock.lock().unwrap_or_else(|e| e.into_inner());
        let started = Instant::now();
        let old = self.backend();
        let size_before = old.env.real_disk_size()? as i64;
        let n = self.defrag_seq.fetch_add(1, Ordering::Relaxed);
        let copy_path = sibling(
            &self.db_path,
            &format!("{COPY_PREFIX}{}-{n}", std::process::id()),
        );
        remove_file_and_lock(&copy_path);
        let rewrites = self.rewrites.load(Ordering::Acquire);
        *self
            .defrag_journal
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Vec::new());
        let result = self.defrag_into(&old, &copy_path, rewrites);
        *self
            .defrag_journal
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        let (new, write_stall) = match result {
            Ok(r) => r,
            Err(e) => {
                remove_file_and_lock(&copy_path);
                return Err(e);
            }
        };
        let size_after = new.env.real_disk_size()? as i64;
        let size_in_use = self.db_size().map(|(_, u)| u).unwrap_or(size_after);
        drop(old);
        // The copy's lock file is not needed once the copy is `db`; LMDB
        // keeps using its open descriptor.
        Ok(DefragStats {
            size_before,
            size_after,
            size_in_use,
            took: started.elapsed(),
            write_stall,
        })
    }

    fn defrag_into(
        &self,
        old: &Arc<Backend>,
        copy_path: &Path,
        rewrites: u64,
    ) -> Result<(Arc<Backend>, Duration), Error> {
        let io = |what: &str, e: std::io::Error| Error::Corrupt(format!("defrag: {what}: {e}"));
        crate::failpoint!("defragBeforeCopy");
        copy_with_steady_writeback(&old.env, copy_path, &self.db_path)?;
        let map_size = old.env.info().map_size;
        let new = Backend::open(copy_path, map_size)
            .map_err(|e| Error::Corrupt(format!("defrag: open the copy: {e:#}")))?;
        let mut copied_to = {
            let rtxn = new.env.read_txn()?;
            current_rev(&new, &rtxn)?
        };
        // Unlocked rounds: catch up on what the apply thread wrote meanwhile.
        for _ in 0..UNLOCKED_ROUNDS {
            let rtxn = old.env.read_txn()?;
            let mut wtxn = new.env.write_txn()?;
            copied_to = self.catch_up(old, &rtxn, &new, &mut wtxn, copied_to)?;
            wtxn.commit()?;
        }
        // The locked round: the apply thread waits on this write lock,
        // which it lets go once it commits its open txn (asked for here).
        let stall_started = Instant::now();
        self.defrag_waiting.store(true, Ordering::Release);
        let hold = old.env.write_txn();
        self.defrag_waiting.store(false, Ordering::Release);
        let hold = hold?;
        if self.rewrites.load(Ordering::Acquire) != rewrites {
            hold.abort();
            return Err(Error::Corrupt(
                "defrag: a snapshot from the leader replaced the backend meanwhile; try again"
                    .into(),
            ));
        }
        let mut wtxn = new.env.write_txn()?;
        self.catch_up(old, &hold, &new, &mut wtxn, copied_to)?;
        wtxn.commit()?;
        new.sync()?;
        crate::failpoint!("defragBeforeRename");
        std::fs::rename(copy_path, &self.db_path).map_err(|e| io("rename the copy", e))?;
        // From here `db` is the copy. Failing now and going on would leave
        // the apply thread writing into the old, unlinked file, whose
        // writes a restart would never see: stop instead, and let the
        // restart open the copy and replay the WAL.
        if let Some(dir) = self.db_path.parent() {
            if let Err(e) = std::fs::File::open(dir).and_then(|d| d.sync_all()) {
                crate::fatal(&format!("defrag: sync the data dir after the rename: {e}"));
            }
        }
        let new = Arc::new(new);
        self.swap_backend(new.clone());
        hold.abort();
        let stall = stall_started.elapsed();
        let _ = std::fs::remove_file(lock_path(copy_path));
        Ok((new, stall))
    }

    /// Brings `new` up to the state `rtxn` sees of `old`: records above
    /// `from`, compactions journaled since the defrag began, and the whole
    /// meta and lease tables. Returns the revision now copied.
    fn catch_up(
        &self,
        old: &Backend,
        rtxn: &RoTxn<'_>,
        new: &Backend,
        wtxn: &mut RwTxn<'_>,
        from: i64,
    ) -> Result<i64, Error> {
        let start = Revision::new(from + 1, 0).to_bytes();
        let bounds = (Bound::Included(&start[..]), Bound::Unbounded);
        for item in old.kv.range(rtxn, &bounds)? {
            let (k, v) = item?;
            new.kv.put(wtxn, k, v)?;
        }
        let dropped = self
            .defrag_journal
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        for r in dropped {
            new.kv.delete(wtxn, &r.to_bytes())?;
        }
        for (from_table, to_table) in [(old.meta, new.meta), (old.lease, new.lease)] {
            to_table.clear(wtxn)?;
            for item in from_table.iter(rtxn)? {
                let (k, v) = item?;
                to_table.put(wtxn, k, v)?;
            }
        }
        current_rev(old, rtxn)
    }
}

/// How much of the copy may be written but not yet on its way to disk.
const WRITEBACK_STEP: u64 = 8 << 20;

/// LMDB's compacting copy, written out with bounded dirty data: LMDB writes
/// into a pipe, and every `WRITEBACK_STEP` bytes we start writeback of the
/// range just written and wait for the one before (sync_file_range). Left
/// to the page cache, the copy's GiBs would be flushed in one burst, and
/// the WAL's fdatasyncs (every acknowledged write) would queue behind it.
fn copy_with_steady_writeback(
    env: &heed::Env<heed::WithoutTls>,
    path: &Path,
    mode_of: &Path,
) -> Result<(), Error> {
    use std::io::{Read as _, Write as _};
    use std::os::fd::AsRawFd as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    let io = |what: &str, e: std::io::Error| Error::Corrupt(format!("defrag: {what}: {e}"));
    // never wider than etcd's 0600, even if an older version left the file wider
    let mode = std::fs::metadata(mode_of)
        .map(|m| m.permissions().mode() & crate::storage::private::FILE_MODE)
        .unwrap_or(crate::storage::private::FILE_MODE);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| io("create the copy", e))?;
    let (rd, wr) =
        nix::unistd::pipe().map_err(|e| io("pipe", std::io::Error::from_raw_os_error(e as i32)))?;
    std::thread::scope(|scope| {
        let copier = scope.spawn(move || {
            let mut wr = std::fs::File::from(wr);
            env.copy_to_file(&mut wr, heed::CompactionOption::Enabled)
        });
        let mut input = std::fs::File::from(rd);
        let pumped = (|| -> std::io::Result<()> {
            let fd = out.as_raw_fd();
            let mut buf = vec![0u8; 1 << 20];
            let (mut written, mut started) = (0u64, 0u64);
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                out.write_all(&buf[..n])?;
                written += n as u64;
                if written - started >= WRITEBACK_STEP {
                    // SAFETY: plain syscalls on a descriptor we own.
                    unsafe {
                        nix::libc::sync_file_range(
                            fd,
                            started as i64,
                            (written - started) as i64,
                            nix::libc::SYNC_FILE_RANGE_WRITE,
                        );
                        if started > 0 {
                            nix::libc::sync_file_range(
                                fd,
                                0,
                                started as i64,
                                nix::libc::SYNC_FILE_RANGE_WAIT_BEFORE
                                    | nix::libc::SYNC_FILE_RANGE_WRITE
                                    | nix::libc::SYNC_FILE_RANGE_WAIT_AFTER,
                            );
                        }
                    }
                    started = written;
                }
            }
        })();
        // Closing our end makes a copier still writing fail instead of
        // blocking forever.
        drop(input);
        let copied = copier
            .join()
            .map_err(|_| Error::Corrupt("defrag: the copy thread panicked".into()))?;
        copied?;
        pumped.map_err(|e| io("write the copy", e))
    })?;
    out.sync_data().map_err(|e| io("sync the copy", e))
}

fn current_rev(b: &Backend, txn: &RoTxn<'_>) -> Result<i64, Error> {
    Ok(match b.meta.get(txn, META_CURRENT_REV)? {
        Some(v) => v
            .try_into()
            .map(i64::from_be_bytes)
            .map_err(|_| Error::Corrupt("bad current revision".into()))?,
        None => 1,
    })
}

fn sibling(path: &Path, name: &str) -> PathBuf {
    path.with_file_name(name)
}

fn lock_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push("-lock");
    PathBuf::from(s)
}

fn remove_file_and_lock(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(lock_path(path));
}
