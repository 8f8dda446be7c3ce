//! The multi-version store: every change is a record in LMDB keyed by its
//! revision; the in-memory `KeyIndex` maps keys to their revisions.
//!
//! Record layout (value of the `key` table): one kind byte (`0` put, `1`
//! delete) followed by the protobuf `mvccpb.KeyValue` of the change.
//!
//! The writer's txn stays open across raft batches (`overlay.rs`): readers
//! load the published overlay, then open an LMDB read txn; the overlay's
//! store revision (or the txn's, if a commit came in between) bounds what
//! they see in the index, so index entries the writer adds before it
//! publishes are invisible. Records above the txn's own revision come from
//! the overlay. Compaction drops index entries only after its LMDB commit,
//! and a reader whose snapshot predates a compaction retries once.

use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use arc_swap::ArcSwap;

use heed::types::Bytes;
use heed::{Database, Env, RoTxn, RwTxn, WithoutTls};
use prost::Message as _;

use super::key_index::{Change, KeyIndex, KeyRange};
use super::overlay::{Overlay, Record};
use super::revision::Revision;
use super::Error;
use crate::proto::internal::LeaseRecord;
use crate::proto::mvccpb::{event::EventType, Event, KeyValue};
use crate::storage::backend::Backend;

pub(super) const RECORD_PUT: u8 = 0;
pub(super) const RECORD_DELETE: u8 = 1;

pub use crate::storage::schema::{
    META_COMPACT_REV, META_CONSISTENT_INDEX, META_CURRENT_REV, META_INDEX_GENERATION, META_TERM,
};

