//! The raft thread. Order per Ready (raft-rs's contract):
//! read states → messages → committed entries to apply → append entries and
//! hard state to the WAL → one fsync → persisted messages → advance → the
//! light ready's commit index, messages and committed entries.
//!
//! Proposals that arrive while a Ready is being handled wait in the channel
//! and are all stepped in before the next Ready: that is the group commit,
//! every proposal of a loop iteration shares one fsync.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfState, Entry, EntryType, HardState, Message, MessageType,
    SnapshotMetadata,
};
use raft::{RawNode, SnapshotStatus, StateRole, Storage};
use tokio::sync::{oneshot, watch};

use super::storage::LogStore;
use crate::peer::Transport;
use crate::propose::Error as ServerError;
use crate::propose::Wait;
use crate::proto::internal::Member;
use crate::storage::snapshot::Snapshotter;
use crate::storage::wal::Wal;

/// Everything other threads can ask of the raft thread.
pub enum RaftMsg {
    /// Propose a request; the waiter `id` learns the result from apply.
    Propose { id: u64, data: Vec<u8> },
    /// Propose a membership change; the waiter `cc.id` learns the result.
    ProposeConfChange(ConfChange),
    /// Ask for a read index (the commit index confirmed by a quorum).
    ReadIndex(oneshot::Sender<Result<u64, ServerError>>),
    /// A message from another member.
    Step(Message),
    /// The transport could not deliver to this member.
    Unreachable(u64),
    /// How sending a snapshot to a member went.
    SnapshotStatus { to: u64, ok: bool },
    /// Hand leadership to this member (leader only).
    TransferLeader(u64),
    /// The leader's view of every member's log.
    Progress(oneshot::Sender<Progress>),
    /// Stop after the current Ready (a leader first hands over leadership).
    Shutdown,
}

// The transport reports delivery failures by queueing them for the raft
// thread, as etcd's raftNode does for rafthttp.
impl crate::peer::transport::DeliveryReports for std::sync::mpsc::Sender<RaftMsg> {
    fn unreachable(&self, to: u64) {
        let _ = self.send(RaftMsg::Unreachable(to));
    }
    fn snapshot_status(&self, to: u64, ok: bool) {
        let _ = self.send(RaftMsg::SnapshotStatus { to, ok });
    }
}

/// What the leader knows of each member's log (empty on followers).
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub is_leader: bool,
    pub commit: u64,
    /// Highest index known to be replicated on each member (voters and
    /// learners; the leader itself included).
    pub matched: HashMap<u64, u64>,
    /// Members with a recent heartbeat answer (check-quorum's view).
    pub recent_active: HashMap<u64, bool>,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

/// What the raft thread hands the apply thread, in log order.
pub enum ApplyItem {
    /// Committed entries; `conf_states` holds the conf state after each
    /// conf-change entry among them, by index.
    Entries {
        entries: Vec<Entry>,
        conf_states: Vec<(u64, ConfState)>,
    },
    /// A snapshot from the leader replaces the whole state; its backend
    /// file is already saved.
    Snapshot(SnapshotMetadata),
}

/// What a batch of entries weighs in the apply backlog.
pub fn entries_bytes(entries: &[Entry]) -> u64 {
    entries.iter().map(|e| e.data.len() as u64).sum()
}

/// Raft's state as other threads see it.
#[derive(Default)]
pub struct RaftShared {
    pub term: AtomicU64,
    pub leader: AtomicU64,
    pub is_leader: AtomicBool,
    pub committed: AtomicU64,
    pub raft_index: AtomicU64,
    /// Bytes of committed entries handed to the apply thread and not yet
    /// applied (it subtracts what it applied): proposals wait while this
    /// is too large.
    pub apply_backlog_bytes: AtomicU64,
    /// Messages from peers queued for the raft thread (the peer service
    /// adds, the raft thread takes away): past a bound they are dropped,
    /// as etcd's full receive buffer drops them.
    pub peer_messages_queued: std::sync::atomic::AtomicUsize,
    /// Raft ticks so far: the watchdog pings systemd only while it moves.
    pub ticks: AtomicU64,
    /// When the current leader was learned (etcd's leadElectedTime), to
    /// tell a timeout caused by a leader failure from others.
    pub leader_elected_at: std::sync::Mutex<Option<Instant>>,
}

