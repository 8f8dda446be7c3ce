//! The apply thread: the only LMDB writer. It takes committed raft entries
//! in order, applies each exactly once (entries at or below the stored
//! consistent index are skipped) into one LMDB write transaction that stays
//! open across batches, publishes each batch to readers (mvcc's overlay),
//! advances the applied index readers wait on, and then wakes the waiting
//! requests. The txn is committed, with the consistent index of the last
//! entry it holds, every `batch_interval` or `batch_limit` entries (etcd's
//! --backend-batch-interval / --backend-batch-limit), when its records
//! pass a byte cap, when asked (a barrier), and at once for batches whose
//! effects are read from LMDB directly (compaction, membership, cluster
//! version). Every entry is in the WAL before it is applied, so what is
//! published but not committed is replayed after a crash.
//!
//! Runs on a dedicated OS thread: a heed write transaction must end on the
//! thread that began it, and its commit fsyncs.

pub mod ops;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfState, Entry, EntryType, SnapshotMetadata};
use tokio::sync::watch;

use crate::cluster::{Member, Membership};
use crate::raft::ApplyItem;
use crate::storage::snapshot::META_CONF_STATE;

use crate::alarm::Alarms;
use crate::lease::Lessor;
use crate::member::MemberState;
use crate::mvcc::{Applied, Store, WriteTxn};
use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmResponse, AlarmType, CompactionResponse,
    LeaseGrantResponse, LeaseRevokeResponse, ResponseHeader,
};
use crate::proto::internal::{internal_raft_request::Request, InternalRaftRequest};
use crate::proto::mvccpb::event::EventType;
pub use ops::ApplyError;

pub use crate::storage::schema::META_CLUSTER_VERSION;

pub use crate::propose::Response;

pub type ApplyResult = Result<Response, ApplyError>;

/// Batches bigger than this are published (and answered) in several
/// steps, to bound the time waiters wait.
const MAX_ENTRIES_PER_BATCH: usize = 4096;
/// With no new entries for this long, the last commit is made durable
/// (NO_META_SYNC leaves its meta page unsynced until the next commit).
const IDLE_SYNC: Duration = Duration::from_millis(100);
/// How often an idle apply thread with an open txn looks for a barrier.
const BARRIER_POLL: Duration = Duration::from_millis(5);
/// Uncommitted record bytes that make the open txn commit: bounds the
/// overlay's memory, LMDB's dirty pages and the stall of one commit.
const MAX_UNCOMMITTED_BYTES: usize = 64 << 20;

/// The apply thread: applies committed entries in order to the member's
/// state, answers their waiters and moves the applied marks.
pub struct Applier {
    member: Arc<MemberState>,
    links: Links,
    options: Options,
}

/// What the apply thread reports to, besides the member state.
pub struct Links {
    /// Index of the last entry visible to readers (published: in the
    /// LMDB txn or the overlay); it moves before the entry is answered.
    /// Owned by the apply thread: its drop is what turns every waiting
    /// reader into Stopped.
    pub applied_tx: watch::Sender<u64>,
    /// Index up to which the MVCC state is durable on disk; the raft thread
    /// may snapshot and purge the WAL up to here.
    pub durable: Arc<AtomicU64>,
    /// Raft's shared state: the apply backlog is given back here.
    pub raft: Arc<crate::raft::RaftShared>,
    /// Called after commit with the internal requests that were applied.
    pub on_internal: Box<dyn Fn(&Request) + Send>,
}

/// How the apply thread works.
pub struct Options {
    /// Meta keys a snapshot from the leader must not overwrite (this
    /// member's identity).
    pub local_meta_keys: Vec<Vec<u8>>,
    /// A compaction's records are deleted this many per transaction
    /// (--experimental-compaction-batch-limit)...
    pub compaction_batch_limit: usize,
    /// ...with at least this long between batches while entries wait
    /// (--experimental-compaction-sleep-interval).
    pub compaction_sleep_interval: Duration,
    /// The open txn commits this long after its first entry
    /// (--backend-batch-interval)...
    pub batch_interval: Duration,
    /// ...or once it holds this many entries (--backend-batch-limit).
    pub batch_limit: usize,
}

