//! Multi-version concurrency control over LMDB: revisions, the key index,
//! reads at any uncompacted revision and the single write transaction.
//!
//! `mvcc` knows nothing about raft, gRPC or requests: it stores changes and
//! answers ranges. Request semantics (txn, put options) live in `apply`.

pub mod defrag;
pub mod etcd_format;
pub mod key_index;
pub mod overlay;
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
    Backend(heed::Error),
    /// A key or value the backend cannot hold (LMDB's MDB_BAD_VALSIZE: a
    /// key over `MAX_KEY_BYTES`, or empty). It depends only on what a
    /// request carries, so every member meets it at the same entry: the
    /// request fails, the member goes on.
    #[error("mvcc: the backend cannot store {0}")]
    TooLarge(String),
    #[error("mvcc: corrupt backend: {0}")]
    Corrupt(String),
}

/// The longest key LMDB stores (MDB_MAXKEYSIZE as lmdb-master-sys builds
/// it). Only the backend's own keys are bound by it (revisions, lease ids,
/// meta keys such as `auth/users/<name>`); user keys live in records.
pub const MAX_KEY_BYTES: usize = 511;

impl From<heed::Error> for Error {
    fn from(e: heed::Error) -> Self {
        match e {
            // checked by LMDB before it touches the txn, which stays usable
            heed::Error::Mdb(heed::MdbError::BadValSize) => {
                Error::TooLarge("a key or value of that size".into())
            }
            other => Error::Backend(other),
        }
    }
}

/// Refuses a backend key LMDB cannot hold before LMDB sees it.
pub fn check_key(key: &[u8]) -> Result<(), Error> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(Error::TooLarge(format!(
            "a key of {} bytes (1 to {MAX_KEY_BYTES})",
            key.len()
        )));
    }
    Ok(())
}

impl Error {
    /// Whether the failure is this member's own (I/O, a full map, a
    /// damaged file) rather than something the request carried: only these
    /// may stop a member while it applies the log.
    pub fn is_member_failure(&self) -> bool {
        matches!(self, Error::Backend(_) | Error::Corrupt(_))
    }
}