/// How the rest of the server talks to the raft thread.
#[derive(Clone)]
pub struct RaftHandle {
    pub tx: Sender<RaftMsg>,
    pub shared: Arc<RaftShared>,
    /// Leader id (0 = none), for those who wait for a leader.
    pub leader_rx: watch::Receiver<u64>,
}

pub struct NodeOptions<'a> {
    pub wal_dir: &'a Path,
    pub member_id: u64,
    /// Members of a brand-new cluster (written as the log's first conf
    /// changes, as etcd does); `None` for a member joining an existing
    /// cluster. Ignored when the WAL has state.
    pub bootstrap: Option<Vec<Member>>,
    /// The conf state stored with the backend's applied index, if any.
    pub conf_state: Option<ConfState>,
    /// Last entry already applied to the MVCC store.
    pub applied: u64,
    pub tick: Duration,
    pub election_ticks: usize,
    pub snapshot_count: u64,
    /// Entries kept below a snapshot, so a slow follower can catch up
    /// without one (--experimental-snapshot-catchup-entries).
    pub snapshot_catchup_entries: u64,
    pub pre_vote: bool,
    /// Installs the backend snapshot the WAL's snapshot record names, when
    /// the backend is older than it (a crash between receiving a snapshot
    /// and applying it); returns the backend's new applied index.
    pub install_snapshot: Option<InstallSnapshot<'a>>,
}

pub type InstallSnapshot<'a> = Box<dyn FnOnce(&SnapshotMetadata) -> anyhow::Result<u64> + 'a>;

pub struct RaftNode {
    node: RawNode<LogStore>,
    wal: Wal,
    rx: Receiver<RaftMsg>,
    apply_tx: Sender<ApplyItem>,
    transport: Option<Arc<Transport>>,
    /// Set by a Shutdown that waits for a leadership transfer.
    stopping_at: Option<Instant>,
    /// A conf change was handed to apply in this Ready.
    conf_changed: bool,
    election_timeout: Duration,
    wait: Arc<Wait>,
    shared: Arc<RaftShared>,
    leader_tx: watch::Sender<u64>,
    durable: Arc<AtomicU64>,
    tick: Duration,
    snapshot_count: u64,
    snapshot_catchup_entries: u64,
    snapshot_index: u64,
    pending_reads: Vec<oneshot::Sender<Result<u64, ServerError>>>,
    reads_in_flight: HashMap<Vec<u8>, ReadInFlight>,
    read_seq: u64,
    member_id: u64,
}

/// A ReadIndex request sent to raft and not yet answered.
struct ReadInFlight {
    waiters: Vec<oneshot::Sender<Result<u64, ServerError>>>,
    sent_at: Instant,
}

/// How long a ReadIndex request waits before it is sent again, as etcd's
/// `readIndexRetryTime`: raft drops one silently when it cannot serve it
/// (no leader known, or a new leader that has not yet committed in its
/// term), so an unanswered request is asked again, not left to time out.
const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

/// The log a brand-new cluster starts with, as etcd's bootstrap writes
/// it: one committed ConfChangeAddNode per initial member at term 1, so
/// members that join later learn the initial configuration from the log
/// itself. `etcdutl snapshot restore` writes the same log.
pub fn bootstrap_log(members: &[Member]) -> anyhow::Result<(Vec<Entry>, HardState)> {
    let mut entries = Vec::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        let cc = ConfChange {
            change_type: ConfChangeType::AddNode,
            node_id: m.id,
            context: prost::Message::encode_to_vec(m).into(),
            ..Default::default()
        };
        let mut e = Entry {
            term: 1,
            index: i as u64 + 1,
            ..Default::default()
        };
        e.set_entry_type(EntryType::EntryConfChange);
        e.data = cc.write_to_bytes()?.into();
        entries.push(e);
    }
    let hs = HardState {
        term: 1,
        commit: entries.len() as u64,
        ..Default::default()
    };
    Ok((entries, hs))
}

