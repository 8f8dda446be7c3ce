//! One member's state: the parts applied entries change and the API reads.
//!
//! `MemberState` owns the handles on the MVCC store, the waiter, the lessor,
//! the watch hub, the membership, the alarms, the auth store, the peer
//! transport and the snapshot files. The applier (the only writer, on the
//! apply thread) and the server (what the API calls) share one
//! `Arc<MemberState>`; each component keeps its own locking, so nothing here
//! takes a lock of its own or calls from one component into another.
//!
//! Raft does not see it: the raft thread talks to the applier through its
//! channel, and to peers through the transport it was given.

use std::sync::Arc;

use crate::alarm::Alarms;
use crate::auth::AuthStore;
use crate::cluster::Membership;
use crate::lease::Lessor;
use crate::mvcc::{ReadView, Store};
use crate::peer::Transport;
use crate::propose::Wait;
use crate::storage::snapshot::Snapshotter;
use crate::watch::Hub;

/// What one member keeps; built once at start (see `etcdmain`). Its
/// parts are reached through the accessors only.
pub struct MemberState {
    parts: Parts,
}

/// The parts a `MemberState` is made of, as bootstrap opened them.
pub struct Parts {
    pub member_id: u64,
    pub cluster_id: u64,
    pub store: Arc<Store>,
    pub wait: Arc<Wait>,
    pub lessor: Arc<Lessor>,
    pub hub: Arc<Hub>,
    pub membership: Arc<Membership>,
    pub alarms: Arc<Alarms>,
    pub auth: Arc<AuthStore>,
    pub transport: Arc<Transport>,
    pub snapshots: Arc<Snapshotter>,
}

impl MemberState {
    pub fn new(parts: Parts) -> MemberState {
        MemberState { parts }
    }

    /// This member's id (fixed for the life of the data dir).
    pub fn member_id(&self) -> u64 {
        self.parts.member_id
    }

    pub fn cluster_id(&self) -> u64 {
        self.parts.cluster_id
    }

    /// The MVCC store: readers take a `ReadView`, the applier writes.
    pub fn store(&self) -> &Arc<Store> {
        &self.parts.store
    }

    /// A consistent view of the keyspace as last committed.
    pub fn read_view(&self) -> Result<ReadView<'_>, crate::mvcc::Error> {
        self.parts.store.read()
    }

    /// The revision the last committed write reached.
    pub fn current_rev(&self) -> Result<i64, crate::mvcc::Error> {
        Ok(self.parts.store.read()?.current_rev())
    }

    /// Proposals waiting for their applied result, by request id.
    pub fn wait(&self) -> &Arc<Wait> {
        &self.parts.wait
    }

    pub fn lessor(&self) -> &Arc<Lessor> {
        &self.parts.lessor
    }

    /// Where committed revisions' events go out to watchers.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.parts.hub
    }

    pub fn membership(&self) -> &Arc<Membership> {
        &self.parts.membership
    }

    pub fn alarms(&self) -> &Arc<Alarms> {
        &self.parts.alarms
    }

    pub fn auth(&self) -> &Arc<AuthStore> {
        &self.parts.auth
    }

    /// Connections to the other members.
    pub fn transport(&self) -> &Arc<Transport> {
        &self.parts.transport
    }

    /// Snapshot files received from or made for peers.
    pub fn snapshots(&self) -> &Arc<Snapshotter> {
        &self.parts.snapshots
    }
}