/// A backend and a read txn on it (the txn keeps the backend's
/// environment open; keep the `Arc` alongside).
pub type BackendView = (Arc<Backend>, RoTxn<'static, WithoutTls>);
/// A meta key and its value.
pub type MetaEntry = (Vec<u8>, Vec<u8>);
/// A live key and the lease it is attached to.
pub type LeasedKey = (Vec<u8>, i64);

pub struct Store {
    /// The current backend; an online defrag swaps in a compacted copy
    /// while readers of the old one finish undisturbed.
    backend: ArcSwap<Backend>,
    /// The key index, replaced whole when a snapshot is installed. Readers
    /// take the one whose generation matches their LMDB snapshot's
    /// `META_INDEX_GENERATION`: a read never mixes the new backend with the
    /// old index, or the reverse.
    index: ArcSwap<Generation>,
    /// Live keys attached to a lease, found by the startup scan; taken once
    /// by the lessor.
    leased_keys: std::sync::Mutex<Vec<(Vec<u8>, i64)>>,
    /// Bytes of the backend file as of the last commit (the quota check
    /// reads it on every write request; a stat per request is not needed).
    size_bytes: AtomicI64,
    /// Where the backend file lives (`member/snap/db`), whatever name the
    /// open environment was created under.
    pub(super) db_path: std::path::PathBuf,
    /// Online defrag state (see `defrag.rs`): one at a time, a sequence for
    /// copy names, the revisions compactions dropped while one runs, and a
    /// count of wholesale rewrites (snapshot installs) it must not miss.
    pub(super) defrag_lock: std::sync::Mutex<()>,
    pub(super) defrag_seq: std::sync::atomic::AtomicU64,
    pub(super) defrag_journal: std::sync::Mutex<Option<Vec<Revision>>>,
    pub(super) rewrites: std::sync::atomic::AtomicU64,
    /// Revisions compactions dropped from the index that are still in the
    /// backend: the apply thread deletes them in batches between entries
    /// (`compact_step`), so one large compaction never stalls writes.
    /// Not persisted: at start (and after a snapshot install) the index is
    /// built from every record and compacted again, which finds them.
    pending_compaction: std::sync::Mutex<PendingCompaction>,
    /// The newest compaction revision whose records are all deleted (a
    /// physical compaction answers once this reaches its revision).
    physically_compacted: tokio::sync::watch::Sender<i64>,
    /// What readers see of the writer's uncommitted txn.
    overlay: ArcSwap<Overlay>,
    /// The raft index of the last LMDB commit, and a request to commit
    /// the open txn soon (a barrier: Hash, client snapshots, defrag).
    committed_index: tokio::sync::watch::Sender<u64>,
    commit_wanted: std::sync::atomic::AtomicBool,
    /// A defrag waits for the write lock (its locked round): the apply
    /// thread commits and lets it in before it begins another txn.
    pub(super) defrag_waiting: std::sync::atomic::AtomicBool,
}

/// A physical compaction in progress.
#[derive(Default)]
struct PendingCompaction {
    revisions: std::collections::VecDeque<Revision>,
    /// The newest compaction revision scheduled, and when it was applied.
    rev: i64,
    since: Option<std::time::Instant>,
}

/// Records one `history` call reads at most (then it stops at the next
/// revision boundary and says where to go on).
const HISTORY_SCAN_BUDGET: usize = 16 * 1024;

/// Keys a range visits per hold of the index lock.
const INDEX_CHUNK: usize = 1024;

/// A key index and the backend generation it describes.
struct Generation {
    number: u64,
    index: RwLock<KeyIndex>,
    /// Highest compaction revision whose entries may be gone from `index`
    /// (published before they go).
    compacted: AtomicI64,
}

/// All changes one request made, at one revision: what watchers receive
/// together.
#[derive(Debug, Clone)]
pub struct RevEvents {
    pub rev: i64,
    pub events: Vec<Event>,
}

/// What the apply loop needs to resume after a restart.
#[derive(Debug, Clone, Copy, Default)]
pub struct Applied {
    pub index: u64,
    pub term: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RangeOptions {
    /// Revision to read at; 0 or less means the newest.
    pub rev: i64,
    /// 0 means no limit.
    pub limit: i64,
    pub count_only: bool,
}

#[derive(Debug, Default)]
pub struct RangeResult {
    pub kvs: Vec<KeyValue>,
    /// Keys in the range at the read revision, ignoring `limit`.
    pub count: i64,
    /// The store's current revision (what etcd puts in the header).
    pub rev: i64,
}

impl Store {
    pub fn open(backend: Backend) -> Result<Store, Error> {
        let (mut index, leased) = scan(&backend.env, backend.kv)?;
        let (number, compacted, current, applied) = {
            let rtxn = backend.env.read_txn()?;
            (
                meta_i64(&backend, &rtxn, META_INDEX_GENERATION, 0)? as u64,
                meta_i64(&backend, &rtxn, META_COMPACT_REV, -1)?,
                meta_i64(&backend, &rtxn, META_CURRENT_REV, 1)?,
                meta_i64(&backend, &rtxn, META_CONSISTENT_INDEX, 0)? as u64,
            )
        };
        // records an unfinished compaction left behind
        let pending = compact_index(&mut index, compacted);
        let db_path = backend.env.path().to_path_buf();
        let store = Store {
            db_path,
            defrag_lock: Default::default(),
            defrag_seq: Default::default(),
            defrag_journal: Default::default(),
            rewrites: Default::default(),
            backend: ArcSwap::from_pointee(backend),
            index: ArcSwap::from_pointee(Generation {
                number,
                index: RwLock::new(index),
                compacted: AtomicI64::new(0),
            }),
            leased_keys: std::sync::Mutex::new(leased),
            size_bytes: AtomicI64::new(0),
            physically_compacted: tokio::sync::watch::Sender::new(
                if pending.revisions.is_empty() {
                    compacted
                } else {
                    0
                },
            ),
            pending_compaction: std::sync::Mutex::new(pending),
            overlay: ArcSwap::from_pointee(Overlay::committed(number, current, compacted)),
            committed_index: tokio::sync::watch::Sender::new(applied),
            commit_wanted: Default::default(),
            defrag_waiting: Default::default(),
        };
        store.refresh_size();
        store
            .index
            .load()
            .compacted
            .store(compacted, Ordering::Release);
        Ok(store)
    }

    /// Replaces the whole MVCC state with the one in the backend file at
    /// `path` (a snapshot from the leader), in one transaction; meta keys
    /// named in `keep` (this member's identity) stay as they are. The key
    /// index is rebuilt; leased keys are left for `take_leased_keys`.
    /// Call from the apply thread only.
    pub fn install_snapshot(
        &self,
        path: &std::path::Path,
        keep: &[&[u8]],
    ) -> Result<Applied, Error> {
        let src = crate::storage::backend::open_read_only(path)
            .map_err(|e| Error::Corrupt(format!("{e:#}")))?;
        let result = (|| -> Result<Applied, Error> {
            let [skv, smeta, slease] = crate::storage::backend::open_tables(&src, path)
                .map_err(|e| Error::Corrupt(format!("{e:#}")))?;
            // The new index is built before the install commits, so that
            // readers wait only between the commit and the swap below.
            let (mut index, leased) = scan(&src, skv)?;
            let number = self.index.load().number + 1;
            let stxn = src.read_txn()?;
            // A defrag in progress must not swap in a copy of what this
            // install replaces.
            self.rewrites.fetch_add(1, Ordering::AcqRel);
            let (b, mut txn) = self.begin_write()?;
            let mut kept = Vec::new();
            for k in keep {
                if let Some(v) = b.meta.get(&txn, k)? {
                    kept.push((k.to_vec(), v.to_vec()));
                }
            }
            b.kv.clear(&mut txn)?;
            b.meta.clear(&mut txn)?;
            b.lease.clear(&mut txn)?;
            for (from, to) in [(skv, b.kv), (smeta, b.meta), (slease, b.lease)] {
                for item in from.iter(&stxn)? {
                    let (k, v) = item?;
                    to.put(&mut txn, k, v)?;
                }
            }
            for (k, v) in &kept {
                b.meta.put(&mut txn, k, v)?;
            }
            b.meta.put(
                &mut txn,
                META_INDEX_GENERATION,
                &(number as i64).to_be_bytes(),
            )?;
            let applied = Applied {
                index: meta_i64(&b, &txn, META_CONSISTENT_INDEX, 0)? as u64,
                term: meta_i64(&b, &txn, META_TERM, 0)? as u64,
            };
            let compacted = meta_i64(&b, &txn, META_COMPACT_REV, -1)?;
            let current = meta_i64(&b, &txn, META_CURRENT_REV, 1)?;
            // the leader's file may hold records its compaction had not
            // deleted yet: this member deletes them
            let pending = compact_index(&mut index, compacted);
            debug_assert_eq!(self.overlay.load().bytes(), 0, "commit before installing");
            txn.commit()?;
            if pending.revisions.is_empty() {
                self.physically_compacted.send_replace(compacted);
            }
            *self.pending() = pending;
            self.index.store(Arc::new(Generation {
                number,
                index: RwLock::new(index),
                compacted: AtomicI64::new(compacted),
            }));
            self.overlay
                .store(Arc::new(Overlay::committed(number, current, compacted)));
            self.committed_index.send_replace(applied.index);
            self.refresh_size();
            *self.leased_keys.lock().expect("leased keys lock") = leased;
            Ok(applied)
        })();
        src.prepare_for_closing().wait();
        result
    }

    /// Meta keys starting with `prefix`, with their values.
    pub fn meta_with_prefix(&self, prefix: &[u8]) -> Result<Vec<MetaEntry>, Error> {
        let b = self.backend.load();
        let rtxn = b.env.read_txn()?;
        let mut out = Vec::new();
        for item in b.meta.prefix_iter(&rtxn, prefix)? {
            let (k, v) = item?;
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }

    /// The current backend (a defrag may replace it at any time; the
    /// returned one stays open while held).
    pub fn backend(&self) -> Arc<Backend> {
        self.backend.load_full()
    }

    /// The last raft entry whose effects are in this store.
    pub fn applied(&self) -> Result<Applied, Error> {
        let b = self.backend.load();
        let rtxn = b.env.read_txn()?;
        Ok(Applied {
            index: meta_i64(&b, &rtxn, META_CONSISTENT_INDEX, 0)? as u64,
            term: meta_i64(&b, &rtxn, META_TERM, 0)? as u64,
        })
    }

    /// Live keys with their lease, as found at startup (once).
    pub fn take_leased_keys(&self) -> Vec<(Vec<u8>, i64)> {
        std::mem::take(&mut *self.leased_keys.lock().expect("leased keys lock"))
    }

    /// Every lease in the lease table.
    pub fn leases(&self) -> Result<Vec<LeaseRecord>, Error> {
        let b = self.backend.load();
        let rtxn = b.env.read_txn()?;
        let mut out = Vec::new();
        for item in b.lease.iter(&rtxn)? {
            let (_, v) = item?;
            out.push(
                LeaseRecord::decode(v)
                    .map_err(|e| Error::Corrupt(format!("bad lease record: {e}")))?,
            );
        }
        Ok(out)
    }

    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let b = self.backend.load();
        let rtxn = b.env.read_txn()?;
        Ok(b.meta.get(&rtxn, key)?.map(<[u8]>::to_vec))
    }

    /// A consistent read snapshot: what the apply thread has published,
    /// committed or not.
    pub fn read(&self) -> Result<ReadView<'_>, Error> {
        loop {
            // the overlay first, the txn second (see overlay.rs)
            let overlay = self.overlay.load_full();
            let backend = self.backend.load_full();
            // The txn holds its own handle on the environment, so a defrag
            // swapping the backend cannot close it under this reader.
            let txn = backend.env.clone().static_read_txn()?;
            let committed = meta_i64(&backend, &txn, META_CURRENT_REV, 1)?;
            let wanted = meta_i64(&backend, &txn, META_INDEX_GENERATION, 0)? as u64;
            let current = committed.max(overlay.current);
            let compacted = meta_i64(&backend, &txn, META_COMPACT_REV, -1)?.max(overlay.compacted);
            let index = self.index.load_full();
            if index.number != wanted || overlay.generation != wanted {
                // An install is between its commit and its index swap (the
                // txn is newer: a moment), or finished after the txn began
                // (the txn is older: a new one matches).
                if index.number < wanted {
                    std::thread::yield_now();
                }
                continue;
            }
            // The index has dropped revisions this snapshot may still need:
            // a compaction committed after our txn began. Take a newer one.
            if index.compacted.load(Ordering::Acquire) > compacted {
                continue;
            }
            return Ok(ReadView {
                store: self,
                index,
                txn,
                backend,
                overlay,
                committed,
                current,
                compacted,
            });
        }
    }

    /// A read transaction on the current backend in which no record a
    /// compaction dropped is left (what etcd's backend holds after its
    /// compaction); `None` while a compaction's deletions are still under
    /// way: wait for `physically_compacted(compacted_rev())` and ask again.
    pub fn compacted_read(&self) -> Result<Option<BackendView>, Error> {
        // read before the txn begins: deletions it counts are in the txn
        let deleted_through = *self.physically_compacted.borrow();
        let backend = self.backend.load_full();
        let txn = backend.env.clone().static_read_txn()?;
        let compacted = meta_i64(&backend, &txn, META_COMPACT_REV, -1)?;
        Ok((deleted_through >= compacted).then_some((backend, txn)))
    }

    /// Waits until the backend has committed every entry up to `index` (a
    /// barrier before reading committed state directly: Hash, client
    /// snapshots), asking the apply thread to commit its open txn now.
    pub async fn committed_through(&self, index: u64) {
        let mut committed = self.committed_index.subscribe();
        if *committed.borrow() >= index {
            return;
        }
        self.want_commit();
        let _ = committed.wait_for(|&c| c >= index).await;
    }

    /// Asks the apply thread to commit its open txn at its next turn.
    pub fn want_commit(&self) {
        self.commit_wanted.store(true, Ordering::Release);
    }

    /// Whether a commit was asked for since the last call (the apply
    /// thread's side of `want_commit`).
    pub fn take_commit_wanted(&self) -> bool {
        self.commit_wanted.swap(false, Ordering::AcqRel)
    }

    /// Whether a defrag waits for the backend's write lock.
    pub fn defrag_waiting(&self) -> bool {
        self.defrag_waiting.load(Ordering::Acquire)
    }

    /// Bytes of records written but not yet committed.
    pub fn uncommitted_bytes(&self) -> usize {
        self.overlay.load().bytes()
    }

    /// Starts the only write transaction. Call from the apply thread only:
    /// an LMDB write txn must end on the thread that began it.
    pub fn write(&self) -> Result<WriteTxn<'_>, Error> {
        let (backend, txn) = self.begin_write()?;
        let current = meta_i64(&backend, &txn, META_CURRENT_REV, 1)?;
        let compacted = meta_i64(&backend, &txn, META_COMPACT_REV, -1)?;
        Ok(WriteTxn {
            store: self,
            txn,
            backend,
            current,
            compacted,
            sub: 0,
            records: Vec::new(),
            touched: Vec::new(),
            request_events: Vec::new(),
            events: Vec::new(),
            compaction: None,
        })
    }

    /// etcd's Hash: a CRC32C over the whole backend, leaving out the meta
    /// keys named in `skip` (what differs between members), and the
    /// revision it reflects.
    pub fn hash(&self, skip: &[&[u8]]) -> anyhow::Result<(u32, i64)> {
        let b = self.backend.load_full();
        let tables = crate::storage::hash::tables(&b.env)?;
        let rtxn = b.env.read_txn()?;
        let rev = meta_i64(&b, &rtxn, META_CURRENT_REV, 1)?;
        let h = crate::storage::hash::backend_hash(&rtxn, &tables, skip)?;
        Ok((h.hash, rev))
    }

    /// The backend file's path (`member/snap/db`).
    pub fn db_path(&self) -> &std::path::Path {
        &self.db_path
    }

    /// Makes `new` the backend of every later read and write.
    pub(super) fn swap_backend(&self, new: Arc<Backend>) {
        self.backend.store(new);
        self.refresh_size();
    }

    /// A write txn on the current backend. The caller must keep the
    /// returned `Arc` alive longer than the txn (declare it after the txn
    /// in a struct, or drop the txn first).
    fn begin_write(&self) -> Result<(Arc<Backend>, RwTxn<'static>), Error> {
        loop {
            let backend = self.backend.load_full();
            let txn = backend.env.write_txn()?;
            // SAFETY: the txn borrows the environment inside `backend`,
            // which the caller keeps alive longer than the txn (see above).
            let txn: RwTxn<'static> = unsafe { std::mem::transmute(txn) };
            // A defrag that swapped backends holds the old one's write lock
            // until the swap; whoever waited on it must use the new one.
            if Arc::ptr_eq(&backend, &self.backend.load()) {
                return Ok((backend, txn));
            }
            txn.abort();
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, PendingCompaction> {
        self.pending_compaction
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a compaction still has records to delete.
    pub fn compaction_pending(&self) -> bool {
        !self.pending().revisions.is_empty()
    }

    /// etcd's line (and fields) once a compaction's records are gone.
    fn finish_compaction(&self) {
        let mut pending = self.pending();
        let took = pending
            .since
            .take()
            .map(|s| s.elapsed())
            .unwrap_or_default();
        let rev = pending.rev;
        drop(pending);
        self.physically_compacted.send_replace(rev);
        tracing::info!(
            compact_revision = rev,
            took = ?took,
            "finished scheduled compaction"
        );
    }

    /// Waits until every record a compaction at `rev` drops is deleted
    /// (etcd's physical compaction answers then).
    pub async fn physically_compacted(&self, rev: i64) {
        let mut done = self.physically_compacted.subscribe();
        let _ = done.wait_for(|&r| r >= rev).await;
    }

    /// Deletes up to `limit` records of a pending compaction in one
    /// transaction (etcd's compaction batch). Call from the apply thread
    /// only, between applied batches. Returns whether more remain.
    pub fn compact_step(&self, limit: usize) -> Result<bool, Error> {
        let batch: Vec<Revision> = {
            let mut pending = self.pending();
            let n = limit.max(1).min(pending.revisions.len());
            pending.revisions.drain(..n).collect()
        };
        if batch.is_empty() {
            return Ok(false);
        }
        let (backend, mut txn) = self.begin_write()?;
        for r in &batch {
            // gone already when a defrag's copy replayed it
            backend.kv.delete(&mut txn, &r.to_bytes())?;
        }
        // The journal is looked at and the batch committed under one lock:
        // a defrag turns its journal on under it before its copy takes its
        // snapshot, so a batch is either committed before that snapshot or
        // journaled for the copy, never neither (then the copy would bring
        // the deleted records back, for good). Lock order: LMDB's write
        // lock, then the journal's, as in the defrag's locked round.
        let mut journal = self
            .defrag_journal
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(journal) = journal.as_mut() {
            journal.extend(batch.iter().copied());
        }
        crate::failpoint!("compactBeforeCommitBatch");
        txn.commit()?;
        drop(journal);
        crate::failpoint!("compactAfterCommitBatch");
        crate::metrics::mvcc()
            .db_compaction_keys_total
            .inc_by(batch.len() as u64);
        self.refresh_size();
        if self.compaction_pending() {
            return Ok(true);
        }
        self.finish_compaction();
        Ok(false)
    }

    /// Bytes of the backend file as of the last commit.
    pub fn size_bytes(&self) -> i64 {
        self.size_bytes.load(Ordering::Acquire)
    }

    fn refresh_size(&self) {
        if let Ok(n) = self.backend.load().env.real_disk_size() {
            self.size_bytes.store(n as i64, Ordering::Release);
        }
    }

    /// Bytes of the backend file, and bytes of it holding live pages
    /// (etcd's dbSize and dbSizeInUse).
    pub fn db_size(&self) -> Result<(i64, i64), Error> {
        let b = self.backend.load();
        let env = &b.env;
        let file = env.real_disk_size()? as i64;
        let rtxn = env.read_txn()?;
        let mut pages = 2u64; // LMDB's two meta pages
        let mut page_size = 4096u64;
        for st in [
            b.kv.stat(&rtxn)?,
            b.meta.stat(&rtxn)?,
            env.unnamed_database_stat(),
        ] {
            page_size = u64::from(st.page_size);
            pages += (st.branch_pages + st.leaf_pages + st.overflow_pages) as u64;
        }
        Ok((file, (pages * page_size) as i64))
    }

    /// Runs `f` on the current key index under its read lock.
    fn with_index<R>(&self, f: impl FnOnce(&KeyIndex) -> R) -> R {
        f(&self.index.load().index.read().expect("index lock"))
    }

    /// Runs `f` on the current key index under its write lock (the apply
    /// thread's changes).
    fn with_index_mut<R>(&self, f: impl FnOnce(&mut KeyIndex) -> R) -> R {
        f(&mut self.index.load().index.write().expect("index lock"))
    }

    /// Number of live keys (for metrics and tests).
    pub fn live_keys(&self) -> usize {
        self.with_index(|index| index.live_keys())
    }

    /// Shared by readers and the writer: keys in `range` at `rev`, their
    /// records from `txn` or, above `overlay`'s commit revision, from the
    /// overlay (the writer's own txn sees everything: `None`).
    #[allow(clippy::too_many_arguments)]
    fn range_at(
        &self,
        generation: &Generation,
        backend: &Backend,
        txn: &RoTxn<'_>,
        overlay: Option<(&Overlay, i64)>,
        range: &KeyRange,
        rev: i64,
        opts: &RangeOptions,
    ) -> Result<(Vec<KeyValue>, i64), Error> {
        let mut found: Vec<(Vec<u8>, Change)> = Vec::new();
        let mut count = 0i64;
        let limit = if opts.limit > 0 {
            usize::try_from(opts.limit).unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        // The walk takes the index lock for INDEX_CHUNK keys at a time: a
        // range over the whole keyspace never holds the apply thread's
        // writes back for its whole length.
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut in_chunk = 0;
            let mut stopped_at = None;
            {
                let index = generation.index.read().expect("index lock");
                index.visit_after(range, rev, after.as_deref(), |k, c| {
                    count += 1;
                    if !opts.count_only && found.len() < limit {
                        found.push((k.to_vec(), c));
                    }
                    in_chunk += 1;
                    if in_chunk == INDEX_CHUNK {
                        stopped_at = Some(k.to_vec());
                        return false;
                    }
                    true
                });
            }
            // A compaction past `rev` that reached the index before or
            // during this chunk dropped entries the walk needed (compaction
            // publishes its revision before it removes anything).
            if generation.compacted.load(Ordering::Acquire) > rev {
                return Err(Error::Compacted);
            }
            let Some(last) = stopped_at else {
                break;
            };
            after = Some(last);
        }
        let mut kvs = Vec::with_capacity(found.len());
        for (key, change) in found {
            let raw = match overlay {
                Some((o, committed)) if change.rev.main > committed => o.get(change.rev),
                _ => backend.kv.get(txn, &change.rev.to_bytes())?,
            };
            let raw = raw.ok_or_else(|| {
                Error::Corrupt(format!(
                    "index names revision {}.{} of key {:?} but the backend lacks it",
                    change.rev.main,
                    change.rev.sub,
                    String::from_utf8_lossy(&key)
                ))
            })?;
            let (_, kv) = decode_record(raw)?;
            kvs.push(kv);
        }
        Ok((kvs, count))
    }
}

fn meta_i64(b: &Backend, txn: &RoTxn<'_>, key: &[u8], default: i64) -> Result<i64, Error> {
    match b.meta.get(txn, key)? {
        None => Ok(default),
        Some(v) => v
            .try_into()
            .map(i64::from_be_bytes)
            .map_err(|_| Error::Corrupt(format!("bad meta value for {key:?}"))),
    }
}

/// Drops from a freshly built index what the compaction at `compacted`
/// drops, and returns those records for deletion: a compaction whose
/// records were not all deleted before a restart (or in a leader's
/// snapshot) is finished this way.
fn compact_index(index: &mut KeyIndex, compacted: i64) -> PendingCompaction {
    if compacted <= 0 {
        return PendingCompaction::default();
    }
    let dropped = index.compactable(compacted);
    index.remove(&dropped);
    if !dropped.is_empty() {
        tracing::info!(
            compact_revision = compacted,
            records = dropped.len(),
            "resuming an unfinished compaction"
        );
    }
    PendingCompaction {
        since: (!dropped.is_empty()).then(std::time::Instant::now),
        revisions: dropped.into_iter().map(|(_, r)| r).collect(),
        rev: compacted,
    }
}

/// Rebuilds the key index from every record, and finds the live keys that
/// carry a lease.
fn scan(
    env: &Env<WithoutTls>,
    kv: Database<Bytes, Bytes>,
) -> Result<(KeyIndex, Vec<LeasedKey>), Error> {
    let mut index = KeyIndex::default();
    let mut leases: std::collections::HashMap<Vec<u8>, i64> = Default::default();
    let rtxn = env.read_txn()?;
    for item in kv.iter(&rtxn)? {
        let (k, v) = item?;
        let rev = Revision::from_bytes(k)
            .ok_or_else(|| Error::Corrupt(format!("bad revision key {k:x?}")))?;
        let r = scan_record(v)?;
        let change = if r.deleted {
            Change {
                rev,
                create_revision: 0,
                version: 0,
            }
        } else {
            Change {
                rev,
                create_revision: r.create_revision,
                version: r.version,
            }
        };
        if r.deleted || r.lease == 0 {
            if !leases.is_empty() {
                leases.remove(r.key.as_ref());
            }
        } else {
            leases.insert(r.key.to_vec(), r.lease);
        }
        index.record(&r.key, change);
    }
    Ok((index, leases.into_iter().collect()))
}

/// The startup scan's reading of a record and prost's (`decode_record`)
/// side by side, as (deleted, key, create revision, version, lease): for
/// the fuzz target that checks they agree.
#[doc(hidden)]
pub fn scan_and_decode_record(v: &[u8]) -> [Result<RecordFields, String>; 2] {
    let scanned = scan_record(v).map(|r| {
        (
            r.deleted,
            r.key.into_owned(),
            r.create_revision,
            r.version,
            r.lease,
        )
    });
    let decoded =
        decode_record(v).map(|(d, kv)| (d, kv.key, kv.create_revision, kv.version, kv.lease));
    [scanned, decoded].map(|r| r.map_err(|e| e.to_string()))
}

/// (deleted, key, create revision, version, lease).
pub type RecordFields = (bool, Vec<u8>, i64, i64, i64);

/// What the startup scan needs of a record, read in place.
struct ScannedRecord<'a> {
    deleted: bool,
    key: std::borrow::Cow<'a, [u8]>,
    create_revision: i64,
    version: i64,
    lease: i64,
}

/// Reads a record's key, create revision, version and lease without
/// copying the key or the value (a restart reads every record). Anything
/// but the plain encoding of those fields is left to `decode_record`, so
/// both accept and refuse the same records.
fn scan_record(v: &[u8]) -> Result<ScannedRecord<'_>, Error> {
    fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
        let mut out = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *b.get(*at)?;
            *at += 1;
            // the tenth byte holds one bit (prost refuses more)
            if shift == 63 && byte > 1 {
                return None;
            }
            out |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Some(out);
            }
        }
        None
    }
    let fast = || -> Option<ScannedRecord<'_>> {
        let (&kind, body) = v.split_first()?;
        let deleted = match kind {
            RECORD_PUT => false,
            RECORD_DELETE => true,
            _ => return None,
        };
        let mut r = ScannedRecord {
            deleted,
            key: std::borrow::Cow::Borrowed(&[]),
            create_revision: 0,
            version: 0,
            lease: 0,
        };
        let mut at = 0;
        while at < body.len() {
            let tag = varint(body, &mut at)?;
            match (tag >> 3, tag & 7) {
                (1 | 5, 2) => {
                    let len = usize::try_from(varint(body, &mut at)?).ok()?;
                    let end = at.checked_add(len).filter(|&e| e <= body.len())?;
                    if tag >> 3 == 1 {
                        r.key = std::borrow::Cow::Borrowed(&body[at..end]);
                    }
                    at = end;
                }
                (n @ 2..=4 | n @ 6, 0) => {
                    let x = varint(body, &mut at)? as i64;
                    match n {
                        2 => r.create_revision = x,
                        4 => r.version = x,
                        6 => r.lease = x,
                        _ => {} // mod_revision: the revision key says it
                    }
                }
                _ => return None,
            }
        }
        Some(r)
    };
    if let Some(r) = fast() {
        return Ok(r);
    }
    // Unusual encodings (unknown fields...): prost decides, and names
    // what is wrong.
    let (deleted, kv) = decode_record(v)?;
    Ok(ScannedRecord {
        deleted,
        key: std::borrow::Cow::Owned(kv.key),
        create_revision: kv.create_revision,
        version: kv.version,
        lease: kv.lease,
    })
}

