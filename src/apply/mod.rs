//! The apply thread: the only LMDB writer. It takes committed raft entries
//! in order, applies each exactly once (entries at or below the stored
//! consistent index are skipped), commits one LMDB transaction per batch
//! together with the new consistent index, and only then wakes the waiting
//! requests and advances the applied index readers wait on.
//!
//! Runs on a dedicated OS thread: a heed write transaction must end on the
//! thread that began it, and its commit fsyncs.

pub mod ops;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use raft::eraftpb::{Entry, EntryType};
use tokio::sync::watch;

use crate::lease::Lessor;
use crate::mvcc::{Applied, Store, WriteTxn};
use crate::proto::etcdserverpb::{
    CompactionResponse, LeaseGrantResponse, LeaseRevokeResponse, ResponseHeader,
};
use crate::proto::internal::{internal_raft_request::Request, InternalRaftRequest};
use crate::proto::mvccpb::event::EventType;
use crate::server::wait::Wait;
pub use ops::ApplyError;

/// Meta keys written by the apply loop besides the MVCC state.
pub const META_CLUSTER_VERSION: &[u8] = b"cluster_version";
pub const META_MEMBER_PREFIX: &str = "member_attr/";

/// A request's result, handed to the waiter that proposed it.
#[derive(Debug)]
pub enum Response {
    Put(crate::proto::etcdserverpb::PutResponse),
    DeleteRange(crate::proto::etcdserverpb::DeleteRangeResponse),
    Txn(crate::proto::etcdserverpb::TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    /// Internal requests (member attributes, cluster version).
    Done,
}

pub type ApplyResult = Result<Response, ApplyError>;

/// Batches bigger than this are committed in several LMDB transactions, to
/// bound the time waiters wait and the size of one commit.
const MAX_ENTRIES_PER_COMMIT: usize = 4096;
/// With no new entries for this long, the last commit is made durable
/// (NO_META_SYNC leaves its meta page unsynced until the next commit).
const IDLE_SYNC: Duration = Duration::from_millis(100);

pub struct Applier {
    pub store: Arc<Store>,
    pub wait: Arc<Wait>,
    pub member_id: u64,
    /// Index of the last entry visible to readers (committed in LMDB).
    pub applied_tx: watch::Sender<u64>,
    /// Index of the last entry whose answer has been given; readers that
    /// must see every answered write wait until `applied` reaches it.
    pub computed_tx: Arc<watch::Sender<u64>>,
    /// Index up to which the MVCC state is durable on disk; the raft thread
    /// may snapshot and purge the WAL up to here.
    pub durable: Arc<AtomicU64>,
    /// Called after commit with the internal requests that were applied.
    pub on_internal: Box<dyn Fn(&Request) + Send>,
    pub lessor: Arc<Lessor>,
    /// Receives each committed revision's events, for watchers.
    pub hub: Arc<crate::watch::Hub>,
}

impl Applier {
    /// Runs until the raft thread hangs up. A storage failure ends the
    /// process: applying must never skip or repeat an entry.
    pub fn run(self, rx: Receiver<Vec<Entry>>) {
        let mut applied = match self.store.applied() {
            Ok(a) => a,
            Err(e) => crate::fatal(&format!("read consistent index: {e}")),
        };
        let mut synced = applied.index;
        self.durable.store(applied.index, Ordering::Release);
        loop {
            let first = match rx.recv_timeout(IDLE_SYNC) {
                Ok(entries) => entries,
                Err(RecvTimeoutError::Timeout) => {
                    if synced < applied.index {
                        if let Err(e) = self.store.backend().env.force_sync() {
                            crate::fatal(&format!("sync backend: {e}"));
                        }
                        synced = applied.index;
                        self.durable.store(synced, Ordering::Release);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut batch = first;
            while batch.len() < MAX_ENTRIES_PER_COMMIT {
                match rx.try_recv() {
                    Ok(more) => batch.extend(more),
                    Err(_) => break,
                }
            }
            let before = applied.index;
            applied = self.apply_batch(batch, applied);
            // The commit just made fsynced everything the previous one wrote.
            synced = before;
            self.durable.store(synced, Ordering::Release);
        }
        if let Err(e) = self.store.backend().env.force_sync() {
            crate::fatal(&format!("sync backend: {e}"));
        }
        self.durable.store(applied.index, Ordering::Release);
    }

    fn apply_batch(&self, batch: Vec<Entry>, mut applied: Applied) -> Applied {
        let mut wt = match self.store.write() {
            Ok(wt) => wt,
            Err(e) => crate::fatal(&format!("begin backend txn: {e}")),
        };
        let mut results = Vec::new();
        let mut internal = Vec::new();
        for entry in batch {
            if entry.index <= applied.index {
                continue; // applied before a restart
            }
            if entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty() {
                let req = match InternalRaftRequest::decode(entry.data.as_ref()) {
                    Ok(r) => r,
                    Err(e) => crate::fatal(&format!(
                        "raft entry {} is not a request ({e}): the log is corrupt",
                        entry.index
                    )),
                };
                let header = req.header.unwrap_or_default();
                if let Some(request) = req.request {
                    let started = std::time::Instant::now();
                    let result = apply_request(&mut wt, &self.lessor, &request);
                    // etcd's warnApplyDuration: 100 ms
                    if started.elapsed() > std::time::Duration::from_millis(100) {
                        crate::metrics::server().slow_apply.inc();
                    }
                    if result.is_ok() {
                        // keys follow their lease: a put moves the key to
                        // its new lease (or none), a delete frees it
                        for e in wt.request_events() {
                            if let Some(kv) = &e.kv {
                                let lease = if e.r#type == EventType::Put as i32 {
                                    kv.lease
                                } else {
                                    0
                                };
                                self.lessor.attach(&kv.key, lease);
                            }
                        }
                        wt.end_request();
                    } else if let Err(e) = wt.abort_request() {
                        crate::fatal(&format!("undo failed entry {}: {e}", entry.index));
                    }
                    if let Err(ApplyError::Storage(e)) = &result {
                        crate::fatal(&format!("apply entry {}: {e}", entry.index));
                    }
                    if matches!(
                        request,
                        Request::MemberAttributes(_) | Request::ClusterVersion(_)
                    ) {
                        internal.push(request);
                    }
                    if header.member_id == self.member_id {
                        results.push((header.id, result));
                    }
                }
            }
            applied = Applied {
                index: entry.index,
                term: entry.term,
            };
        }
        // Answer before the commit's fsync: every entry is already durable
        // in the WAL and applying is deterministic, so a replay gives the
        // same answers. Readers still see only committed state: they wait
        // for `applied_tx`, which moves after the commit. Compaction waits
        // for its commit (its answer promises the old revisions are gone).
        let (after_commit, now): (Vec<_>, Vec<_>) = results
            .into_iter()
            .partition(|(_, r)| matches!(r, Ok(Response::Compaction(_))));
        let compacted = wt.compacted_rev();
        self.computed_tx.send_replace(applied.index);
        for (id, result) in now {
            self.wait
                .trigger(id, result.map_err(crate::server::Error::Apply));
        }
        let commit_started = std::time::Instant::now();
        let events = match wt.commit(applied) {
            Ok(events) => events,
            Err(e) => crate::fatal(&format!("commit backend txn: {e}")),
        };
        crate::metrics::disk()
            .backend_commit_duration
            .observe(commit_started.elapsed().as_secs_f64());
        self.applied_tx.send_replace(applied.index);
        self.hub.set_compacted(compacted);
        self.hub.publish(events);
        for r in &internal {
            (self.on_internal)(r);
        }
        for (id, result) in after_commit {
            self.wait
                .trigger(id, result.map_err(crate::server::Error::Apply));
        }
        applied
    }
}

fn apply_request(wt: &mut WriteTxn<'_>, lessor: &Lessor, request: &Request) -> ApplyResult {
    let header = |wt: &WriteTxn<'_>| {
        Some(ResponseHeader {
            revision: wt.current_rev(),
            ..Default::default()
        })
    };
    let mut kv = ops::Leased { txn: wt, lessor };
    Ok(match request {
        Request::Put(p) => Response::Put(ops::put(&mut kv, p)?),
        Request::DeleteRange(d) => Response::DeleteRange(ops::delete_range(&mut kv, d)?),
        Request::Txn(t) => Response::Txn(ops::txn(&mut kv, t)?),
        Request::Compaction(c) => {
            wt.compact(c.revision)?;
            Response::Compaction(CompactionResponse { header: header(wt) })
        }
        Request::MemberAttributes(m) => {
            let key = format!("{META_MEMBER_PREFIX}{:016x}", m.id);
            wt.put_meta(key.as_bytes(), &m.encode_to_vec())?;
            Response::Done
        }
        Request::ClusterVersion(v) => {
            wt.put_meta(META_CLUSTER_VERSION, v.version.as_bytes())?;
            Response::Done
        }
        Request::LeaseGrant(g) => {
            let record = lessor.grant(g.id, g.ttl)?;
            wt.put_lease(&record)?;
            Response::LeaseGrant(LeaseGrantResponse {
                header: header(wt),
                id: record.id,
                ttl: record.ttl,
                error: String::new(),
            })
        }
        Request::LeaseRevoke(r) => {
            // every key of the lease goes in one revision
            for key in lessor.revoke(r.id)? {
                wt.delete_range(&crate::mvcc::KeyRange::Single(key))?;
            }
            wt.delete_lease(r.id)?;
            Response::LeaseRevoke(LeaseRevokeResponse {
                header: Some(ResponseHeader {
                    revision: wt.current_rev() + i64::from(wt.has_changes()),
                    ..Default::default()
                }),
            })
        }
        Request::LeaseCheckpoint(c) => {
            for record in lessor.checkpoint(&c.checkpoints) {
                wt.put_lease(&record)?;
            }
            Response::Done
        }
    })
}
