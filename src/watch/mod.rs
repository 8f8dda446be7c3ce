//! Watch: the event feed and the per-stream watchers.
//!
//! Pull, not push. The apply thread publishes each committed revision's
//! events into `Hub`, a bounded in-memory ring, and bumps a revision
//! counter. Every watch stream keeps a cursor (next revision) per watcher
//! and pulls: from the ring when the cursor is still inside it, otherwise
//! from the store's history in LMDB. So a slow client only slows its own
//! stream, writers never wait on watchers, memory stays bounded whatever the
//! number of watchers, and cursors make gaps and duplicates impossible:
//! every revision is delivered whole, once, in order. The per-stream task
//! that pulls (`api::watch::stream`) lives with the Watch service.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use prost::Message as _;
use tokio::sync::watch;

use crate::mvcc::{KeyRange, RevEvents};

/// Bounds of the shared ring of recent events.
const RING_MAX_EVENTS: usize = 65_536;
const RING_MAX_BYTES: usize = 64 << 20;

pub struct Hub {
    ring: RwLock<Ring>,
    /// Newest revision whose events are in the ring.
    current: watch::Sender<i64>,
    /// The store's compaction revision: a watcher whose cursor is below it
    /// is canceled, even when the ring still holds its events (as etcd).
    compacted: AtomicI64,
}

#[derive(Default)]
struct Ring {
    revs: VecDeque<Arc<RevEvents>>,
    events: usize,
    bytes: usize,
}

fn size_of(r: &RevEvents) -> usize {
    r.events.iter().map(|e| e.encoded_len()).sum()
}

impl Hub {
    pub fn new(current_rev: i64, compacted_rev: i64) -> Self {
        Hub {
            ring: RwLock::new(Ring::default()),
            current: watch::Sender::new(current_rev),
            compacted: AtomicI64::new(compacted_rev),
        }
    }

    /// Called by the apply thread after a compaction commits.
    pub fn set_compacted(&self, rev: i64) {
        self.compacted.fetch_max(rev, Ordering::AcqRel);
    }

    pub fn compacted(&self) -> i64 {
        self.compacted.load(Ordering::Acquire)
    }

    /// Called by the apply thread after its commit, in revision order.
    pub fn publish(&self, batch: Vec<RevEvents>) {
        let Some(last) = batch.last().map(|r| r.rev) else {
            return;
        };
        {
            let mut ring = self.ring.write().expect("watch ring lock");
            for r in batch {
                ring.events += r.events.len();
                ring.bytes += size_of(&r);
                ring.revs.push_back(Arc::new(r));
            }
            while ring.revs.len() > 1
                && (ring.events > RING_MAX_EVENTS || ring.bytes > RING_MAX_BYTES)
            {
                if let Some(old) = ring.revs.pop_front() {
                    ring.events -= old.events.len();
                    ring.bytes -= size_of(&old);
                }
            }
        }
        self.current.send_replace(last);
    }

    /// After a snapshot from the leader replaced the store: the ring's
    /// events no longer join the store's history, so watchers read the
    /// history from the store until new events arrive.
    pub fn reset(&self, current_rev: i64, compacted_rev: i64) {
        *self.ring.write().expect("watch ring lock") = Ring::default();
        self.compacted.fetch_max(compacted_rev, Ordering::AcqRel);
        self.current.send_replace(current_rev);
    }

    pub fn current(&self) -> i64 {
        *self.current.borrow()
    }

    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.current.subscribe()
    }

    /// Events in `range` from revision `from` on, if the ring still holds
    /// `from`: whole revisions, at most about `max_events`. Returns the
    /// events and the next revision to read, or `None` when the caller
    /// must read the store's history instead.
    pub fn recent(
        &self,
        range: &KeyRange,
        from: i64,
        max_events: usize,
    ) -> Option<(Vec<RevEvents>, i64)> {
        let ring = self.ring.read().expect("watch ring lock");
        let oldest = ring.revs.front()?.rev;
        if from < oldest {
            return None;
        }
        let mut out = Vec::new();
        let mut count = 0;
        let mut next = from;
        let start = ring.revs.partition_point(|r| r.rev < from);
        for r in ring.revs.range(start..) {
            if count >= max_events {
                break;
            }
            next = r.rev + 1;
            let events: Vec<_> = r
                .events
                .iter()
                .filter(|e| e.kv.as_ref().is_some_and(|kv| range.contains(&kv.key)))
                .cloned()
                .collect();
            if !events.is_empty() {
                count += events.len();
                out.push(RevEvents { rev: r.rev, events });
            }
        }
        Some((out, next.max(from)))
    }
}