/// The conf state once the bootstrap log is applied: every initial member
/// votes.
pub fn bootstrap_conf_state(members: &[Member]) -> ConfState {
    ConfState {
        voters: members.iter().map(|m| m.id).collect(),
        ..Default::default()
    }
}

/// What `RaftNode::open` hands back besides the node.
pub struct Opened {
    pub node: RaftNode,
    pub handle: RaftHandle,
    /// True when this start bootstrapped a new cluster.
    pub fresh: bool,
}

impl RaftNode {
    /// Replays the WAL (or bootstraps it) and builds the raw node.
    pub fn open(
        mut opts: NodeOptions<'_>,
        apply_tx: Sender<ApplyItem>,
        wait: Arc<Wait>,
        durable: Arc<AtomicU64>,
        snapshots: Arc<Snapshotter>,
    ) -> anyhow::Result<Opened> {
        let (mut wal, rec) = Wal::open(opts.wal_dir)?;
        if rec.truncated_tail > 0 {
            tracing::warn!(
                wal_dir = %opts.wal_dir.display(),
                bytes = rec.truncated_tail,
                "cut a torn record from the end of the WAL (an unacknowledged write)"
            );
        }
        let fresh = rec.snapshot.get_conf_state().voters.is_empty()
            && rec.snapshot.index == 0
            && rec.entries.is_empty()
            && rec.hard_state.term == 0;
        let mut storage = LogStore::new(snapshots);
        let snapshot_index;
        if fresh {
            snapshot_index = 0;
            if let Some(members) = &opts.bootstrap {
                let (entries, hs) = bootstrap_log(members)?;
                wal.append_entries(&entries)?;
                wal.set_hard_state(&hs)?;
                wal.sync()?;
                storage.append(&entries)?;
                storage.set_hard_state(hs);
            }
        } else {
            snapshot_index = rec.snapshot.index;
            storage.set_base(rec.snapshot.index, rec.snapshot.term);
            if opts.applied < rec.snapshot.index {
                if let Some(install) = opts.install_snapshot.take() {
                    opts.applied = install(&rec.snapshot)?;
                    opts.conf_state = Some(rec.snapshot.get_conf_state().clone());
                }
            }
            let conf_state = opts
                .conf_state
                .clone()
                .unwrap_or_else(|| rec.snapshot.get_conf_state().clone());
            storage.set_conf_state(conf_state);
            let last_index = rec
                .entries
                .last()
                .map(|e| e.index)
                .unwrap_or(rec.snapshot.index);
            if opts.applied > last_index {
                anyhow::bail!(
                    "the backend has applied raft index {} but the WAL in {} ends at {}: the WAL is missing entries",
                    opts.applied,
                    opts.wal_dir.display(),
                    last_index
                );
            }
            if opts.applied < rec.snapshot.index {
                anyhow::bail!(
                    "the backend has applied raft index {} but the WAL starts after its snapshot at {}: the backend is older than the log",
                    opts.applied,
                    rec.snapshot.index
                );
            }
            if last_index > opts.applied {
                // entries the backend had not committed: published and
                // answered before the crash, they apply again now
                tracing::info!(
                    backend_applied_index = opts.applied,
                    wal_last_index = last_index,
                    entries = last_index - opts.applied,
                    "replaying WAL entries above the backend's applied index"
                );
            }
            storage.append(&rec.entries)?;
            let mut hs = rec.hard_state.clone();
            // Applied entries were committed even if that commit index was
            // not synced yet; raft-rs refuses applied > commit.
            hs.commit = hs.commit.max(opts.applied).max(rec.snapshot.index);
            storage.set_hard_state(hs);
        }
        let config = raft::Config {
            id: opts.member_id,
            election_tick: opts.election_ticks,
            heartbeat_tick: 1,
            applied: opts.applied,
            max_size_per_msg: 1024 * 1024,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: opts.pre_vote,
            max_committed_size_per_ready: 64 * 1024 * 1024,
            // etcd's MaxUncommittedEntriesSize: a leader whose followers
            // cannot keep up drops proposals past 1 GiB of uncommitted
            // entries instead of growing its log without bound
            max_uncommitted_size: 1 << 30,
            ..Default::default()
        };
        config.validate()?;
        let node = RawNode::new(&config, storage, &super::logger::logger())?;
        let (tx, rx) = mpsc::channel();
        let (leader_tx, leader_rx) = watch::channel(0);
        let shared = Arc::new(RaftShared::default());
        let handle = RaftHandle {
            tx,
            shared: shared.clone(),
            leader_rx,
        };
        let mut raft_node = RaftNode {
            node,
            wal,
            rx,
            apply_tx,
            transport: None,
            stopping_at: None,
            conf_changed: false,
            election_timeout: opts.tick * opts.election_ticks as u32,
            wait,
            shared,
            leader_tx,
            durable,
            tick: opts.tick,
            snapshot_count: opts.snapshot_count.max(1),
            snapshot_catchup_entries: opts.snapshot_catchup_entries,
            snapshot_index,
            pending_reads: Vec::new(),
            reads_in_flight: HashMap::new(),
            read_seq: 0,
            member_id: opts.member_id,
        };
        raft_node.campaign_if_alone();
        Ok(Opened {
            node: raft_node,
            handle,
            fresh,
        })
    }