pub(super) fn decode_record(v: &[u8]) -> Result<(bool, KeyValue), Error> {
    let (&kind, body) = v
        .split_first()
        .ok_or_else(|| Error::Corrupt("empty record".into()))?;
    let kv = KeyValue::decode(body).map_err(|e| Error::Corrupt(format!("bad record: {e}")))?;
    match kind {
        RECORD_PUT => Ok((false, kv)),
        RECORD_DELETE => Ok((true, kv)),
        other => Err(Error::Corrupt(format!("unknown record kind {other}"))),
    }
}

pub(super) fn encode_record(kind: u8, kv: &KeyValue) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + kv.encoded_len());
    buf.push(kind);
    kv.encode(&mut buf).expect("Vec grows as needed");
    buf
}

/// etcd's checks of a read revision against the store's bounds.
fn check_rev(rev: i64, current: i64, compacted: i64) -> Result<i64, Error> {
    if rev > current {
        return Err(Error::FutureRev);
    }
    let rev = if rev <= 0 { current } else { rev };
    if rev < compacted {
        return Err(Error::Compacted);
    }
    Ok(rev)
}

pub struct ReadView<'s> {
    store: &'s Store,
    /// The key index that describes `txn`'s data.
    index: Arc<Generation>,
    txn: RoTxn<'static, WithoutTls>,
    backend: Arc<Backend>,
    /// The uncommitted records, loaded before `txn` began.
    overlay: Arc<Overlay>,
    /// The store revision `txn` holds: records above it are in `overlay`.
    committed: i64,
    current: i64,
    compacted: i64,
}

