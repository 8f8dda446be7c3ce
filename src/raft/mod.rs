//! Consensus: one OS thread owns raft-rs's `RawNode` and the WAL, and runs
//! raft-rs's Ready loop in its fixed order with one fsync per Ready.
//!
//! `raft` knows nothing about MVCC or gRPC: it orders opaque proposals,
//! persists them, and hands committed entries to the apply thread.

pub mod logger;
pub mod node;
pub mod storage;

pub use node::{entries_bytes, ApplyItem, Progress, RaftHandle, RaftMsg, RaftShared};