/// The open backend txn.
struct OpenTxn<'s> {
    wt: WriteTxn<'s>,
    since: std::time::Instant,
    entries: usize,
}

/// The apply thread's marks, in order: durable ≤ committed ≤ applied.
struct Marks {
    /// The last entry applied and visible to readers.
    applied: Applied,
    /// The consistent index of the last LMDB commit.
    committed: u64,
    /// The newest commit known to be on disk (the raft thread snapshots
    /// and purges the WAL only up to here).
    durable: u64,
}

/// What a batch owes its waiters, given after it is published.
#[derive(Default)]
struct Answers {
    now: Vec<(u64, ApplyResult)>,
    conf: Vec<(u64, crate::propose::ProposeResult)>,
    /// Compactions answer once their commit is made (their answer promises
    /// the old revisions are gone).
    after_commit: Vec<(u64, ApplyResult)>,
    internal: Vec<Request>,
    /// The batch compacted (whoever proposed it).
    compacted: bool,
}

impl Answers {
    /// Whether the batch must be committed before it is answered: its
    /// effects are read from LMDB itself (compaction's deletions, members
    /// and the cluster version through `get_meta`, the conf state).
    fn need_commit(&self) -> bool {
        self.compacted || !self.internal.is_empty() || !self.conf.is_empty()
    }
}

impl Applier {
    pub fn new(member: Arc<MemberState>, links: Links, options: Options) -> Applier {
        Applier {
            member,
            links,
            options,
        }
    }