/// etcd's HashKV answer.
#[derive(Debug, Clone, Copy)]
pub struct KvHash {
    pub hash: u32,
    pub compact_revision: i64,
    pub hash_revision: i64,
}

impl ReadView<'_> {
    /// etcd's HashKV: CRC32C over every record up to `rev` (0: current),
    /// each as etcd's backend holds it (a 17-byte revision key, `t`-marked
    /// for tombstones, and the KeyValue), so members that applied the same
    /// history agree.
    pub fn hash_kv(&self, rev: i64) -> Result<KvHash, Error> {
        if rev > self.current {
            return Err(Error::FutureRev);
        }
        if rev > 0 && rev < self.compacted {
            return Err(Error::Compacted);
        }
        let upper = if rev > 0 { rev } else { self.current };
        let kept = self.kept_at_compaction()?;
        let mut crc = crc32c::crc32c(crate::storage::schema::KEY_TABLE.as_bytes());
        for item in self.records_from(Revision::new(0, 0))? {
            let (r, v) = item?;
            if r.main > upper {
                break;
            }
            let (deleted, kv) = decode_record(v)?;
            // at or below the compaction, what it keeps (etcd's keep set),
            // whether or not the rest is deleted yet
            if r.main <= self.compacted && kept.get(&kv.key) != Some(&(r, false)) {
                continue;
            }
            let mut key = Vec::with_capacity(18);
            key.extend_from_slice(&r.main.to_be_bytes());
            key.push(b'_');
            key.extend_from_slice(&r.sub.to_be_bytes());
            let value = if deleted {
                key.push(b't');
                KeyValue {
                    key: kv.key,
                    ..Default::default()
                }
                .encode_to_vec()
            } else {
                kv.encode_to_vec()
            };
            crc = crc32c::crc32c_append(crc, &key);
            crc = crc32c::crc32c_append(crc, &value);
        }
        Ok(KvHash {
            hash: crc,
            compact_revision: self.compacted,
            hash_revision: upper,
        })
    }

    pub fn current_rev(&self) -> i64 {
        self.current
    }

    pub fn compacted_rev(&self) -> i64 {
        self.compacted
    }

    /// Every record at or above `from` in revision order: the committed
    /// ones from the txn, then the overlay's above them.
    fn records_from(
        &self,
        from: Revision,
    ) -> Result<impl Iterator<Item = Result<(Revision, &[u8]), Error>> + '_, Error> {
        let start = from.to_bytes();
        let bounds = (Bound::Included(&start[..]), Bound::Unbounded);
        let committed = self.backend.kv.range(&self.txn, &bounds)?.map(|item| {
            let (k, v) = item?;
            let r = Revision::from_bytes(k)
                .ok_or_else(|| Error::Corrupt(format!("bad revision key {k:x?}")))?;
            Ok((r, v))
        });
        let above = from.max(Revision::new(self.committed + 1, 0));
        Ok(committed.chain(self.overlay.iter_from(above).map(Ok)))
    }

    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, Error> {
        let rev = check_rev(opts.rev, self.current, self.compacted)?;
        let (kvs, count) = self.store.range_at(
            &self.index,
            &self.backend,
            &self.txn,
            Some((&self.overlay, self.committed)),
            range,
            rev,
            &opts,
        )?;
        Ok(RangeResult {
            kvs,
            count,
            rev: self.current,
        })
    }

    /// Each key's last record at or below the compaction revision (and
    /// whether it is a tombstone): of those records, a compaction keeps
    /// exactly the ones that are not tombstones. Read from this snapshot's
    /// records, so it does not depend on how far deletion has got.
    fn kept_at_compaction(
        &self,
    ) -> Result<std::collections::HashMap<Vec<u8>, (Revision, bool)>, Error> {
        let mut last = std::collections::HashMap::new();
        if self.compacted <= 0 {
            return Ok(last);
        }
        for item in self.records_from(Revision::new(0, 0))? {
            let (r, v) = item?;
            if r.main > self.compacted {
                break;
            }
            let (deleted, kv) = decode_record(v)?;
            last.insert(kv.key, (r, deleted));
        }
        Ok(last)
    }

    /// The changes to keys in `range` at revisions `from..=current`, whole
    /// revisions at a time, stopping after the revision where `max_events`
    /// is reached. Returns them grouped by revision and the next revision to
    /// read from. `from` must not be compacted.
    pub fn history(
        &self,
        range: &KeyRange,
        from: i64,
        max_events: usize,
    ) -> Result<(Vec<RevEvents>, i64), Error> {
        if from < self.compacted {
            return Err(Error::Compacted);
        }
        let mut out: Vec<RevEvents> = Vec::new();
        let mut count = 0usize;
        let mut last_main = None;
        let records = self.records_from(Revision::new(from.max(0), 0))?;
        for (scanned, item) in records.enumerate() {
            let (rev, v) = item?;
            if rev.main > self.current {
                break;
            }
            let boundary = last_main.is_some_and(|m| m != rev.main);
            // stop at a revision boundary (a revision is never split) once
            // enough events are found or enough records read: a watcher of
            // a quiet key must not walk all of history in one step
            if boundary && (count >= max_events || scanned >= HISTORY_SCAN_BUDGET) {
                return Ok((out, rev.main));
            }
            last_main = Some(rev.main);
            let (deleted, kv) = decode_record(v)?;
            // a tombstone at the compaction revision is compacted away,
            // deleted or not yet (reads start at the compaction revision)
            if !range.contains(&kv.key) || (deleted && rev.main <= self.compacted) {
                continue;
            }
            let event = Event {
                r#type: if deleted {
                    EventType::Delete as i32
                } else {
                    EventType::Put as i32
                },
                kv: Some(kv),
                prev_kv: None,
            };
            count += 1;
            match out.last_mut() {
                Some(r) if r.rev == rev.main => r.events.push(event),
                _ => out.push(RevEvents {
                    rev: rev.main,
                    events: vec![event],
                }),
            }
        }
        Ok((out, self.current + 1))
    }

    /// The key's value just before revision `rev` (for watchers' prev_kv).
    pub fn prev_kv(&self, key: &[u8], rev: i64) -> Result<Option<KeyValue>, Error> {
        if rev - 1 < self.compacted || rev - 1 <= 0 {
            return Ok(None);
        }
        let opts = RangeOptions {
            rev: rev - 1,
            ..Default::default()
        };
        let (mut kvs, _) = self.store.range_at(
            &self.index,
            &self.backend,
            &self.txn,
            Some((&self.overlay, self.committed)),
            &KeyRange::Single(key.to_vec()),
            rev - 1,
            &opts,
        )?;
        Ok(kvs.pop())
    }
}