    /// Where messages for other members go.
    pub fn set_transport(&mut self, transport: Arc<Transport>) {
        self.transport = Some(transport);
    }

    /// The only voter does not wait an election timeout to lead.
    fn campaign_if_alone(&mut self) {
        if self.node.raft.raft_log.committed > self.node.raft.raft_log.applied {
            return; // conf changes may be pending; apply first
        }
        let voters: Vec<u64> = self.node.raft.prs().conf().voters().ids().iter().collect();
        if voters == [self.member_id] && self.node.raft.state != StateRole::Leader {
            if let Err(e) = self.node.campaign() {
                tracing::warn!(error = %e, "campaign failed");
            }
        }
    }

    /// The loop. Returns on shutdown; a storage failure ends the process.
    pub fn run(mut self) {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let timeout = next_tick.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(timeout) {
                Ok(msg) => {
                    if !self.handle(msg) {
                        break;
                    }
                    // Take everything already queued: one Ready, one fsync.
                    let mut stop = false;
                    while let Ok(msg) = self.rx.try_recv() {
                        if !self.handle(msg) {
                            stop = true;
                            break;
                        }
                    }
                    if stop {
                        break;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                self.shared.ticks.fetch_add(1, Ordering::Relaxed);
                next_tick += self.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick;
                }
            }
            self.issue_read_index();
            self.retry_read_indexes();
            if self.node.has_ready() {
                if let Err(e) = self.on_ready() {
                    crate::fatal(&format!("raft storage failure: {e:#}"));
                }
            }
            self.maybe_snapshot();
            if let Some(deadline) = self.stopping_at {
                let leader = self.node.raft.leader_id;
                // Wait until the new leader is known, not just that this
                // member stepped down.
                let handed_over = leader != self.member_id && leader != 0;
                if handed_over || Instant::now() >= deadline {
                    if handed_over {
                        tracing::info!(
                            new_leader = format!("{leader:x}"),
                            "leadership transfer finished"
                        );
                    }
                    break;
                }
            }
        }
        // Flush what was accepted; the apply thread drains and exits when
        // this sender drops.
        if let Err(e) = self.wal.sync() {
            crate::fatal(&format!("sync WAL at shutdown: {e}"));
        }
    }

