//! What readers see of the apply thread's open LMDB write transaction.
//!
//! The apply thread keeps one LMDB write txn open across raft batches and
//! commits it every `--backend-batch-interval` / `--backend-batch-limit`
//! (etcd's batch tx), so the backend's fdatasync is paid once per interval,
//! not once per batch. An LMDB read txn sees only committed state; the
//! overlay holds the rest: the records written since the last commit
//! (immutable, keyed by revision) and the visible store and compaction
//! revisions. The apply thread publishes a new overlay after each batch,
//! before it answers the batch's requests, and an empty one after each
//! commit.
//!
//! A reader loads the overlay first and opens its LMDB txn second: every
//! record at or below the txn's own store revision is in the txn, every
//! record above it up to the overlay's revision is in the overlay (a commit
//! between the two loads only moves more into the txn).

use std::sync::Arc;

use super::revision::Revision;

/// One record: the revision and the record bytes as stored in LMDB.
pub type Record = (Revision, Box<[u8]>);

/// An immutable view of the uncommitted state, swapped whole.
#[derive(Debug, Default)]
pub struct Overlay {
    /// The backend generation (snapshot installs) it belongs to.
    pub generation: u64,
    /// Store revision readers see.
    pub current: i64,
    /// Compaction revision readers see.
    pub compacted: i64,
    /// Records above the last commit, one chunk per published batch, in
    /// revision order.
    chunks: Vec<Arc<[Record]>>,
    /// Bytes held by `chunks`.
    bytes: usize,
}

impl Overlay {
    /// An overlay with nothing uncommitted.
    pub fn committed(generation: u64, current: i64, compacted: i64) -> Overlay {
        Overlay {
            generation,
            current,
            compacted,
            chunks: Vec::new(),
            bytes: 0,
        }
    }

    /// This overlay with one more batch of records (all above the ones it
    /// has) and the revisions after it.
    pub fn with_batch(&self, records: Vec<Record>, current: i64, compacted: i64) -> Overlay {
        let mut chunks = self.chunks.clone();
        let mut bytes = self.bytes;
        if !records.is_empty() {
            debug_assert!(self
                .chunks
                .last()
                .and_then(|c| c.last())
                .is_none_or(|(last, _)| *last < records[0].0));
            bytes += records.iter().map(|(_, r)| r.len() + 32).sum::<usize>();
            chunks.push(records.into());
        }
        Overlay {
            generation: self.generation,
            current,
            compacted,
            chunks,
            bytes,
        }
    }

    /// Bytes of uncommitted records (what a commit bounds).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The record at `rev`, if it is uncommitted.
    pub fn get(&self, rev: Revision) -> Option<&[u8]> {
        // the first chunk whose last record is at or above `rev`
        let i = self
            .chunks
            .partition_point(|c| c.last().is_some_and(|(last, _)| *last < rev));
        let chunk = self.chunks.get(i)?;
        let j = chunk.binary_search_by(|(r, _)| r.cmp(&rev)).ok()?;
        Some(&chunk[j].1)
    }

    /// The uncommitted records at or above `from`, in revision order.
    pub fn iter_from(&self, from: Revision) -> impl Iterator<Item = (Revision, &[u8])> + '_ {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .skip_while(move |(r, _)| *r < from)
            .map(|(r, v)| (*r, &v[..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(main: i64, sub: i64) -> Record {
        (
            Revision::new(main, sub),
            format!("{main}.{sub}").into_bytes().into_boxed_slice(),
        )
    }

    #[test]
    fn finds_and_iterates_records_across_batches() {
        let o = Overlay::committed(3, 10, 2)
            .with_batch(vec![rec(11, 0), rec(11, 1)], 11, 2)
            .with_batch(vec![], 11, 5)
            .with_batch(vec![rec(12, 0), rec(13, 0)], 13, 5);
        assert_eq!((o.generation, o.current, o.compacted), (3, 13, 5));
        assert_eq!(o.get(Revision::new(11, 1)), Some(&b"11.1"[..]));
        assert_eq!(o.get(Revision::new(13, 0)), Some(&b"13.0"[..]));
        assert_eq!(o.get(Revision::new(10, 0)), None);
        assert_eq!(o.get(Revision::new(12, 1)), None);
        assert_eq!(o.get(Revision::new(14, 0)), None);
        let from: Vec<_> = o
            .iter_from(Revision::new(11, 1))
            .map(|(r, _)| (r.main, r.sub))
            .collect();
        assert_eq!(from, vec![(11, 1), (12, 0), (13, 0)]);
        assert_eq!(o.iter_from(Revision::new(14, 0)).count(), 0);
        assert!(o.bytes() > 0);
        assert_eq!(Overlay::committed(3, 13, 5).bytes(), 0);
    }
}
