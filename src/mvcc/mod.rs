//! Multi-version concurrency control over LMDB: revisions, the key index,
//! reads at any uncompacted revision and the single write transaction.
//!
//! `mvcc` knows nothing about raft, gRPC or requests: it stores changes and
//! answers ranges. Request semantics (txn, put options) live in `apply`.

pub mod defrag;
pub mod key_index;
pub mod revision;
pub mod store;

pub use defrag::DefragStats;
pub use key_index::KeyRange;
pub use store::{Applied, RangeOptions, RangeResult, ReadView, RevEvents, Store, WriteTxn};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRev,
    #[error("mvcc: backend: {0}")]
    Backend(#[from] heed::Error),
    #[error("mvcc: corrupt backend: {0}")]
    Corrupt(String),
}