    /// Returns false on shutdown.
    fn handle(&mut self, msg: RaftMsg) -> bool {
        match msg {
            RaftMsg::Propose { id, data } => {
                if let Err(e) = self.node.propose(vec![], data) {
                    tracing::debug!(error = %e, "proposal dropped");
                    crate::metrics::server().proposals_failed.inc();
                    self.wait.trigger(id, Err(ServerError::NoLeader));
                }
            }
            RaftMsg::ProposeConfChange(cc) => {
                let id = cc.id;
                if let Err(e) = self.node.propose_conf_change(vec![], cc) {
                    tracing::debug!(error = %e, "conf change dropped");
                    crate::metrics::server().proposals_failed.inc();
                    self.wait.trigger(id, Err(ServerError::NoLeader));
                }
            }
            RaftMsg::ReadIndex(tx) => self.pending_reads.push(tx),
            RaftMsg::Step(m) => {
                self.shared
                    .peer_messages_queued
                    .fetch_sub(1, Ordering::AcqRel);
                // raft-rs panics on a heartbeat committing past this log's
                // end (commit_to's "out of range"); a leader never sends
                // one (it sends min(match, commit)), so it is forged.
                let last = self.node.raft.raft_log.last_index();
                if m.get_msg_type() == MessageType::MsgHeartbeat && m.commit > last {
                    tracing::warn!(
                        from = format!("{:x}", m.from),
                        commit = m.commit,
                        last_index = last,
                        "dropped a heartbeat committing past the end of the log"
                    );
                    return true;
                }
                if let Err(e) = self.node.step(m) {
                    tracing::debug!(error = %e, "raft message dropped");
                }
            }
            RaftMsg::Unreachable(id) => self.node.report_unreachable(id),
            RaftMsg::SnapshotStatus { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.node.report_snapshot(to, status);
            }
            RaftMsg::TransferLeader(to) => self.node.transfer_leader(to),
            RaftMsg::Progress(tx) => {
                let _ = tx.send(self.progress());
            }
            RaftMsg::Shutdown => return self.begin_shutdown(),
        }
        true
    }

    fn progress(&self) -> Progress {
        let raft = &self.node.raft;
        let conf = raft.prs().conf();
        let mut p = Progress {
            is_leader: raft.state == StateRole::Leader,
            commit: raft.raft_log.committed,
            voters: conf.voters().ids().iter().collect(),
            learners: conf.learners().iter().copied().collect(),
            ..Default::default()
        };
        if p.is_leader {
            for (id, pr) in raft.prs().iter() {
                p.matched.insert(*id, pr.matched);
                p.recent_active.insert(*id, pr.recent_active);
            }
        }
        p
    }

    /// A leader with other voters hands leadership to the most up-to-date
    /// one before stopping (etcd's TransferLeadershipOnShutdown); returns
    /// false when the loop may stop at once.
    fn begin_shutdown(&mut self) -> bool {
        if self.stopping_at.is_some() {
            return true;
        }
        let p = self.progress();
        let transferee = p
            .voters
            .iter()
            .filter(|&&id| id != self.member_id)
            .max_by_key(|&&id| p.matched.get(&id).copied().unwrap_or(0))
            .copied();
        match (p.is_leader, transferee) {
            (true, Some(to)) => {
                tracing::info!(
                    from = format!("{:x}", self.member_id),
                    to = format!("{to:x}"),
                    "leadership transfer starting"
                );
                self.node.transfer_leader(to);
                self.stopping_at = Some(Instant::now() + self.election_timeout);
                true
            }
            _ => false,
        }
    }