    /// Runs until the raft thread hangs up. A storage failure ends the
    /// process: applying must never skip or repeat an entry.
    pub fn run(self, rx: Receiver<ApplyItem>) {
        let store = self.member.store();
        let applied = match store.applied() {
            Ok(a) => a,
            Err(e) => crate::fatal(&format!("read consistent index: {e}")),
        };
        let mut marks = Marks {
            applied,
            committed: applied.index,
            durable: applied.index,
        };
        self.links.durable.store(applied.index, Ordering::Release);
        let mut open: Option<OpenTxn<'_>> = None;
        let mut last_compact_step = std::time::Instant::now();
        loop {
            // a pending compaction's next batch is due after the sleep
            // interval, whether entries keep coming or not
            let compacting = store.compaction_pending();
            if compacting && last_compact_step.elapsed() >= self.options.compaction_sleep_interval {
                self.commit(&mut open, &mut marks);
                if let Err(e) = store.compact_step(self.options.compaction_batch_limit) {
                    crate::fatal(&format!("delete compacted revisions: {e}"));
                }
                last_compact_step = std::time::Instant::now();
                // (its commit may have synced nothing: LMDB skips the sync
                // of a txn that changed nothing, so `durable` stays)
            }
            if store.take_commit_wanted()
                || store.defrag_waiting()
                || open.as_ref().is_some_and(|o| self.due(o))
            {
                self.commit(&mut open, &mut marks);
            }
            let wait = match &open {
                Some(o) => (o.since + self.options.batch_interval)
                    .saturating_duration_since(std::time::Instant::now())
                    .min(BARRIER_POLL),
                None if compacting => self.options.compaction_sleep_interval.min(IDLE_SYNC),
                None => IDLE_SYNC,
            };
            let first = match rx.recv_timeout(wait) {
                Ok(entries) => entries,
                Err(RecvTimeoutError::Timeout) => {
                    if open.is_none() && !compacting && marks.durable < marks.committed {
                        if let Err(e) = store.backend().sync() {
                            crate::fatal(&format!("sync backend: {e}"));
                        }
                        let index = marks.committed;
                        self.mark_durable(&mut marks, index);
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut queue = vec![first];
            while let Some(item) = queue.pop() {
                match item {
                    ApplyItem::Snapshot(meta) => {
                        self.commit(&mut open, &mut marks);
                        marks.applied = self.install_snapshot(&meta);
                        marks.committed = marks.applied.index;
                        let index = marks.applied.index;
                        self.mark_durable(&mut marks, index);
                    }
                    ApplyItem::Entries {
                        mut entries,
                        mut conf_states,
                    } => {
                        // Group what is queued into one publish; a snapshot
                        // waits for the next round.
                        while entries.len() < MAX_ENTRIES_PER_BATCH {
                            match rx.try_recv() {
                                Ok(ApplyItem::Entries {
                                    entries: more,
                                    conf_states: cs,
                                }) => {
                                    entries.extend(more);
                                    conf_states.extend(cs);
                                }
                                Ok(other) => {
                                    queue.push(other);
                                    break;
                                }
                                Err(_) => break,
                            }
                        }
                        let bytes = crate::raft::entries_bytes(&entries);
                        let n = entries.len();
                        if open.is_none() {
                            self.let_defrag_in();
                        }
                        let o = open.get_or_insert_with(|| OpenTxn {
                            wt: match store.write() {
                                Ok(wt) => wt,
                                Err(e) => crate::fatal(&format!("begin backend txn: {e}")),
                            },
                            since: std::time::Instant::now(),
                            entries: 0,
                        });
                        o.entries += n;
                        let answers =
                            self.apply_batch(&mut o.wt, entries, conf_states, &mut marks.applied);
                        self.publish(&mut o.wt, marks.applied);
                        self.links
                            .raft
                            .apply_backlog_bytes
                            .fetch_sub(bytes, Ordering::AcqRel);
                        let commit_first = answers.need_commit() || store.defrag_waiting();
                        if commit_first {
                            self.commit(&mut open, &mut marks);
                        }
                        self.answer(answers);
                        if open.is_some() {
                            crate::failpoint!("applyAfterPublish");
                        }
                        if !commit_first && open.as_ref().is_some_and(|o| self.due(o)) {
                            self.commit(&mut open, &mut marks);
                        }
                    }
                }
            }
        }
        self.commit(&mut open, &mut marks);
        if let Err(e) = store.backend().sync() {
            crate::fatal(&format!("sync backend: {e}"));
        }
        let index = marks.committed;
        self.mark_durable(&mut marks, index);
    }

    /// A defrag waiting for the backend's write lock gets it before the
    /// next txn begins (LMDB's writer mutex is not fair: the apply thread
    /// would take it back at once). Bounded: a stuck defrag does not stop
    /// writes for longer than this.
    fn let_defrag_in(&self) {
        let started = std::time::Instant::now();
        while self.member.store().defrag_waiting() && started.elapsed() < Duration::from_millis(200)
        {
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    /// Whether the open txn has held enough for long enough.
    fn due(&self, o: &OpenTxn<'_>) -> bool {
        o.entries >= self.options.batch_limit
            || o.since.elapsed() >= self.options.batch_interval
            || self.member.store().uncommitted_bytes() >= MAX_UNCOMMITTED_BYTES
    }

    /// Commits the open txn, if any, with the last applied entry's index.
    fn commit(&self, open: &mut Option<OpenTxn<'_>>, marks: &mut Marks) {
        let Some(o) = open.take() else {
            return;
        };
        let started = std::time::Instant::now();
        let events = match o.wt.commit(marks.applied) {
            Ok(events) => events,
            Err(e) => crate::fatal(&format!("commit backend txn: {e}")),
        };
        crate::metrics::disk()
            .backend_commit_duration
            .observe(started.elapsed().as_secs_f64());
        // published before, at the latest when the batch was applied
        debug_assert!(events.is_empty());
        self.member.hub().publish(events);
        // NO_META_SYNC: this commit's fdatasync made the one before durable
        let before = marks.committed;
        marks.committed = marks.applied.index;
        self.mark_durable(marks, before);
    }

    fn mark_durable(&self, marks: &mut Marks, index: u64) {
        marks.durable = marks.durable.max(index);
        self.links.durable.store(marks.durable, Ordering::Release);
    }

    /// Makes the batch visible: readers (the overlay, then the applied
    /// index they wait on), then watchers.
    fn publish(&self, wt: &mut WriteTxn<'_>, applied: Applied) {
        let events = wt.publish();
        let compacted = wt.compacted_rev();
        self.links.applied_tx.send_replace(applied.index);
        self.member.hub().set_compacted(compacted);
        self.member.hub().publish(events);
    }

    /// Wakes a published batch's waiters.
    fn answer(&self, answers: Answers) {
        for (id, result) in answers.now {
            self.member
                .wait()
                .trigger(id, result.map_err(crate::propose::Error::Apply));
        }
        for (id, result) in answers.conf {
            self.member.wait().trigger(id, result);
        }
        for r in &answers.internal {
            (self.links.on_internal)(r);
        }
        for (id, result) in answers.after_commit {
            self.member
                .wait()
                .trigger(id, result.map_err(crate::propose::Error::Apply));
        }
    }

    /// Replaces the whole state with the leader's snapshot (its file was
    /// saved by the peer service, its WAL record by the raft thread).
    fn install_snapshot(&self, meta: &SnapshotMetadata) -> Applied {
        let path = self.member.snapshots().path(meta.index);
        let keep: Vec<&[u8]> = self
            .options
            .local_meta_keys
            .iter()
            .map(Vec::as_slice)
            .collect();
        crate::failpoint!("raftBeforeApplySnap");
        let applied = match self.member.store().install_snapshot(&path, &keep) {
            Ok(a) => a,
            Err(e) => crate::fatal(&format!(
                "install the snapshot {} from the leader: {e}",
                path.display()
            )),
        };
        if applied.index != meta.index {
            crate::fatal(&format!(
                "the snapshot {} holds raft index {} but raft announced {}",
                path.display(),
                applied.index,
                meta.index
            ));
        }
        crate::failpoint!("raftAfterApplySnap");
        if let Err(e) = self.after_install() {
            crate::fatal(&format!("reload state after installing a snapshot: {e:#}"));
        }
        tracing::info!(
            index = applied.index,
            path = %path.display(),
            "installed the leader's snapshot"
        );
        self.member.snapshots().remove_older_than(applied.index);
        self.links.applied_tx.send_replace(applied.index);
        applied
    }

    /// Rebuilds what lives in memory from the freshly installed backend.
    fn after_install(&self) -> anyhow::Result<()> {
        self.member.lessor().recover(
            self.member.store().leases()?,
            self.member.store().take_leased_keys(),
        );
        let view = self.member.store().read()?;
        self.member
            .hub()
            .reset(view.current_rev(), view.compacted_rev());
        drop(view);
        self.member.membership().load(self.member.store())?;
        self.member.auth().load(self.member.store())?;
        self.member.alarms().replace(
            &self
                .member
                .store()
                .meta_with_prefix(crate::alarm::META_ALARM_PREFIX)?,
        );
        if self
            .member
            .membership()
            .is_removed(self.member.membership().local_id)
        {
            self.member.transport().mark_removed();
        }
        self.member.transport().connect_all();
        Ok(())
    }

    /// Applies a committed conf change to the membership (validated as
    /// etcd's ValidateConfigurationChange does: an invalid change was
    /// refused at proposal, this catches races between two of them).
    fn apply_conf_change(
        &self,
        wt: &mut WriteTxn<'_>,
        entry: &Entry,
    ) -> Result<(u64, Option<crate::propose::Error>), ApplyError> {
        use crate::propose::Error as E;
        let cc = match ConfChange::parse_from_bytes(&entry.data) {
            Ok(cc) => cc,
            Err(e) => crate::fatal(&format!(
                "raft entry {} is not a conf change ({e}): the log is corrupt",
                entry.index
            )),
        };
        let context = (!cc.context.is_empty())
            .then(|| Member::decode(cc.context.as_ref()))
            .transpose()
            .map_err(|e| {
                ApplyError::Storage(format!("conf change {}: bad member: {e}", entry.index))
            })?;
        let id = cc.node_id;
        let existing = self.member.membership().member(id);
        let refused = match cc.get_change_type() {
            ConfChangeType::AddNode | ConfChangeType::AddLearnerNode => {
                let Some(member) = context else {
                    return Ok((cc.id, Some(E::MemberBadUrls)));
                };
                if self.member.membership().is_removed(id) {
                    Some(E::MemberNotFound)
                } else if let Some(old) = existing {
                    if old.is_learner && !member.is_learner {
                        // a promotion
                        let promoted = Member {
                            is_learner: false,
                            ..old
                        };
                        self.store_member(wt, &promoted)?;
                        tracing::info!(promoted_member_id = format!("{id:x}"), "promote member");
                        None
                    } else if old.peer_urls == member.peer_urls
                        && old.is_learner == member.is_learner
                    {
                        // the same add, applied again (bootstrap entries
                        // after a join): nothing to do
                        None
                    } else {
                        Some(E::MemberExists)
                    }
                } else {
                    tracing::info!(
                        added_peer_id = format!("{id:x}"),
                        added_peer_peer_urls = ?member.peer_urls,
                        added_peer_is_learner = member.is_learner,
                        "added member"
                    );
                    self.store_member(wt, &member)?;
                    None
                }
            }
            ConfChangeType::RemoveNode => match existing {
                None => Some(E::MemberNotFound),
                Some(_) => {
                    wt.delete_meta(&crate::cluster::member_key(id))?;
                    wt.put_meta(&crate::cluster::removed_key(id), b"")?;
                    self.member.membership().remove(id);
                    tracing::info!(removed_member_id = format!("{id:x}"), "removed member");
                    if id == self.member.membership().local_id {
                        self.member.transport().mark_removed();
                    } else {
                        self.member.transport().remove_peer(id);
                    }
                    None
                }
            },
        };
        Ok((cc.id, refused))
    }

    fn store_member(&self, wt: &mut WriteTxn<'_>, m: &Member) -> Result<(), ApplyError> {
        wt.put_meta(&crate::cluster::member_key(m.id), &m.encode_to_vec())?;
        self.member.membership().upsert(m.clone());
        self.member.transport().connect(m.id);
        Ok(())
    }

    /// Applies a batch into the open txn, moving `applied` past it, and
    /// returns what its waiters are owed.
    fn apply_batch(
        &self,
        wt: &mut WriteTxn<'_>,
        batch: Vec<Entry>,
        conf_states: Vec<(u64, ConfState)>,
        applied: &mut Applied,
    ) -> Answers {
        let compacted_before = wt.compacted_rev();
        let mut results = Vec::new();
        let mut conf_results = Vec::new();
        let mut internal = Vec::new();
        for entry in batch {
            if entry.index <= applied.index {
                continue; // applied before a restart
            }
            if entry.get_entry_type() == EntryType::EntryConfChange {
                match self.apply_conf_change(wt, &entry) {
                    Ok((waiter, refused)) => {
                        let result = match refused {
                            Some(e) => Err(e),
                            None => Ok(Response::Done),
                        };
                        conf_results.push((waiter, result));
                    }
                    Err(e) => crate::fatal(&format!("apply conf change {}: {e}", entry.index)),
                }
                if let Some((_, cs)) = conf_states.iter().find(|(i, _)| *i == entry.index) {
                    let bytes = match cs.write_to_bytes() {
                        Ok(b) => b,
                        Err(e) => crate::fatal(&format!("encode conf state: {e}")),
                    };
                    if let Err(e) = wt.put_meta(META_CONF_STATE, &bytes) {
                        crate::fatal(&format!("store conf state: {e}"));
                    }
                }
            }
            if entry.get_entry_type() == EntryType::EntryNormal && !entry.data.is_empty() {
                // The WAL's checksums vouch for the bytes, so an entry that
                // does not decode was proposed that way (by a buggy or
                // hostile proposer): every member skips it alike.
                let req = match InternalRaftRequest::decode(entry.data.as_ref()) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(
                            index = entry.index,
                            error = %e,
                            "skipped a raft entry that is not a request"
                        );
                        InternalRaftRequest::default()
                    }
                };
                let header = req.header.unwrap_or_default();
                if let Some(request) = req.request {
                    let started = std::time::Instant::now();
                    let ctx = Context {
                        lessor: self.member.lessor(),
                        membership: self.member.membership(),
                        alarms: self.member.alarms(),
                        auth: self.member.auth(),
                        index: entry.index,
                        caller: (!header.internal).then(|| crate::auth::AuthInfo {
                            username: header.username.clone(),
                            revision: header.auth_revision,
                        }),
                    };
                    let result = match apply_whole(wt, &ctx, &request) {
                        Ok(result) => result,
                        Err(e) => crate::fatal(&format!("undo failed entry {}: {e}", entry.index)),
                    };
                    // etcd's warnApplyDuration: 100 ms
                    if started.elapsed() > std::time::Duration::from_millis(100) {
                        crate::metrics::server().slow_apply.inc();
                    }
                    // Only this member's own storage failure stops it; every
                    // other error (TooLarge included) is the request's
                    // answer, reached alike by every member.
                    if let Err(ApplyError::Storage(e)) = &result {
                        crate::fatal(&format!("apply entry {}: {e}", entry.index));
                    }
                    if matches!(
                        request,
                        Request::MemberAttributes(_) | Request::ClusterVersion(_)
                    ) {
                        internal.push(request);
                    }
                    if header.member_id == self.member.member_id() {
                        results.push((header.id, result));
                    }
                }
            }
            *applied = Applied {
                index: entry.index,
                term: entry.term,
            };
        }
        // Entries are durable in the WAL and applying is deterministic:
        // answers may go out before the LMDB commit (a replay gives the
        // same answers), except a compaction's (see `Answers`).
        let (after_commit, now): (Vec<_>, Vec<_>) = results
            .into_iter()
            .partition(|(_, r)| matches!(r, Ok(Response::Compaction(_))));
        Answers {
            now,
            conf: conf_results,
            after_commit,
            internal,
            compacted: wt.compacted_rev() != compacted_before,
        }
    }
}

/// Applies one request whole or not at all: on success its keys follow
/// their leases, on failure its changes are undone. The outer error is a
/// failed undo (this member's storage: fatal to the caller).
fn apply_whole(
    wt: &mut WriteTxn<'_>,
    ctx: &Context<'_>,
    request: &Request,
) -> Result<ApplyResult, crate::mvcc::Error> {
    let result = apply_request(wt, ctx, request);
    if result.is_ok() {
        // keys follow their lease: a put moves the key to its new lease
        // (or none), a delete frees it
        for e in wt.request_events() {
            if let Some(kv) = &e.kv {
                let lease = if e.r#type == EventType::Put as i32 {
                    kv.lease
                } else {
                    0
                };
                ctx.lessor.attach(&kv.key, lease);
            }
        }
        wt.end_request();
    } else {
        wt.abort_request()?;
    }
    Ok(result)
}

/// A store with the member state requests read and change, outside raft:
/// requests applied here go through exactly the apply thread's code, one
/// LMDB txn each. For tests and the fuzzer (tests/fuzz.rs), which must
/// find what a hostile entry does to apply without a cluster around it.
pub struct Scratch {
    pub store: Arc<Store>,
    lessor: Lessor,
    membership: Membership,
    alarms: Alarms,
    auth: crate::auth::AuthStore,
    index: u64,
}

impl Scratch {
    /// A fresh store in `dir` (which must be empty and stay private to it).
    pub fn open(dir: &std::path::Path) -> anyhow::Result<Scratch> {
        let backend = crate::storage::backend::Backend::open(&dir.join("db"), 1 << 30)?;
        let tokens =
            crate::auth::token::Provider::from_options("simple", Duration::from_secs(300))?;
        Ok(Scratch {
            store: Arc::new(Store::open(backend)?),
            lessor: Lessor::new(Duration::from_secs(1)),
            membership: Membership::new(1, 1),
            alarms: Alarms::default(),
            auth: crate::auth::AuthStore::new(tokens, 4, false),
            index: 0,
        })
    }

    /// Applies `request` as the next entry, proposed by `caller` (None: by
    /// the member itself, unchecked), and commits. An `Err` is this
    /// member's own storage failing: where the apply thread would stop.
    pub fn apply(
        &mut self,
        request: &Request,
        caller: Option<crate::auth::AuthInfo>,
    ) -> Result<ApplyResult, crate::mvcc::Error> {
        self.index += 1;
        let ctx = Context {
            lessor: &self.lessor,
            membership: &self.membership,
            alarms: &self.alarms,
            auth: &self.auth,
            index: self.index,
            caller,
        };
        let mut wt = self.store.write()?;
        let result = apply_whole(&mut wt, &ctx, request)?;
        if let Err(ApplyError::Storage(e)) = &result {
            return Err(crate::mvcc::Error::Corrupt(e.clone()));
        }
        wt.commit(Applied {
            index: self.index,
            term: 1,
        })?;
        Ok(result)
    }
}

/// The member state requests read or change besides the MVCC store.
struct Context<'a> {
    lessor: &'a Lessor,
    membership: &'a Membership,
    alarms: &'a Alarms,
    auth: &'a crate::auth::AuthStore,
    /// The entry's raft index (simple auth tokens carry it).
    index: u64,
    /// Who proposed the request (etcd's header username/auth revision);
    /// `None` for the member's own requests, which are not checked.
    caller: Option<crate::auth::AuthInfo>,
}

/// RBAC as etcd's authApplierV3: admin requests need the root role, KV
/// and lease-revoke requests the permissions of `auth::requests`.
/// Deterministic: the auth state changes only through the log.
fn check_permissions(ctx: &Context<'_>, request: &Request) -> Result<(), ApplyError> {
    let auth = ctx.auth;
    let Some(who) = &ctx.caller else {
        return Ok(());
    };
    if crate::auth::needs_admin(request) {
        auth.check_admin(who)?;
    }
    let lease_keys = |id: i64| {
        ctx.lessor
            .time_to_live(id)
            .map(|t| t.keys)
            .unwrap_or_default()
    };
    match request {
        Request::Put(p) => auth.check_put(who, p, &lease_keys)?,
        Request::DeleteRange(d) => auth.check_delete_range(who, d)?,
        Request::Txn(t) => auth.check_txn(who, t)?,
        Request::LeaseRevoke(r) => auth.check_lease_keys(who, r.id, &lease_keys)?,
        _ => {}
    }
    Ok(())
}

/// What active alarms forbid (etcd's capped and corrupt appliers): with
/// NOSPACE, requests that grow the store; with CORRUPT, every KV and lease
/// change. Deterministic: alarms change only through the log.
fn check_alarms(alarms: &Alarms, request: &Request) -> Result<(), ApplyError> {
    use crate::alarm::cost_txn;
    if alarms.corrupt()
        && matches!(
            request,
            Request::Put(_)
                | Request::DeleteRange(_)
                | Request::Txn(_)
                | Request::Compaction(_)
                | Request::LeaseGrant(_)
                | Request::LeaseRevoke(_)
        )
    {
        return Err(ApplyError::Corrupt);
    }
    if alarms.nospace() {
        let grows = match request {
            Request::Put(_) | Request::LeaseGrant(_) => true,
            Request::Txn(t) => cost_txn(t) > 0,
            _ => false,
        };
        if grows {
            return Err(ApplyError::NoSpace);
        }
    }
    Ok(())
}

fn apply_alarm(wt: &mut WriteTxn<'_>, alarms: &Alarms, r: &AlarmRequest) -> ApplyResult {
    // An unknown type lists nothing (etcd: no alarm has it) and is never
    // raised or cleared (etcd would store it; it means nothing to anyone).
    let Ok(alarm) = AlarmType::try_from(r.alarm) else {
        return Ok(Response::Alarm(AlarmResponse::default()));
    };
    let mut resp = AlarmResponse::default();
    match AlarmAction::try_from(r.action) {
        Ok(AlarmAction::Get) => resp.alarms = alarms.get(alarm),
        Ok(AlarmAction::Activate) => {
            if alarm == AlarmType::None {
                return Ok(Response::Alarm(resp));
            }
            if let Some(m) = alarms.activate(r.member_id, alarm) {
                wt.put_meta(&crate::alarm::meta_key(r.member_id, alarm), b"")?;
                tracing::warn!(
                    alarm = alarm.as_str_name(),
                    from = format!("{:x}", r.member_id),
                    "alarm raised"
                );
                resp.alarms.push(m);
            }
        }
        Ok(AlarmAction::Deactivate) => {
            if let Some(m) = alarms.deactivate(r.member_id, alarm) {
                wt.delete_meta(&crate::alarm::meta_key(r.member_id, alarm))?;
                tracing::warn!(
                    alarm = alarm.as_str_name(),
                    from = format!("{:x}", r.member_id),
                    "alarm disarmed"
                );
                resp.alarms.push(m);
            }
        }
        Err(_) => {}
    }
    Ok(Response::Alarm(resp))
}

fn apply_request(wt: &mut WriteTxn<'_>, ctx: &Context<'_>, request: &Request) -> ApplyResult {
    let (lessor, membership) = (ctx.lessor, ctx.membership);
    check_alarms(ctx.alarms, request)?;
    check_permissions(ctx, request)?;
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
            if let Some(mut member) = membership.member(m.id) {
                member.name = m.name.clone();
                member.client_urls = m.client_urls.clone();
                wt.put_meta(&crate::cluster::member_key(m.id), &member.encode_to_vec())?;
                membership.upsert(member);
            }
            Response::Done
        }
        Request::MemberPeerUrls(u) => {
            let Some(mut member) = membership.member(u.id) else {
                return Err(ApplyError::MemberNotFound);
            };
            let taken = membership
                .members()
                .iter()
                .any(|m| m.id != u.id && m.peer_urls.iter().any(|p| u.peer_urls.contains(p)));
            if taken {
                return Err(ApplyError::PeerUrlExists);
            }
            member.peer_urls = u.peer_urls.clone();
            wt.put_meta(&crate::cluster::member_key(u.id), &member.encode_to_vec())?;
            tracing::info!(
                updated_member_id = format!("{:x}", u.id),
                updated_peer_urls = ?u.peer_urls,
                "updated member"
            );
            membership.upsert(member);
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
        Request::Alarm(a) => apply_alarm(wt, ctx.alarms, a)?,
        Request::AuthEnable(_)
        | Request::AuthDisable(_)
        | Request::Authenticate(_)
        | Request::AuthUserAdd(_)
        | Request::AuthUserDelete(_)
        | Request::AuthUserChangePassword(_)
        | Request::AuthUserGrantRole(_)
        | Request::AuthUserRevokeRole(_)
        | Request::AuthRoleAdd(_)
        | Request::AuthRoleDelete(_)
        | Request::AuthRoleGrantPermission(_)
        | Request::AuthRoleRevokePermission(_) => match ctx.auth.apply(wt, ctx.index, request)? {
            Some(token) => Response::Authenticate(token),
            None => Response::Done,
        },
        Request::LeaseCheckpoint(c) => {
            for record in lessor.checkpoint(&c.checkpoints) {
                wt.put_lease(&record)?;
            }
            Response::Done
        }
    })
}
