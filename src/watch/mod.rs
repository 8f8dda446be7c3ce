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

use std::collections::{HashMap, VecDeque};
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
    /// `from`: whole revisions, a step of about `max_events` events.
    /// Returns the events and the next revision to read, or `None` when the
    /// caller must read the store's history instead.
    pub fn recent(
        &self,
        range: &KeyRange,
        from: i64,
        max_events: usize,
    ) -> Option<(Vec<RevEvents>, i64)> {
        let mut one = Matcher::default();
        one.add(range, 0);
        let (mut batches, next) = self.recent_for(&one, from, max_events)?;
        Some((batches.remove(&0).unwrap_or_default(), next))
    }

    /// `recent` for many watchers at once, all with their cursor at `from`:
    /// the ring is walked once (whole revisions, until about `max_events`
    /// events were read or copied out), each event is matched through `matcher` (a hash lookup
    /// for single keys), and each watcher gets its own events. Returns the
    /// events per watcher index and the next revision for all of them, or
    /// `None` when the ring no longer holds `from`.
    pub fn recent_for(
        &self,
        matcher: &Matcher,
        from: i64,
        max_events: usize,
    ) -> Option<(HashMap<usize, Vec<RevEvents>>, i64)> {
        let ring = self.ring.read().expect("watch ring lock");
        let oldest = ring.revs.front()?.rev;
        if from < oldest {
            return None;
        }
        let mut out: HashMap<usize, Vec<RevEvents>> = HashMap::new();
        // the step ends after whole revisions once this many events were
        // read or handed out (an event concerning many watchers is copied
        // for each, under the ring's lock)
        let mut scanned = 0;
        let mut copied = 0;
        let mut next = from;
        let start = ring.revs.partition_point(|r| r.rev < from);
        let mut hits = Vec::new();
        for r in ring.revs.range(start..) {
            if scanned >= max_events || copied >= max_events {
                break;
            }
            next = r.rev + 1;
            scanned += r.events.len();
            for e in &r.events {
                let Some(kv) = e.kv.as_ref() else { continue };
                hits.clear();
                matcher.matching(&kv.key, &mut hits);
                copied += hits.len();
                for &w in &hits {
                    let batch = out.entry(w).or_default();
                    match batch.last_mut() {
                        Some(last) if last.rev == r.rev => last.events.push(e.clone()),
                        _ => batch.push(RevEvents {
                            rev: r.rev,
                            events: vec![e.clone()],
                        }),
                    }
                }
            }
        }
        Some((out, next.max(from)))
    }
}

/// Which of a set of watchers (by index) an event's key concerns: single
/// keys through a map, ranges one by one (most watchers watch one key).
#[derive(Default)]
pub struct Matcher {
    keys: HashMap<Vec<u8>, Vec<usize>>,
    ranges: Vec<(KeyRange, usize)>,
}

impl Matcher {
    pub fn add(&mut self, range: &KeyRange, watcher: usize) {
        match range {
            KeyRange::Single(k) => self.keys.entry(k.clone()).or_default().push(watcher),
            other => self.ranges.push((other.clone(), watcher)),
        }
    }

    /// The watchers `key` concerns, appended in the order they were added
    /// among the single-key ones, then the ranges'.
    pub fn matching(&self, key: &[u8], out: &mut Vec<usize>) {
        if let Some(ws) = self.keys.get(key) {
            out.extend_from_slice(ws);
        }
        out.extend(
            self.ranges
                .iter()
                .filter(|(r, _)| r.contains(key))
                .map(|(_, w)| *w),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::mvccpb::{Event, KeyValue};

    fn rev(rev: i64, keys: &[&str]) -> RevEvents {
        RevEvents {
            rev,
            events: keys
                .iter()
                .map(|k| Event {
                    kv: Some(KeyValue {
                        key: k.as_bytes().to_vec(),
                        mod_revision: rev,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        }
    }

    fn keys_of(batches: &[RevEvents]) -> Vec<(i64, String)> {
        batches
            .iter()
            .flat_map(|r| {
                r.events.iter().map(move |e| {
                    let key = e.kv.as_ref().map(|kv| kv.key.clone()).unwrap_or_default();
                    (r.rev, String::from_utf8(key).unwrap())
                })
            })
            .collect()
    }

    #[test]
    fn one_walk_gives_each_watcher_its_own_events() {
        let hub = Hub::new(1, 0);
        hub.publish(vec![
            rev(2, &["a", "b"]),
            rev(3, &["c"]),
            rev(4, &["b", "d"]),
        ]);
        let mut m = Matcher::default();
        m.add(&KeyRange::Single(b"b".to_vec()), 0);
        m.add(&KeyRange::Until(b"a".to_vec(), b"c".to_vec()), 1);
        m.add(&KeyRange::From(b"c".to_vec()), 2);
        m.add(&KeyRange::Single(b"z".to_vec()), 3);
        let (batches, next) = hub.recent_for(&m, 3, 100).unwrap();
        assert_eq!(next, 5);
        assert_eq!(keys_of(&batches[&0]), [(4, "b".to_string())]);
        assert_eq!(keys_of(&batches[&1]), [(4, "b".to_string())]);
        assert_eq!(
            keys_of(&batches[&2]),
            [(3, "c".to_string()), (4, "d".to_string())]
        );
        assert!(!batches.contains_key(&3));
        // one watcher's walk
        let (own, own_next) = hub.recent(&KeyRange::From(b"c".to_vec()), 3, 100).unwrap();
        assert_eq!(keys_of(&own), keys_of(&batches[&2]));
        assert_eq!(own_next, next);
        // a step stops after whole revisions past the bound; a cursor the
        // ring no longer holds is refused
        let (_, next) = hub.recent_for(&m, 2, 1).unwrap();
        assert_eq!(next, 3);
        assert!(hub.recent_for(&m, 1, 100).is_none());
    }
}
