//! The in-memory index from user key to the revisions that changed it, as
//! etcd's `treeIndex`. LMDB stores records by revision only, so keys of any
//! length work (LMDB's own key limit is 511 bytes); the index is rebuilt from
//! LMDB at startup.
//!
//! Each change keeps the key's create revision and version, so the write path
//! computes the next version, and count/keys-only reads finish, without
//! touching LMDB.

use std::collections::BTreeMap;
use std::ops::Bound;

use super::revision::Revision;

/// One change of one key. `version == 0` marks a deletion (tombstone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub rev: Revision,
    pub create_revision: i64,
    pub version: i64,
}

impl Change {
    pub fn is_tombstone(&self) -> bool {
        self.version == 0
    }
}

/// Which keys a request names, decoded from etcd's (key, range_end) pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyRange {
    Single(Vec<u8>),
    /// `[start, end)`.
    Until(Vec<u8>, Vec<u8>),
    /// Every key `>= start` (range_end `"\0"`).
    From(Vec<u8>),
}

impl KeyRange {
    /// etcd's rule: empty range_end is one key, `"\0"` means no upper bound.
    pub fn new(key: &[u8], range_end: &[u8]) -> Self {
        if range_end.is_empty() {
            KeyRange::Single(key.to_vec())
        } else if range_end == [0] {
            KeyRange::From(key.to_vec())
        } else {
            KeyRange::Until(key.to_vec(), range_end.to_vec())
        }
    }

    pub fn contains(&self, k: &[u8]) -> bool {
        match self {
            KeyRange::Single(s) => s == k,
            KeyRange::Until(s, e) => k >= s.as_slice() && k < e.as_slice(),
            KeyRange::From(s) => k >= s.as_slice(),
        }
    }
}

#[derive(Default)]
pub struct KeyIndex {
    keys: BTreeMap<Vec<u8>, Vec<Change>>,
}

impl KeyIndex {
    /// Appends a change; changes arrive in revision order.
    pub fn record(&mut self, key: &[u8], change: Change) {
        match self.keys.get_mut(key) {
            Some(history) => history.push(change),
            None => {
                self.keys.insert(key.to_vec(), vec![change]);
            }
        }
    }

    /// The key's state at `rev`: its last change at or before `rev`, unless
    /// that change deleted it.
    pub fn get(&self, key: &[u8], rev: i64) -> Option<Change> {
        self.keys.get(key).and_then(|h| live_at(h, rev))
    }

    /// Calls `f` for every key in `range` that exists at `rev`, in key order,
    /// until `f` returns false.
    pub fn visit(&self, range: &KeyRange, rev: i64, f: impl FnMut(&[u8], Change) -> bool) {
        self.visit_after(range, rev, None, f)
    }

    /// As `visit`, for the keys after `after` only: a long walk resumes
    /// where it stopped, so it need not hold the index lock throughout.
    pub fn visit_after(
        &self,
        range: &KeyRange,
        rev: i64,
        after: Option<&[u8]>,
        mut f: impl FnMut(&[u8], Change) -> bool,
    ) {
        let mut emit = |k: &Vec<u8>, h: &Vec<Change>| match live_at(h, rev) {
            Some(c) => f(k, c),
            None => true,
        };
        let (start, end) = match range {
            KeyRange::Single(k) => {
                if after.is_none_or(|a| a < k.as_slice()) {
                    if let Some(h) = self.keys.get(k) {
                        emit(k, h);
                    }
                }
                return;
            }
            KeyRange::Until(s, e) => {
                if s >= e {
                    return;
                }
                (s.as_slice(), Bound::Excluded(e.as_slice()))
            }
            KeyRange::From(s) => (s.as_slice(), Bound::Unbounded),
        };
        let lower = match after {
            Some(a) if a >= start => Bound::Excluded(a),
            _ => Bound::Included(start),
        };
        if let (Bound::Excluded(a), Bound::Excluded(e)) = (lower, end) {
            if a >= e {
                return;
            }
        }
        for (k, h) in self.keys.range::<[u8], _>((lower, end)) {
            if !emit(k, h) {
                break;
            }
        }
    }

    /// The revisions compaction at `at` may drop: every change superseded by
    /// a later change at or before `at`, and a tombstone at or before `at`.
    pub fn compactable(&self, at: i64) -> Vec<(Vec<u8>, Revision)> {
        let mut out = Vec::new();
        for (k, h) in &self.keys {
            let keep_from = h.partition_point(|c| c.rev.main <= at);
            if keep_from == 0 {
                continue;
            }
            // changes [0, keep_from) are at or before `at`; the last of them
            // survives unless it is a tombstone.
            let last = &h[keep_from - 1];
            let drop_until = if last.is_tombstone() {
                keep_from
            } else {
                keep_from - 1
            };
            for c in &h[..drop_until] {
                out.push((k.clone(), c.rev));
            }
        }
        out
    }

