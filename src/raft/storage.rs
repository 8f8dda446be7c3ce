//! raft-rs's `Storage` over the in-memory tail of the log: the entries
//! after the last compaction point, the hard state and the conf state.
//! The WAL (written by the raft thread) is what makes them durable; this
//! is only what raft reads back.
//!
//! Snapshots are the backend's: `snapshot()` hands out the newest snapshot
//! file's metadata, and asks the snapshotter for a fresh one when it is
//! older than the log's compaction point.

use std::sync::Arc;

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

use crate::storage::snapshot::Snapshotter;

pub struct LogStore {
    hard_state: HardState,
    conf_state: ConfState,
    /// Index and term of the entry just before `entries[0]`: the last
    /// compaction point (or snapshot).
    base_index: u64,
    base_term: u64,
    entries: Vec<Entry>,
    snapshots: Arc<Snapshotter>,
}

impl LogStore {
    pub fn new(snapshots: Arc<Snapshotter>) -> Self {
        LogStore {
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            base_index: 0,
            base_term: 0,
            entries: Vec::new(),
            snapshots,
        }
    }

    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    pub fn set_hard_state(&mut self, hs: HardState) {
        self.hard_state = hs;
    }

    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    pub fn set_conf_state(&mut self, cs: ConfState) {
        self.conf_state = cs;
    }

    /// Starts the log after a snapshot (or a restart's WAL snapshot).
    pub fn set_base(&mut self, index: u64, term: u64) {
        self.base_index = index;
        self.base_term = term;
        self.entries.clear();
    }

    fn last(&self) -> u64 {
        self.base_index + self.entries.len() as u64
    }

    /// Appends entries, replacing any conflicting tail.
    pub fn append(&mut self, ents: &[Entry]) -> anyhow::Result<()> {
        let Some(first) = ents.first() else {
            return Ok(());
        };
        if first.index <= self.base_index {
            anyhow::bail!(
                "append at index {} below the log's compaction point {}",
                first.index,
                self.base_index
            );
        }
        if first.index > self.last() + 1 {
            anyhow::bail!(
                "append at index {} leaves a gap after {}",
                first.index,
                self.last()
            );
        }
        self.entries
            .truncate((first.index - self.base_index - 1) as usize);
        self.entries.extend_from_slice(ents);
        Ok(())
    }

    /// Drops entries before `index` (they are in the backend already).
    pub fn compact(&mut self, index: u64) -> anyhow::Result<()> {
        if index <= self.base_index + 1 {
            return Ok(());
        }
        let index = index.min(self.last() + 1);
        let drop = (index - self.base_index - 1) as usize;
        let new_base = &self.entries[drop - 1];
        (self.base_index, self.base_term) = (new_base.index, new_base.term);
        self.entries.drain(..drop);
        Ok(())
    }

    /// A snapshot from the leader replaces the whole log.
    pub fn apply_snapshot(&mut self, meta: &SnapshotMetadata) {
        self.set_base(meta.index, meta.term);
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = meta.index;
        self.conf_state = meta.get_conf_state().clone();
    }
}

impl raft::Storage for LogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low <= self.base_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last() + 1 {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let lo = (low - self.base_index - 1) as usize;
        let hi = (high - self.base_index - 1) as usize;
        let mut ents = self.entries[lo..hi].to_vec();
        raft::util::limit_size(&mut ents, max_size.into());
        Ok(ents)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.base_index {
            return Ok(self.base_term);
        }
        if idx < self.base_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[(idx - self.base_index - 1) as usize].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.base_index + 1)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        // The follower needs everything up to our compaction point.
        let min = request_index.max(self.base_index);
        match self.snapshots.newest_at_least(min, to) {
            Some(meta) => {
                let mut snap = Snapshot::default();
                snap.set_metadata(meta);
                Ok(snap)
            }
            None => Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Default::default()
        }
    }

    fn store() -> LogStore {
        let dir = std::env::temp_dir();
        LogStore::new(Arc::new(Snapshotter::detached(dir)))
    }

    #[test]
    fn append_truncates_conflicts_and_compact_keeps_the_base_term() {
        let mut s = store();
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)]).unwrap();
        s.append(&[entry(3, 2), entry(4, 2)]).unwrap();
        assert_eq!(s.last_index().unwrap(), 4);
        assert_eq!(s.term(3).unwrap(), 2);
        s.compact(3).unwrap();
        assert_eq!(s.first_index().unwrap(), 3);
        assert_eq!(s.term(2).unwrap(), 1, "term of the entry before the first");
        assert!(s.term(1).is_err());
        assert!(s
            .entries(2, 4, None, GetEntriesContext::empty(false))
            .is_err());
        let got = s
            .entries(3, 5, None, GetEntriesContext::empty(false))
            .unwrap();
        assert_eq!(got.iter().map(|e| e.index).collect::<Vec<_>>(), [3, 4]);
        assert!(s.append(&[entry(7, 2)]).is_err(), "a gap is refused");
    }

    #[test]
    fn snapshot_resets_the_log() {
        let mut s = store();
        s.append(&[entry(1, 1), entry(2, 1)]).unwrap();
        let meta = SnapshotMetadata {
            index: 10,
            term: 3,
            ..Default::default()
        };
        s.apply_snapshot(&meta);
        assert_eq!(s.first_index().unwrap(), 11);
        assert_eq!(s.last_index().unwrap(), 10);
        assert_eq!(s.term(10).unwrap(), 3);
        assert_eq!(s.hard_state().commit, 10);
    }
}
