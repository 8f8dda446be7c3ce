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

use raft::eraftpb::{ConfState, Entry, Message, Snapshot, SnapshotMetadata};
use raft::storage::MemStorage;
use raft::{RawNode, StateRole, Storage};
use tokio::sync::{oneshot, watch};

use crate::server::wait::Wait;
use crate::server::Error as ServerError;
use crate::storage::wal::Wal;

/// Entries kept in memory below a snapshot, so a slow follower can catch up
/// without a snapshot (etcd's SnapshotCatchUpEntries).
const CATCH_UP_ENTRIES: u64 = 5000;

/// Everything other threads can ask of the raft thread.
pub enum RaftMsg {
    /// Propose a request; the waiter `id` learns the result from apply.
    Propose { id: u64, data: Vec<u8> },
    /// Ask for a read index (the commit index confirmed by a quorum).
    ReadIndex(oneshot::Sender<u64>),
    /// Stop after the current Ready.
    Shutdown,
}

/// Raft's state as other threads see it.
#[derive(Default)]
pub struct RaftShared {
    pub term: AtomicU64,
    pub leader: AtomicU64,
    pub is_leader: AtomicBool,
    pub committed: AtomicU64,
    pub raft_index: AtomicU64,
    /// Raft ticks so far: the watchdog pings systemd only while it moves.
    pub ticks: AtomicU64,
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
    /// Voters of a brand-new cluster; ignored when the WAL has state.
    pub initial_voters: Vec<u64>,
    /// Last entry already applied to the MVCC store.
    pub applied: u64,
    pub tick: Duration,
    pub election_ticks: usize,
    pub snapshot_count: u64,
    pub pre_vote: bool,
}