    /// Removes what `compactable` listed (after LMDB has committed it).
    pub fn remove(&mut self, dropped: &[(Vec<u8>, Revision)]) {
        for (k, rev) in dropped {
            if let Some(h) = self.keys.get_mut(k) {
                h.retain(|c| c.rev != *rev);
                if h.is_empty() {
                    self.keys.remove(k);
                }
            }
        }
    }

    /// Number of keys that exist at the newest revision.
    pub fn live_keys(&self) -> usize {
        self.keys
            .values()
            .filter(|h| h.last().is_some_and(|c| !c.is_tombstone()))
            .count()
    }
}

fn live_at(history: &[Change], rev: i64) -> Option<Change> {
    let n = history.partition_point(|c| c.rev.main <= rev);
    let c = *history.get(n.checked_sub(1)?)?;
    (!c.is_tombstone()).then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(ix: &mut KeyIndex, k: &str, main: i64, create: i64, version: i64) {
        ix.record(
            k.as_bytes(),
            Change {
                rev: Revision::new(main, 0),
                create_revision: create,
                version,
            },
        );
    }

    #[test]
    fn reads_at_revisions_and_compacts() {
        let mut ix = KeyIndex::default();
        put(&mut ix, "a", 2, 2, 1);
        put(&mut ix, "a", 3, 2, 2);
        put(&mut ix, "a", 4, 0, 0); // delete
        put(&mut ix, "b", 5, 5, 1);
        assert_eq!(ix.get(b"a", 1), None);
        assert_eq!(ix.get(b"a", 3).unwrap().version, 2);
        assert_eq!(ix.get(b"a", 4), None);
        let mut seen = vec![];
        ix.visit(&KeyRange::From(b"a".to_vec()), 3, |k, _| {
            seen.push(k.to_vec());
            true
        });
        assert_eq!(seen, vec![b"a".to_vec()]);
        let dropped = ix.compactable(4);
        assert_eq!(dropped.len(), 3); // all of "a"
        ix.remove(&dropped);
        assert_eq!(ix.get(b"b", 5).unwrap().version, 1);
        assert_eq!(ix.live_keys(), 1);
    }

    #[test]
    fn key_range_from_etcd_pair() {
        assert_eq!(KeyRange::new(b"a", b""), KeyRange::Single(b"a".to_vec()));
        assert_eq!(KeyRange::new(b"a", b"\0"), KeyRange::From(b"a".to_vec()));
        assert!(KeyRange::new(b"a", b"b").contains(b"az"));
        assert!(!KeyRange::new(b"a", b"b").contains(b"b"));
    }

    #[test]
    fn a_walk_resumes_after_the_key_it_stopped_at() {
        let mut ix = KeyIndex::default();
        for (i, k) in ["a", "b", "c", "d", "e"].iter().enumerate() {
            let rev = Revision::new(i as i64 + 1, 0);
            ix.record(
                k.as_bytes(),
                Change {
                    rev,
                    create_revision: rev.main,
                    version: 1,
                },
            );
        }
        let keys = |range: KeyRange, after: Option<&[u8]>| {
            let mut out = Vec::new();
            ix.visit_after(&range, 10, after, |k, _| {
                out.push(String::from_utf8(k.to_vec()).unwrap());
                true
            });
            out.join("")
        };
        assert_eq!(keys(KeyRange::From(b"a".to_vec()), Some(b"b")), "cde");
        assert_eq!(keys(KeyRange::From(b"c".to_vec()), Some(b"a")), "cde");
        assert_eq!(
            keys(KeyRange::Until(b"a".to_vec(), b"d".to_vec()), Some(b"b")),
            "c"
        );
        assert_eq!(
            keys(KeyRange::Until(b"a".to_vec(), b"d".to_vec()), Some(b"c")),
            ""
        );
        assert_eq!(
            keys(KeyRange::Until(b"a".to_vec(), b"d".to_vec()), Some(b"z")),
            ""
        );
        assert_eq!(keys(KeyRange::Single(b"c".to_vec()), Some(b"b")), "c");
        assert_eq!(keys(KeyRange::Single(b"c".to_vec()), Some(b"c")), "");
    }
}