    /// All reads that arrived since the last one share one read index.
    fn issue_read_index(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        self.read_seq += 1;
        // The leader keys pending reads by context: make it unique across
        // members, or two members' reads would be taken for one.
        let mut ctx = self.member_id.to_be_bytes().to_vec();
        ctx.extend_from_slice(&self.read_seq.to_be_bytes());
        let read = ReadInFlight {
            waiters: std::mem::take(&mut self.pending_reads),
            sent_at: Instant::now(),
        };
        self.reads_in_flight.insert(ctx.clone(), read);
        self.node.read_index(ctx);
    }

    /// Sends unanswered ReadIndex requests again (the leader ignores a
    /// context it already holds), and forgets those whose callers all gave
    /// up: nothing stays in the map for a member cut off from its leader.
    fn retry_read_indexes(&mut self) {
        let now = Instant::now();
        let mut again = Vec::new();
        self.reads_in_flight.retain(|ctx, read| {
            if now.duration_since(read.sent_at) < READ_INDEX_RETRY {
                return true;
            }
            read.waiters.retain(|w| !w.is_closed());
            if read.waiters.is_empty() {
                crate::metrics::server().read_indexes_failed.inc();
                return false;
            }
            read.sent_at = now;
            again.push(ctx.clone());
            true
        });
        for ctx in again {
            tracing::warn!("waiting for ReadIndex response took too long, retrying");
            crate::metrics::server().slow_read_indexes.inc();
            self.node.read_index(ctx);
        }
    }

