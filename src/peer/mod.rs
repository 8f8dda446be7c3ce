//! Member-to-member traffic on the peer port: raft messages, snapshots, the
//! membership for joining members, round-trip probes, HashKV and what
//! followers forward to the leader (`proto/rsetcd/peer.proto`).
//!
//! Sending (`transport`): one task per remote member keeps one long-lived
//! gRPC stream open and writes raft messages to it in batches. The raft
//! thread never waits on the network: it drops a message when that
//! member's queue is full (raft resends) and tells raft the member is
//! unreachable. Connections come back with capped exponential backoff.
//!
//! Receiving (`api::peer`, which also answers what followers forward): every request names the cluster and both members;
//! a request from another cluster, for another member or from a removed
//! member is refused before anything reaches raft.

pub mod transport;

pub use transport::Transport;

/// What a removed member is told when it talks to the cluster (etcd's
/// text).
pub const REMOVED_MEMBER: &str = "the member has been permanently removed from the cluster";