pub struct RaftNode {
    node: RawNode<MemStorage>,
    wal: Wal,
    rx: Receiver<RaftMsg>,
    apply_tx: Sender<Vec<Entry>>,
    wait: Arc<Wait>,
    shared: Arc<RaftShared>,
    leader_tx: watch::Sender<u64>,
    durable: Arc<AtomicU64>,
    tick: Duration,
    snapshot_count: u64,
    snapshot_index: u64,
    pending_reads: Vec<oneshot::Sender<u64>>,
    reads_in_flight: HashMap<Vec<u8>, Vec<oneshot::Sender<u64>>>,
    read_seq: u64,
    member_id: u64,
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
        opts: NodeOptions<'_>,
        apply_tx: Sender<Vec<Entry>>,
        wait: Arc<Wait>,
        durable: Arc<AtomicU64>,
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
            && rec.entries.is_empty()
            && rec.hard_state.term == 0;
        let storage = MemStorage::new();
        let snapshot_index;
        if fresh {
            let cs = ConfState::from((opts.initial_voters.clone(), vec![]));
            let mut meta = SnapshotMetadata::default();
            meta.set_conf_state(cs.clone());
            wal.save_snapshot(&meta)?;
            storage.initialize_with_conf_state(cs);
            // etcd bootstraps a member at term 1 (its initial conf-change
            // entries), so its first election makes term 2; start from the
            // same term so `raft_term` reads as etcd's does.
            let hs = raft::eraftpb::HardState {
                term: 1,
                ..Default::default()
            };
            wal.set_hard_state(&hs)?;
            wal.sync()?;
            storage.wl().set_hardstate(hs);
            snapshot_index = 0;
        } else {
            snapshot_index = rec.snapshot.index;
            if rec.snapshot.index == 0 {
                storage.initialize_with_conf_state(rec.snapshot.get_conf_state().clone());
            } else {
                let mut snap = Snapshot::default();
                snap.set_metadata(rec.snapshot.clone());
                storage.wl().apply_snapshot(snap)?;
            }
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
            storage.wl().append(&rec.entries)?;
            let mut hs = rec.hard_state.clone();
            // Applied entries were committed even if that commit index was
            // not synced yet; raft-rs refuses applied > commit.
            hs.commit = hs.commit.max(opts.applied).max(rec.snapshot.index);
            storage.wl().set_hardstate(hs);
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
            ..Default::default()
        };
        config.validate()?;
        let mut node = RawNode::new(&config, storage, &super::logger::logger())?;
        let voters = node.store().initial_state()?.conf_state.voters;
        if voters == [opts.member_id] {
            // Alone: no one to wait for, become leader now.
            node.campaign()?;
        }
        let (tx, rx) = mpsc::channel();
        let (leader_tx, leader_rx) = watch::channel(0);
        let shared = Arc::new(RaftShared::default());
        let handle = RaftHandle {
            tx,
            shared: shared.clone(),
            leader_rx,
        };
        Ok(Opened {
            node: RaftNode {
                node,
                wal,
                rx,
                apply_tx,
                wait,
                shared,
                leader_tx,
                durable,
                tick: opts.tick,
                snapshot_count: opts.snapshot_count.max(1),
                snapshot_index,
                pending_reads: Vec::new(),
                reads_in_flight: HashMap::new(),
                read_seq: 0,
                member_id: opts.member_id,
            },
            handle,
            fresh,
        })
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
            if self.node.has_ready() {
                if let Err(e) = self.on_ready() {
                    crate::fatal(&format!("raft storage failure: {e}"));
                }
            }
            self.maybe_snapshot();
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
            RaftMsg::ReadIndex(tx) => self.pending_reads.push(tx),
            RaftMsg::Shutdown => return false,
        }
        true
    }

    /// All reads that arrived since the last one share one read index.
    fn issue_read_index(&mut self) {
        if self.pending_reads.is_empty() {
            return;
        }
        self.read_seq += 1;
        let ctx = self.read_seq.to_be_bytes().to_vec();
        self.reads_in_flight
            .insert(ctx.clone(), std::mem::take(&mut self.pending_reads));
        self.node.read_index(ctx);
    }

    fn on_ready(&mut self) -> anyhow::Result<()> {
        let mut ready = self.node.ready();
        if let Some(ss) = ready.ss() {
            self.on_soft_state(ss.leader_id, ss.raft_state);
        }
        for rs in ready.take_read_states() {
            if let Some(waiters) = self.reads_in_flight.remove(&rs.request_ctx) {
                for w in waiters {
                    let _ = w.send(rs.index);
                }
            }
        }
        self.send(ready.take_messages());
        if !ready.snapshot().is_empty() {
            // Only a leader sends snapshots, and only to other members.
            anyhow::bail!("received a raft snapshot, but this member has no peers to get one from");
        }
        self.apply(ready.take_committed_entries());
        if !ready.entries().is_empty() {
            self.wal.append_entries(ready.entries())?;
            self.node.mut_store().wl().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.wal.set_hard_state(hs)?;
            self.node.mut_store().wl().set_hardstate(hs.clone());
            self.shared.term.store(hs.term, Ordering::Release);
        }
        self.wal.sync()?;
        self.send(ready.take_persisted_messages());
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            let mut hs = self.node.store().rl().hard_state().clone();
            hs.commit = commit;
            self.node.mut_store().wl().set_hardstate(hs.clone());
            // Not synced on its own: a restart raises commit to applied.
            self.wal.set_hard_state(&hs)?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries());
        self.node.advance_apply();
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
            let term = self.node.raft.term;
            self.shared.term.store(term, Ordering::Release);
            if leader != 0 {
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

    fn apply(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        if self.apply_tx.send(entries).is_err() {
            crate::fatal("the apply thread stopped");
        }
    }

    /// Messages for other members. A single member never has any; the peer
    /// transport (multi-member clusters) is not built yet.
    fn send(&mut self, msgs: Vec<Message>) {
        for m in msgs {
            if m.to != self.member_id {
                tracing::warn!(
                    to = format!("{:x}", m.to),
                    "no peer transport: dropping raft message"
                );
            }
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
            conf_state: Some(self.node.store().initial_state()?.conf_state).into(),
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
        let compact_to = index.saturating_sub(CATCH_UP_ENTRIES);
        if compact_to > 0 {
            self.node.mut_store().wl().compact(compact_to)?;
        }
        tracing::info!(
            snapshot_index = index,
            purged_wal_files = purged,
            "saved snapshot"
        );
        Ok(())
    }
}