/// A compaction waiting for its commit: the revision and the index
/// entries it drops.
/// A compaction in the txn: its revision, the revisions it drops, and
/// when it started.
type Compaction = (i64, Vec<(Vec<u8>, Revision)>, std::time::Instant);

/// The apply thread's transaction; one per applied batch of raft entries.
pub struct WriteTxn<'s> {
    store: &'s Store,
    /// Borrows the environment in `backend` (see `Store::write`).
    txn: RwTxn<'static>,
    backend: Arc<Backend>,
    current: i64,
    compacted: i64,
    /// Changes made by the request being applied (they share `current + 1`).
    sub: i64,
    /// Records written since the last `publish`, for the overlay.
    records: Vec<Record>,
    /// The keys those changes touched, to undo a request that fails.
    touched: Vec<Vec<u8>>,
    /// Events of the request being applied.
    request_events: Vec<Event>,
    /// Events of the requests applied in this txn, one entry per revision.
    events: Vec<RevEvents>,
    /// Index entries to drop once the commit is durable in LMDB.
    compaction: Option<Compaction>,
}

impl WriteTxn<'_> {
    pub fn current_rev(&self) -> i64 {
        self.current
    }

    pub fn compacted_rev(&self) -> i64 {
        self.compacted
    }

    /// The revision reads see: the request's own changes included.
    fn read_rev(&self) -> i64 {
        if self.sub > 0 {
            self.current + 1
        } else {
            self.current
        }
    }

    /// A range that sees this request's earlier changes; its `rev` counts
    /// them too, as etcd's write txn reports it.
    pub fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, Error> {
        let rev = check_rev(opts.rev, self.read_rev(), self.compacted)?;
        let (kvs, count) = self.store.range_at(
            &self.store.index.load(),
            &self.backend,
            &self.txn,
            None,
            range,
            rev,
            &opts,
        )?;
        Ok(RangeResult {
            kvs,
            count,
            rev: self.read_rev(),
        })
    }

    /// Whether the request being applied has changed anything yet.
    pub fn has_changes(&self) -> bool {
        self.sub > 0
    }

    pub fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> Result<(), Error> {
        let m = crate::metrics::mvcc();
        m.put_total.inc();
        m.total_put_size_in_bytes
            .add((key.len() + value.len()) as i64);
        let main = self.current + 1;
        let prev = self.store.with_index(|index| index.get(key, main));
        let (create_revision, version) = match prev {
            Some(c) => (c.create_revision, c.version + 1),
            None => (main, 1),
        };
        let rev = Revision::new(main, self.sub);
        let kv = KeyValue {
            key: key.to_vec(),
            create_revision,
            mod_revision: main,
            version,
            value,
            lease,
        };
        let record = encode_record(RECORD_PUT, &kv);
        self.backend
            .kv
            .put(&mut self.txn, &rev.to_bytes(), &record)?;
        self.records.push((rev, record.into_boxed_slice()));
        self.request_events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: None,
        });
        let change = Change {
            rev,
            create_revision,
            version,
        };
        self.store.with_index_mut(|index| index.record(key, change));
        self.touched.push(key.to_vec());
        self.sub += 1;
        Ok(())
    }

    /// Deletes every live key in `range`; returns their last values.
    pub fn delete_range(&mut self, range: &KeyRange) -> Result<Vec<KeyValue>, Error> {
        crate::metrics::mvcc().delete_total.inc();
        let existing = self.range(range, RangeOptions::default())?.kvs;
        let main = self.current + 1;
        for kv in &existing {
            let rev = Revision::new(main, self.sub);
            let tomb = KeyValue {
                key: kv.key.clone(),
                mod_revision: main,
                ..Default::default()
            };
            let record = encode_record(RECORD_DELETE, &tomb);
            self.backend
                .kv
                .put(&mut self.txn, &rev.to_bytes(), &record)?;
            self.records.push((rev, record.into_boxed_slice()));
            self.request_events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(tomb),
                prev_kv: None,
            });
            let tombstone = Change {
                rev,
                create_revision: 0,
                version: 0,
            };
            self.store
                .with_index_mut(|index| index.record(&kv.key, tombstone));
            self.touched.push(kv.key.clone());
            self.sub += 1;
        }
        Ok(existing)
    }

    /// Ends one request: if it changed anything, the store revision moves on.
    pub fn end_request(&mut self) {
        if self.sub > 0 {
            self.current += 1;
            self.sub = 0;
            self.events.push(RevEvents {
                rev: self.current,
                events: std::mem::take(&mut self.request_events),
            });
        }
        self.touched.clear();
    }

    /// The events of the request being applied so far (for the lessor).
    pub fn request_events(&self) -> &[Event] {
        &self.request_events
    }

    /// Undoes every change of the request being applied: a request either
    /// applies whole or not at all, even when it fails halfway.
    pub fn abort_request(&mut self) -> Result<(), Error> {
        let main = self.current + 1;
        let touched = std::mem::take(&mut self.touched);
        let mut dropped = Vec::with_capacity(touched.len());
        for (sub, key) in touched.into_iter().enumerate() {
            let rev = Revision::new(main, sub as i64);
            self.backend.kv.delete(&mut self.txn, &rev.to_bytes())?;
            dropped.push((key, rev));
        }
        self.store.with_index_mut(|index| index.remove(&dropped));
        while self.records.last().is_some_and(|(r, _)| r.main == main) {
            self.records.pop();
        }
        self.sub = 0;
        self.request_events.clear();
        Ok(())
    }

    /// Compacts history up to `rev`: the revision is recorded in this txn,
    /// the older versions leave the index once it is committed, and their
    /// records are deleted afterwards in batches (`Store::compact_step`).
    pub fn compact(&mut self, rev: i64) -> Result<(), Error> {
        if rev <= self.compacted {
            return Err(Error::Compacted);
        }
        if rev > self.current {
            return Err(Error::FutureRev);
        }
        let started = std::time::Instant::now();
        let dropped = self.store.with_index(|index| index.compactable(rev));
        crate::metrics::mvcc()
            .index_compaction_pause_duration_ms
            .observe(started.elapsed().as_secs_f64() * 1000.0);
        // The records go later, in batches (`Store::compact_step`): reads
        // and HashKV already skip them by the compaction revision.
        self.compacted = rev;
        self.compaction = Some((rev, dropped, started));
        Ok(())
    }

    /// Makes what this txn wrote so far visible to readers (the overlay)
    /// without committing it. Returns the events of the requests applied
    /// since the last call, for watchers. Call between requests.
    pub fn publish(&mut self) -> Vec<RevEvents> {
        debug_assert_eq!(self.sub, 0, "end_request before publish");
        let records = std::mem::take(&mut self.records);
        let next = self
            .store
            .overlay
            .load()
            .with_batch(records, self.current, self.compacted);
        self.store.overlay.store(Arc::new(next));
        std::mem::take(&mut self.events)
    }

    /// Commits the txn together with the raft position it reflects, so a
    /// restart applies every entry exactly once; whatever was not published
    /// yet is published first. Returns the events not published before,
    /// for watchers.
    pub fn commit(mut self, applied: Applied) -> Result<Vec<RevEvents>, Error> {
        debug_assert_eq!(self.sub, 0, "end_request before commit");
        let events = self.publish();
        let meta = self.backend.meta;
        meta.put(&mut self.txn, META_CURRENT_REV, &self.current.to_be_bytes())?;
        meta.put(
            &mut self.txn,
            META_COMPACT_REV,
            &self.compacted.to_be_bytes(),
        )?;
        meta.put(
            &mut self.txn,
            META_CONSISTENT_INDEX,
            &(applied.index as i64).to_be_bytes(),
        )?;
        meta.put(
            &mut self.txn,
            META_TERM,
            &(applied.term as i64).to_be_bytes(),
        )?;
        let store = self.store;
        let compaction = self.compaction.take();
        let (current, compacted) = (self.current, self.compacted);
        crate::failpoint!("backendBeforeCommit");
        self.txn.commit()?;
        // everything published is in LMDB now: the overlay empties
        let generation = store.overlay.load().generation;
        store
            .overlay
            .store(Arc::new(Overlay::committed(generation, current, compacted)));
        store.committed_index.send_replace(applied.index);
        crate::failpoint!("backendAfterCommit");
        store.refresh_size();
        if let Some((rev, dropped, started)) = compaction {
            let generation = store.index.load();
            let mut index = generation.index.write().expect("index lock");
            // first the revision, then the removal: a reader that sees any
            // entry gone also sees the revision and answers Compacted
            generation.compacted.store(rev, Ordering::Release);
            index.remove(&dropped);
            drop(index);
            let mut pending = store.pending();
            pending
                .revisions
                .extend(dropped.into_iter().map(|(_, r)| r));
            pending.rev = rev;
            pending.since.get_or_insert(started);
            if pending.revisions.is_empty() {
                drop(pending);
                store.finish_compaction();
            }
        }
        Ok(events)
    }

    pub fn put_lease(&mut self, lease: &LeaseRecord) -> Result<(), Error> {
        self.backend.lease.put(
            &mut self.txn,
            &lease.id.to_be_bytes(),
            &lease.encode_to_vec(),
        )?;
        Ok(())
    }

    pub fn delete_lease(&mut self, id: i64) -> Result<(), Error> {
        self.backend
            .lease
            .delete(&mut self.txn, &id.to_be_bytes())?;
        Ok(())
    }

    /// Stores a named value (member and cluster ids) in this transaction.
    pub fn put_meta(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        super::check_key(key)?;
        self.backend.meta.put(&mut self.txn, key, value)?;
        Ok(())
    }

    pub fn delete_meta(&mut self, key: &[u8]) -> Result<(), Error> {
        self.backend.meta.delete(&mut self.txn, key)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: usize = 300;

    fn open(path: &std::path::Path) -> Store {
        Store::open(Backend::open(path, 1 << 30).expect("backend")).expect("store")
    }

    /// Puts every key `times` times with `value`, one commit each, then
    /// compacts at the newest revision.
    fn fill(store: &Store, value: &[u8], times: usize) {
        let mut index = 0;
        for _ in 0..times {
            let mut wt = store.write().unwrap();
            for i in 0..KEYS {
                wt.put(format!("k/{i:04}").as_bytes(), value.to_vec(), 0)
                    .unwrap();
                wt.end_request();
            }
            index += 1;
            wt.commit(Applied { index, term: 1 }).unwrap();
        }
        let mut wt = store.write().unwrap();
        let rev = wt.current_rev();
        wt.compact(rev).unwrap();
        wt.commit(Applied {
            index: index + 1,
            term: 1,
        })
        .unwrap();
        while store.compact_step(1000).unwrap() {}
    }

    /// Three rounds over every key (some deleted in the second), then a
    /// delete at the revision compacted at; returns that revision.
    fn history_then_compact(store: &Store) -> i64 {
        for round in 0..3u64 {
            let mut wt = store.write().unwrap();
            for i in 0..KEYS {
                wt.put(format!("k/{i:04}").as_bytes(), vec![round as u8], 0)
                    .unwrap();
                wt.end_request();
            }
            if round == 1 {
                wt.delete_range(&KeyRange::Until(b"k/0000".to_vec(), b"k/0010".to_vec()))
                    .unwrap();
                wt.end_request();
            }
            wt.commit(Applied {
                index: round + 1,
                term: 1,
            })
            .unwrap();
        }
        let mut wt = store.write().unwrap();
        wt.delete_range(&KeyRange::Single(b"k/0100".to_vec()))
            .unwrap();
        wt.end_request();
        let rev = wt.current_rev();
        wt.compact(rev).unwrap();
        wt.commit(Applied { index: 4, term: 1 }).unwrap();
        rev
    }

    fn records(store: &Store) -> u64 {
        let b = store.backend();
        let rtxn = b.env.read_txn().unwrap();
        b.kv.len(&rtxn).unwrap()
    }

    /// What a client can see of a store at and after `rev`.
    type Answers = (Vec<KeyValue>, Vec<(i64, Vec<Event>)>, u32, i64);

    fn answers(store: &Store, rev: i64) -> Answers {
        let view = store.read().unwrap();
        let all = KeyRange::From(b"k/".to_vec());
        let at = RangeOptions {
            rev,
            ..Default::default()
        };
        let kvs = view.range(&all, at).unwrap().kvs;
        let (events, _) = view.history(&all, rev, usize::MAX).unwrap();
        let events = events.into_iter().map(|r| (r.rev, r.events)).collect();
        let h = view.hash_kv(0).unwrap();
        assert_eq!(
            view.hash_kv(rev).unwrap().hash,
            view.hash_kv(rev).unwrap().hash
        );
        (kvs, events, h.hash, h.compact_revision)
    }

    /// A physical compaction is answered once its records are deleted:
    /// the wait ends only when the last batch is gone.
    #[test]
    fn physically_compacted_waits_for_the_last_batch() {
        use futures::FutureExt as _;
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let rev = history_then_compact(&store);
        assert!(store.physically_compacted(rev).now_or_never().is_none());
        assert!(store.compact_step(100).unwrap());
        assert!(store.physically_compacted(rev).now_or_never().is_none());
        while store.compact_step(100).unwrap() {}
        assert!(store.physically_compacted(rev).now_or_never().is_some());
        // a compaction with nothing to delete is physical at once
        let mut wt = store.write().unwrap();
        wt.put(b"k/0000", b"x".to_vec(), 0).unwrap();
        wt.end_request();
        let next = wt.current_rev();
        wt.compact(next).unwrap();
        wt.commit(Applied { index: 9, term: 1 }).unwrap();
        while store.compact_step(100).unwrap() {}
        assert!(store.physically_compacted(next).now_or_never().is_some());
    }

    /// A compaction's records are deleted in batches after its commit.
    /// Until they are gone, and after a restart in the middle, reads,
    /// history and HashKV answer exactly as once they are gone (members
    /// at different points of the deletion hash alike).
    #[test]
    fn batched_compaction_answers_as_if_done_and_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let done = open(&dir.path().join("done.db"));
        let rev = history_then_compact(&done);
        while done.compact_step(100).unwrap() {}
        assert!(!done.compaction_pending());
        let want = answers(&done, rev);
        assert!(
            !want.1.iter().any(|(r, _)| *r == rev),
            "the tombstone at the compaction revision is compacted away"
        );

        let path = dir.path().join("pending.db");
        {
            let pending = open(&path);
            assert_eq!(history_then_compact(&pending), rev);
            assert!(pending.compaction_pending());
            assert!(records(&pending) > records(&done), "nothing deleted yet");
            assert!(answers(&pending, rev) == want, "before any batch");
            assert!(pending.compact_step(100).unwrap(), "more than one batch");
            assert!(answers(&pending, rev) == want, "between batches");
        }
        // a restart in the middle: the rebuilt index is compacted again and
        // the rest of the records are found for deletion
        let reopened = open(&path);
        assert!(reopened.compaction_pending());
        assert!(answers(&reopened, rev) == want, "after the restart");
        while reopened.compact_step(100).unwrap() {}
        assert_eq!(records(&reopened), records(&done));
        assert!(answers(&reopened, rev) == want, "when done");
    }

    /// A defrag racing compaction batches never brings deleted records
    /// back: each batch is committed before the copy's snapshot or
    /// journaled for the copy (found by tests/integration/
    /// maintenance_cluster.rs under load: a member's file stayed full after
    /// compaction and defrags).
    #[test]
    fn defrags_racing_compaction_batches_keep_every_deletion() {
        let dir = tempfile::tempdir().unwrap();
        let done = open(&dir.path().join("done.db"));
        history_then_compact(&done);
        while done.compact_step(1000).unwrap() {}
        for round in 0..3 {
            let store = Arc::new(open(&dir.path().join(format!("racing{round}.db"))));
            history_then_compact(&store);
            let s = store.clone();
            let stepper = std::thread::spawn(move || while s.compact_step(1).unwrap() {});
            while !stepper.is_finished() {
                store.defrag().unwrap();
            }
            stepper.join().unwrap();
            store.defrag().unwrap();
            assert_eq!(records(&store), records(&done), "round {round}");
        }
    }

    fn copy(store: &Store, to: &std::path::Path) {
        store
            .backend()
            .env
            .copy_to_path(to, heed::CompactionOption::Enabled)
            .unwrap();
    }

    /// History is read a bounded number of records at a time, ending at a
    /// revision boundary; following `next` gets every event once.
    #[test]
    fn history_of_a_quiet_key_comes_in_bounded_steps() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let noise = HISTORY_SCAN_BUDGET * 2 + 10;
        let mut wt = store.write().unwrap();
        wt.put(b"quiet", b"1".to_vec(), 0).unwrap();
        wt.end_request();
        for i in 0..noise {
            wt.put(format!("noise/{i}").as_bytes(), b"x".to_vec(), 0)
                .unwrap();
            wt.end_request();
        }
        wt.put(b"quiet", b"2".to_vec(), 0).unwrap();
        wt.end_request();
        wt.commit(Applied { index: 1, term: 1 }).unwrap();
        let view = store.read().unwrap();
        let quiet = KeyRange::Single(b"quiet".to_vec());
        let (mut next, mut steps, mut values) = (1, 0, Vec::new());
        while next <= view.current_rev() {
            let (batch, after) = view.history(&quiet, next, 1000).unwrap();
            assert!(after > next, "no progress at {next}");
            values.extend(
                batch
                    .iter()
                    .flat_map(|r| r.events.iter())
                    .map(|e| e.kv.as_ref().unwrap().value.clone()),
            );
            next = after;
            steps += 1;
        }
        assert_eq!(values, vec![b"1".to_vec(), b"2".to_vec()]);
        assert!(steps >= 3, "the whole history was read in {steps} step(s)");
    }

    /// A range longer than one chunk of the index walk returns every key,
    /// in order, with the full count, and stops at a limit.
    #[test]
    fn ranges_longer_than_an_index_chunk_are_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let n = INDEX_CHUNK * 2 + 7;
        let mut wt = store.write().unwrap();
        for i in 0..n {
            wt.put(format!("k/{i:05}").as_bytes(), b"v".to_vec(), 0)
                .unwrap();
            wt.end_request();
        }
        wt.commit(Applied { index: 1, term: 1 }).unwrap();
        let view = store.read().unwrap();
        let all = KeyRange::From(b"k/".to_vec());
        let got = view.range(&all, RangeOptions::default()).unwrap();
        assert_eq!((got.kvs.len(), got.count), (n, n as i64));
        let keys: Vec<Vec<u8>> = got.kvs.iter().map(|kv| kv.key.clone()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted);
        let limited = RangeOptions {
            limit: INDEX_CHUNK as i64 + 1,
            ..Default::default()
        };
        let got = view.range(&all, limited).unwrap();
        assert_eq!((got.kvs.len(), got.count), (INDEX_CHUNK + 1, n as i64));
        assert_eq!(
            got.kvs[INDEX_CHUNK].key,
            format!("k/{INDEX_CHUNK:05}").into_bytes()
        );
    }

    /// A follower installing a leader's snapshot never serves a read that
    /// mixes the new backend with the old key index (or the reverse):
    /// readers racing a series of installs of two unrelated histories see
    /// one history or the other, whole, and never an error.
    #[test]
    fn reads_racing_snapshot_installs_see_one_history_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (a_snap, b_snap) = (dir.path().join("a.snap"), dir.path().join("b.snap"));
        {
            // "b": every key written three times, older revisions compacted
            // away, so the "a" index names revisions "b" lacks
            let b = open(&dir.path().join("b.db"));
            fill(&b, b"b", 3);
            copy(&b, &b_snap);
        }
        let store = open(&dir.path().join("a.db"));
        fill(&store, b"a", 1);
        copy(&store, &a_snap);

        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let mut reads = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            let view = store.read().unwrap();
                            let all = KeyRange::Until(b"k/".to_vec(), b"k0".to_vec());
                            let got = view
                                .range(&all, RangeOptions::default())
                                .unwrap_or_else(|e| panic!("read {reads} failed: {e}"));
                            assert_eq!(got.kvs.len(), KEYS, "read {reads}");
                            let first = got.kvs[0].value.clone();
                            assert!(
                                got.kvs.iter().all(|kv| kv.value == first),
                                "read {reads} mixes histories"
                            );
                            reads += 1;
                        }
                        reads
                    })
                })
                .collect();
            for round in 0..20 {
                let snap = if round % 2 == 0 { &b_snap } else { &a_snap };
                store.install_snapshot(snap, &[]).unwrap();
            }
            stop.store(true, Ordering::Relaxed);
            for r in readers {
                assert!(r.join().unwrap() > 0);
            }
        });
    }

    /// Readers racing the writer's publishes and commits (the txn kept
    /// open across several publishes, as the apply thread does) always see
    /// a whole prefix of the history: the newest revision readable with
    /// its value, every revision's record found (LMDB or overlay), and a
    /// history from any revision without gaps.
    #[test]
    fn reads_racing_publishes_and_commits_see_every_published_revision() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(&dir.path().join("db"));
        let stop = std::sync::atomic::AtomicBool::new(false);
        std::thread::scope(|scope| {
            let readers: Vec<_> = (0..2)
                .map(|_| {
                    scope.spawn(|| {
                        let mut reads = 0u64;
                        let mut last = 1;
                        while !stop.load(Ordering::Relaxed) {
                            let view = store.read().unwrap();
                            let current = view.current_rev();
                            assert!(current >= last, "the revision went back");
                            last = current;
                            if current < 2 {
                                continue;
                            }
                            // key i is written at revision i + 2
                            let key = format!("r/{:06}", current - 2);
                            let got = view
                                .range(
                                    &KeyRange::Single(key.clone().into_bytes()),
                                    RangeOptions::default(),
                                )
                                .unwrap_or_else(|e| panic!("read {reads}: {e}"));
                            assert_eq!(got.kvs.len(), 1, "{key} at {current}");
                            assert_eq!(got.kvs[0].value, key.as_bytes());
                            let from = (current - 40).max(2);
                            let (events, next) = view
                                .history(
                                    &KeyRange::Until(b"r/".to_vec(), b"r0".to_vec()),
                                    from,
                                    1000,
                                )
                                .unwrap();
                            let revs: Vec<i64> = events.iter().map(|e| e.rev).collect();
                            assert_eq!(
                                revs,
                                (from..=current).collect::<Vec<_>>(),
                                "history from {from}"
                            );
                            assert_eq!(next, current + 1);
                            reads += 1;
                        }
                        reads
                    })
                })
                .collect();
            let mut index = 0;
            for _ in 0..60 {
                let mut wt = store.write().unwrap();
                for _ in 0..5 {
                    for _ in 0..7 {
                        let key = format!("r/{:06}", wt.current_rev() - 1);
                        wt.put(key.as_bytes(), key.clone().into_bytes(), 0).unwrap();
                        wt.end_request();
                        index += 1;
                    }
                    wt.publish();
                }
                wt.commit(Applied { index, term: 1 }).unwrap();
                assert_eq!(store.uncommitted_bytes(), 0);
            }
            stop.store(true, Ordering::Relaxed);
            for r in readers {
                assert!(r.join().unwrap() > 0);
            }
        });
    }

    /// The startup scan's in-place reader agrees with prost on every
    /// record this member writes, on unusual encodings prost accepts, and
    /// refuses what prost refuses.
    #[test]
    fn scan_record_reads_what_decode_record_reads() {
        let kvs = [
            KeyValue::default(),
            KeyValue {
                key: b"k".to_vec(),
                create_revision: 5,
                mod_revision: 7,
                version: 3,
                value: vec![7; 300],
                lease: 0x7fff_ffff_ffff,
            },
            KeyValue {
                key: vec![0xff; 2000],
                create_revision: -1,
                ..Default::default()
            },
        ];
        for kv in &kvs {
            for kind in [RECORD_PUT, RECORD_DELETE] {
                let rec = encode_record(kind, kv);
                let r = scan_record(&rec).unwrap();
                assert_eq!(r.deleted, kind == RECORD_DELETE);
                assert_eq!(r.key.as_ref(), &kv.key[..]);
                assert_eq!(
                    (r.create_revision, r.version, r.lease),
                    (kv.create_revision, kv.version, kv.lease)
                );
                assert!(matches!(r.key, std::borrow::Cow::Borrowed(_)));
            }
        }
        // an unknown field 9 (varint 1) prost skips: the slow path
        let mut rec = encode_record(RECORD_PUT, &kvs[1]);
        rec.extend_from_slice(&[9 << 3, 1]);
        let r = scan_record(&rec).unwrap();
        assert_eq!((r.key.as_ref(), r.version), (&b"k"[..], 3));
        // damaged: both refuse
        for bad in [
            vec![],
            vec![9],
            vec![RECORD_PUT, 0x0a, 0x05, b'k'],
            vec![RECORD_PUT, 0xff, 0xff],
        ] {
            assert!(
                decode_record(&bad).is_err() && scan_record(&bad).is_err(),
                "{bad:?}"
            );
        }
    }
}
