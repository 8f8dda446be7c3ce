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

/// Memory per key matters (a million keys is an ordinary store): keys are
/// boxed slices (no capacity word) and a key's first change is held
/// inline, with no allocation of its own; most keys have one change left
/// after a compaction.
#[derive(Default)]
pub struct KeyIndex {
    keys: BTreeMap<Box<[u8]>, History>,
}

/// A key's changes, oldest first.
#[derive(Debug, Clone)]
enum History {
    One(Change),
    Many(Vec<Change>),
}

impl History {
    fn as_slice(&self) -> &[Change] {
        match self {
            History::One(c) => std::slice::from_ref(c),
            History::Many(v) => v,
        }
    }

    fn push(&mut self, change: Change) {
        match self {
            History::One(first) => *self = History::Many(vec![*first, change]),
            History::Many(v) => v.push(change),
        }
    }

    /// Keeps the changes `keep` says yes to; false when none is left.
    fn retain(&mut self, mut keep: impl FnMut(&Change) -> bool) -> bool {
        match self {
            History::One(c) => keep(c),
            History::Many(v) => {
                v.retain(|c| keep(c));
                match v.len() {
                    0 => false,
                    1 => {
                        *self = History::One(v[0]);
                        true
                    }
                    _ => true,
                }
            }
        }
    }
}

impl KeyIndex {
    /// Appends a change; changes arrive in revision order.
    pub fn record(&mut self, key: &[u8], change: Change) {
        match self.keys.get_mut(key) {
            Some(history) => history.push(change),
            None => {
                self.keys.insert(key.into(), History::One(change));
            }
        }
    }

    /// The key's state at `rev`: its last change at or before `rev`, unless
    /// that change deleted it.
    pub fn get(&self, key: &[u8], rev: i64) -> Option<Change> {
        self.keys.get(key).and_then(|h| live_at(h.as_slice(), rev))
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
        let mut emit = |k: &[u8], h: &History| match live_at(h.as_slice(), rev) {
            Some(c) => f(k, c),
            None => true,
        };
        let (start, end) = match range {
            KeyRange::Single(k) => {
                if after.is_none_or(|a| a < k.as_slice()) {
                    if let Some(h) = self.keys.get(k.as_slice()) {
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
            let h = h.as_slice();
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
                out.push((k.to_vec(), c.rev));
            }
        }
        out
    }

    /// Removes what `compactable` listed (after LMDB has committed it).
    pub fn remove(&mut self, dropped: &[(Vec<u8>, Revision)]) {
        for (k, rev) in dropped {
            if let Some(h) = self.keys.get_mut(k.as_slice()) {
                if !h.retain(|c| c.rev != *rev) {
                    self.keys.remove(k.as_slice());
                }
            }
        }
    }

    /// Number of keys that exist at the newest revision.
    pub fn live_keys(&self) -> usize {
        self.keys
            .values()
            .filter(|h| h.as_slice().last().is_some_and(|c| !c.is_tombstone()))
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

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
        /// Puts, deletes and compactions on a few keys: every read at every
        /// revision answers as a plain model (every change of every key in
        /// a Vec, compaction dropping what `compactable` lists) does, and
        /// so do `live_keys` and the walks.
        #[test]
        fn answers_as_a_model_of_whole_histories(
            ops in proptest::collection::vec((0u8..4, 0usize..4), 1..60)
        ) {
            let keys = ["a", "b", "bb", "c"];
            let mut ix = KeyIndex::default();
            let mut model: std::collections::BTreeMap<Vec<u8>, Vec<Change>> = Default::default();
            let mut rev = 1;
            let mut compacted = 0;
            for (op, k) in ops {
                let key = keys[k].as_bytes();
                match op {
                    // put
                    0 | 1 => {
                        rev += 1;
                        let prev = ix.get(key, rev);
                        let change = Change {
                            rev: Revision::new(rev, 0),
                            create_revision: prev.map_or(rev, |c| c.create_revision),
                            version: prev.map_or(1, |c| c.version + 1),
                        };
                        ix.record(key, change);
                        model.entry(key.to_vec()).or_default().push(change);
                    }
                    // delete (a tombstone) if live
                    2 => {
                        if ix.get(key, rev).is_some() {
                            rev += 1;
                            let tomb = Change { rev: Revision::new(rev, 0), create_revision: 0, version: 0 };
                            ix.record(key, tomb);
                            model.entry(key.to_vec()).or_default().push(tomb);
                        }
                    }
                    // compact at the current revision
                    _ => {
                        ix.remove(&ix.compactable(rev));
                        // etcd's rule, on the model: of the changes at or
                        // before the compaction, only the last is kept,
                        // and not even that if it is a tombstone
                        for h in model.values_mut() {
                            let upto = h.iter().filter(|c| c.rev.main <= rev).count();
                            let keep_last = upto > 0 && !h[upto - 1].is_tombstone();
                            let drop = if keep_last { upto - 1 } else { upto };
                            h.drain(..drop);
                        }
                        model.retain(|_, h| !h.is_empty());
                        compacted = rev;
                    }
                }
                for at in compacted.max(1)..=rev {
                    for key in keys {
                        let want = model.get(key.as_bytes()).and_then(|h| live_at(h, at));
                        proptest::prop_assert_eq!(ix.get(key.as_bytes(), at), want, "{} at {}", key, at);
                    }
                    let mut walked = Vec::new();
                    ix.visit(&KeyRange::From(Vec::new()), at, |k, c| {
                        walked.push((k.to_vec(), c));
                        true
                    });
                    let want: Vec<_> = model
                        .iter()
                        .filter_map(|(k, h)| live_at(h, at).map(|c| (k.clone(), c)))
                        .collect();
                    proptest::prop_assert_eq!(walked, want);
                }
                let live = model.values().filter(|h| h.last().is_some_and(|c| !c.is_tombstone())).count();
                proptest::prop_assert_eq!(ix.live_keys(), live);
            }
        }
    }
}