    fn on_ready(&mut self) -> anyhow::Result<()> {
        let mut ready = self.node.ready();
        for rs in ready.take_read_states() {
            if let Some(read) = self.reads_in_flight.remove(&rs.request_ctx) {
                for w in read.waiters {
                    let _ = w.send(Ok(rs.index));
                }
            }
        }
        if let Some(ss) = ready.ss() {
            self.on_soft_state(ss.leader_id, ss.raft_state);
        }
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            // From the leader: its backend file is saved already. Record it
            // in the WAL first, so a crash before the backend takes it
            // installs it again at startup.
            let meta = ready.snapshot().get_metadata().clone();
            tracing::info!(
                index = meta.index,
                term = meta.term,
                "applying a snapshot from the leader"
            );
            self.wal.save_snapshot(&meta)?;
            crate::failpoint!("raftAfterSaveSnap");
            self.node.mut_store().apply_snapshot(&meta);
            self.snapshot_index = meta.index;
            if self.apply_tx.send(ApplyItem::Snapshot(meta)).is_err() {
                crate::fatal("the apply thread stopped");
            }
        }
        let committed = ready.take_committed_entries();
        self.apply(committed);
        if !ready.entries().is_empty() {
            self.wal.append_entries(ready.entries())?;
            self.node.mut_store().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.wal.set_hard_state(hs)?;
            self.node.mut_store().set_hard_state(hs.clone());
            self.shared.term.store(hs.term, Ordering::Release);
        }
        self.wal.sync()?;
        self.send(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.node.store().hard_state().clone();
            hs.commit = commit;
            self.node.mut_store().set_hard_state(hs.clone());
            // Not synced on its own: a restart raises commit to applied.
            self.wal.set_hard_state(&hs)?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries());
        self.node.advance_apply();
        if std::mem::take(&mut self.conf_changed) {
            self.campaign_if_alone();
        }
        let status = self.node.status();
        self.shared
            .committed
            .store(status.hs.commit, Ordering::Release);
        crate::metrics::server()
            .proposals_committed
            .set(status.hs.commit as i64);
        self.shared
            .raft_index
            .store(self.node.raft.raft_log.last_index(), Ordering::Release);
        Ok(())
    }

    fn on_soft_state(&mut self, leader: u64, role: StateRole) {
        let prev = self.shared.leader.swap(leader, Ordering::AcqRel);
        self.shared
            .is_leader
            .store(role == StateRole::Leader, Ordering::Release);
        crate::metrics::server().observe_leader(prev, leader, role == StateRole::Leader);
        if prev != leader {
            // Read indexes asked of the old leader will never come back.
            for (_, read) in self.reads_in_flight.drain() {
                crate::metrics::server().read_indexes_failed.inc();
                for w in read.waiters {
                    let _ = w.send(Err(ServerError::LeaderChanged));
                }
            }
            let term = self.node.raft.term;
            self.shared.term.store(term, Ordering::Release);
            if leader != 0 {
                *self
                    .shared
                    .leader_elected_at
                    .lock()
                    .expect("leader time lock") = Some(Instant::now());
                tracing::info!(
                    logger = "raft",
                    "raft.node: {:x} elected leader {:x} at term {}",
                    self.member_id,
                    leader,
                    term
                );
            } else {
                tracing::info!(
                    logger = "raft",
                    "raft.node: {:x} lost leader {:x} at term {}",
                    self.member_id,
                    prev,
                    term
                );
            }
            self.leader_tx.send_replace(leader);
        }
    }

    /// Hands committed entries to the apply thread, applying conf changes
    /// to raft on the way (raft-rs wants them applied once committed).
    fn apply(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        let mut conf_states = Vec::new();
        for e in &entries {
            if e.get_entry_type() != EntryType::EntryConfChange {
                continue;
            }
            let cc = match ConfChange::parse_from_bytes(&e.data) {
                Ok(cc) => cc,
                Err(err) => crate::fatal(&format!(
                    "raft entry {} is not a conf change ({err}): the log is corrupt",
                    e.index
                )),
            };
            let cs = match self.node.apply_conf_change(&cc) {
                Ok(cs) => cs,
                Err(err) => {
                    // etcd applies an empty change when it refuses one.
                    tracing::warn!(index = e.index, error = %err, "ignored a conf change raft refused");
                    self.node.store().conf_state().clone()
                }
            };
            self.node.mut_store().set_conf_state(cs.clone());
            conf_states.push((e.index, cs));
        }
        self.conf_changed |= !conf_states.is_empty();
        self.shared
            .apply_backlog_bytes
            .fetch_add(entries_bytes(&entries), Ordering::AcqRel);
        if self
            .apply_tx
            .send(ApplyItem::Entries {
                entries,
                conf_states,
            })
            .is_err()
        {
            crate::fatal("the apply thread stopped");
        }
    }

    /// Messages for other members go to the transport, which never blocks.
    fn send(&mut self, msgs: Vec<Message>) {
        if msgs.is_empty() {
            return;
        }
        match &self.transport {
            Some(t) => t.send(msgs),
            None => tracing::debug!(
                count = msgs.len(),
                "no transport yet: raft messages dropped"
            ),
        }
    }

    /// Every `snapshot_count` applied entries, record a snapshot at the
    /// durable applied index and purge the WAL below it.
    fn maybe_snapshot(&mut self) {
        let durable = self.durable.load(Ordering::Acquire);
        if durable < self.snapshot_index + self.snapshot_count {
            return;
        }
        if let Err(e) = self.snapshot(durable) {
            crate::fatal(&format!("save snapshot: {e}"));
        }
    }

    fn snapshot(&mut self, index: u64) -> anyhow::Result<()> {
        let term = self.node.store().term(index)?;
        let meta = SnapshotMetadata {
            index,
            term,
            conf_state: Some(self.node.store().conf_state().clone()).into(),
            ..Default::default()
        };
        tracing::info!(
            applied_index = index,
            snapshot_index = self.snapshot_index,
            snapshot_count = self.snapshot_count,
            "triggering snapshot"
        );
        let purged = self.wal.save_snapshot(&meta)?;
        self.snapshot_index = index;
        let compact_to = index.saturating_sub(self.snapshot_catchup_entries);
        if compact_to > 0 {
            self.node.mut_store().compact(compact_to)?;
        }
        tracing::info!(
            snapshot_index = index,
            purged_wal_files = purged,
            "saved snapshot"
        );
        Ok(())
    }
}
