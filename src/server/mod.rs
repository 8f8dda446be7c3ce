//! The member as the API sees it: propose a request and wait for its applied
//! result, wait for a linearizable read point, and fill response headers.
//!
//! `server` does not know gRPC; `api` maps `server::Error` to etcd's codes.

pub mod alarm;
pub mod compactor;
pub mod corrupt;
pub mod forward;
pub mod leader;
pub mod lease;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use tokio::sync::{oneshot, watch};

use crate::member::MemberState;
use crate::mvcc::Store;
pub use crate::propose::{Error, ProposeResult};
use crate::propose::{Proposal, Wait};
use crate::proto::etcdserverpb::ResponseHeader;
use crate::proto::internal::{internal_raft_request::Request, InternalRaftRequest, RequestHeader};
use crate::raft::{RaftHandle, RaftMsg};

/// gRPC framing overhead allowed above --max-request-bytes (etcd's
/// grpcOverheadBytes): an oversized request still reaches our check and
/// gets etcd's "request is too large" instead of a transport error, and
/// watch responses are fragmented only past this larger size, as etcd's.
pub const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// etcd refuses new proposals while apply lags commit by more than this.
const MAX_APPLY_LAG: u64 = 5000;
/// ...and we also while the entries committed but not yet applied hold more
/// than this many bytes (5,000 entries of --max-request-bytes would be GiBs).
const MAX_APPLY_BACKLOG_BYTES: u64 = 256 << 20;
/// This member's proposals waiting for their answer may hold at most this
/// many bytes; past it a new one is refused at once ("too many requests")
/// instead of queueing into the raft thread without bound.
const MAX_PENDING_PROPOSAL_BYTES: usize = 512 << 20;

/// Whether a new proposal may go in, given how far apply lags behind.
fn admit_proposal(committed: u64, applied: u64, backlog_bytes: u64) -> Result<(), Error> {
    if committed > applied.saturating_add(MAX_APPLY_LAG) || backlog_bytes > MAX_APPLY_BACKLOG_BYTES
    {
        return Err(Error::TooManyRequests);
    }
    Ok(())
}

/// A proposal's result as the answer its request type has.
fn typed<P: Proposal>(result: ProposeResult) -> Result<P::Answer, Error> {
    P::answer(result?).map_err(|other| Error::UnexpectedAnswer(format!("{other:?}")))
}

/// Bytes of this member's proposals in flight; released on drop.
struct PendingBytes<'a> {
    total: &'a std::sync::atomic::AtomicUsize,
    len: usize,
}

impl<'a> PendingBytes<'a> {
    fn take(total: &'a std::sync::atomic::AtomicUsize, len: usize) -> Result<Self, Error> {
        let before = total.fetch_add(len, Ordering::AcqRel);
        let taken = PendingBytes { total, len };
        if before.saturating_add(len) > MAX_PENDING_PROPOSAL_BYTES {
            return Err(Error::TooManyRequests); // `taken` gives them back
        }
        Ok(taken)
    }
}

impl Drop for PendingBytes<'_> {
    fn drop(&mut self) {
        self.total.fetch_sub(self.len, Ordering::AcqRel);
    }
}

pub struct Limits {
    pub max_request_bytes: u64,
    pub max_txn_ops: u64,
    /// How long a request may wait for raft and apply (etcd: 5 s plus two
    /// election timeouts).
    pub request_timeout: Duration,
    /// Backend bytes past which writes are refused (NOSPACE); `None` never
    /// refuses (unit tests).
    pub quota_backend_bytes: Option<i64>,
}

pub struct EtcdServer {
    member: Arc<MemberState>,
    raft: RaftHandle,
    /// Index of the last entry visible to readers (the apply thread's
    /// `Links::applied_tx`).
    applied_rx: watch::Receiver<u64>,
    options: Options,
    ids: crate::cluster::id::RequestIds,
    leader_channel: forward::LeaderChannel,
    /// Bytes of this member's proposals waiting for their answer.
    pending_proposal_bytes: std::sync::atomic::AtomicUsize,
}

/// How the server answers, from the member's settings.
pub struct Options {
    pub limits: Limits,
    /// How often watchers asking for progress get it (etcd's
    /// --experimental-watch-progress-notify-interval).
    pub watch_progress_interval: Duration,
    /// etcd's --strict-reconfig-check.
    pub strict_reconfig_check: bool,
    pub election_timeout: Duration,
}

/// What raft reports of itself, as Status shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftStatus {
    /// 0 while no leader is known.
    pub leader: u64,
    /// The last index in this member's log.
    pub index: u64,
    pub term: u64,
    /// The last index known committed.
    pub committed: u64,
    /// Bytes of committed entries the apply thread has not taken yet.
    pub apply_backlog_bytes: u64,
}

impl EtcdServer {
    pub fn new(
        member: Arc<MemberState>,
        raft: RaftHandle,
        applied_rx: watch::Receiver<u64>,
        options: Options,
    ) -> Self {
        EtcdServer {
            ids: crate::cluster::id::RequestIds::new(member.member_id()),
            member,
            raft,
            applied_rx,
            options,
            leader_channel: Default::default(),
            pending_proposal_bytes: Default::default(),
        }
    }

    /// The member's state, shared with the applier.
    pub fn member(&self) -> &Arc<MemberState> {
        &self.member
    }

    pub fn member_id(&self) -> u64 {
        self.member.member_id()
    }

    pub fn cluster_id(&self) -> u64 {
        self.member.cluster_id()
    }

    pub fn store(&self) -> &Arc<Store> {
        self.member.store()
    }

    pub fn auth(&self) -> &Arc<crate::auth::AuthStore> {
        self.member.auth()
    }

    pub fn membership(&self) -> &Arc<crate::cluster::Membership> {
        self.member.membership()
    }

    pub fn lessor(&self) -> &Arc<crate::lease::Lessor> {
        self.member.lessor()
    }

    pub fn hub(&self) -> &Arc<crate::watch::Hub> {
        self.member.hub()
    }

    pub fn alarms(&self) -> &Arc<crate::alarm::Alarms> {
        self.member.alarms()
    }

    pub fn limits(&self) -> &Limits {
        &self.options.limits
    }

    pub fn watch_progress_interval(&self) -> Duration {
        self.options.watch_progress_interval
    }

    pub fn strict_reconfig_check(&self) -> bool {
        self.options.strict_reconfig_check
    }

    /// A consistent view of the keyspace as this member last committed it.
    pub fn read_view(&self) -> Result<crate::mvcc::ReadView<'_>, Error> {
        self.member.read_view().map_err(|e| Error::Apply(e.into()))
    }

    /// The revision this member's last committed write reached.
    pub fn current_rev(&self) -> Result<i64, Error> {
        self.member
            .current_rev()
            .map_err(|e| Error::Apply(e.into()))
    }

    pub fn raft_status(&self) -> RaftStatus {
        let shared = &self.raft.shared;
        RaftStatus {
            leader: shared.leader.load(Ordering::Acquire),
            index: shared.raft_index.load(Ordering::Acquire),
            term: shared.term.load(Ordering::Acquire),
            committed: shared.committed.load(Ordering::Acquire),
            apply_backlog_bytes: shared.apply_backlog_bytes.load(Ordering::Acquire),
        }
    }

    /// Follows who leads (0: nobody known).
    pub fn leader_changes(&self) -> watch::Receiver<u64> {
        self.raft.leader_rx.clone()
    }

    /// Follows the index of the last entry visible to readers; ends
    /// (Err on `changed`) when the apply thread stops.
    pub fn applied_changes(&self) -> watch::Receiver<u64> {
        self.applied_rx.clone()
    }

    /// Learners serve serializable reads and status only (etcd's
    /// isRPCSupportedForLearner).
    pub fn refuse_learner(&self) -> Result<(), Error> {
        if self.member.membership().local_is_learner() {
            return Err(Error::LearnerNotSupported);
        }
        Ok(())
    }

    pub fn leader(&self) -> u64 {
        self.raft.shared.leader.load(Ordering::Acquire)
    }

    pub fn is_leader(&self) -> bool {
        self.raft.shared.is_leader.load(Ordering::Acquire)
    }

    /// Waits (up to the request timeout) until some member leads.
    pub async fn wait_leader(&self) -> Result<u64, Error> {
        let mut leader = self.raft.leader_rx.clone();
        let wait = async move { leader.wait_for(|&l| l != 0).await.map(|l| *l) };
        match tokio::time::timeout(self.options.limits.request_timeout, wait).await {
            Ok(Ok(l)) => Ok(l),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::NoLeader),
        }
    }

    /// The leader's view of every member's log; empty unless this member
    /// leads.
    pub async fn progress(&self) -> Result<crate::raft::Progress, Error> {
        let (tx, rx) = oneshot::channel();
        self.raft
            .tx
            .send(RaftMsg::Progress(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Replicates a membership change and waits until it is applied.
    pub async fn propose_conf_change(&self, mut cc: raft::eraftpb::ConfChange) -> ProposeResult {
        self.wait_leader().await?;
        let id = self.ids.next();
        cc.id = id;
        let started = std::time::Instant::now();
        let rx = self.member.wait().register(id);
        if self.raft.tx.send(RaftMsg::ProposeConfChange(cc)).is_err() {
            self.member.wait().cancel(id);
            return Err(Error::Stopped);
        }
        let _cancel_on_drop = CancelGuard {
            wait: self.member.wait(),
            id,
        };
        match tokio::time::timeout(self.options.limits.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(self.proposal_timeout(started)),
        }
    }

    /// Hands leadership to `to` and waits until it leads (etcd's
    /// MoveLeader; the caller checked that this member leads).
    pub async fn transfer_leadership(&self, to: u64) -> Result<(), Error> {
        let mut leader = self.raft.leader_rx.clone();
        self.raft
            .tx
            .send(RaftMsg::TransferLeader(to))
            .map_err(|_| Error::Stopped)?;
        let wait = async move { leader.wait_for(|&l| l == to).await.map(|_| ()) };
        match tokio::time::timeout(self.options.limits.request_timeout, wait).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => Err(Error::LeaderTransferTimeout),
        }
    }

    /// The header every response carries.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.member.cluster_id(),
            member_id: self.member.member_id(),
            revision,
            raft_term: self.raft.shared.term.load(Ordering::Acquire),
        }
    }

    /// A fresh lease id: positive, unique (etcd takes it from the request
    /// id generator).
    pub fn next_lease_id(&self) -> i64 {
        loop {
            // never 0, which means "no lease" (etcd loops the same way)
            let id = (self.ids.next() & (i64::MAX as u64)) as i64;
            if id != 0 {
                return id;
            }
        }
    }

    pub fn applied_index(&self) -> u64 {
        *self.applied_rx.borrow()
    }

    /// Replicates the member's own `request` through raft and returns its
    /// applied result. Not checked against RBAC when applied: the member
    /// proposes it for itself (lease expiry, compaction, publishing) or for
    /// a client it already checked (etcd's AuthStore.WithRoot).
    pub async fn propose<P: Proposal>(&self, request: P) -> Result<P::Answer, Error> {
        typed::<P>(self.propose_entry(request.into_request(), None).await)
    }

    /// `propose` on behalf of `caller` (the empty user without
    /// credentials): permissions are checked when the entry is applied,
    /// as etcd checks its header's username and auth revision.
    pub async fn propose_as<P: Proposal>(
        &self,
        request: P,
        caller: &crate::auth::AuthInfo,
    ) -> Result<P::Answer, Error> {
        typed::<P>(
            self.propose_entry(request.into_request(), Some(caller))
                .await,
        )
    }

    async fn propose_entry(
        &self,
        request: Request,
        caller: Option<&crate::auth::AuthInfo>,
    ) -> ProposeResult {
        // A learner still publishes its own attributes.
        if !matches!(request, Request::MemberAttributes(_)) {
            self.refuse_learner()?;
        }
        if self.leader() == 0 {
            // During an election: wait for its outcome rather than fail.
            self.wait_leader().await?;
        }
        let shared = &self.raft.shared;
        admit_proposal(
            shared.committed.load(Ordering::Acquire),
            self.applied_index(),
            shared.apply_backlog_bytes.load(Ordering::Acquire),
        )?;
        let id = self.ids.next();
        let entry = InternalRaftRequest {
            header: Some(RequestHeader {
                id,
                member_id: self.member.member_id(),
                username: caller.map(|c| c.username.clone()).unwrap_or_default(),
                auth_revision: caller.map(|c| c.revision).unwrap_or_default(),
                internal: caller.is_none(),
            }),
            request: Some(request),
        };
        let data = entry.encode_to_vec();
        if data.len() as u64 > self.options.limits.max_request_bytes {
            return Err(Error::RequestTooLarge);
        }
        let _pending_bytes = PendingBytes::take(&self.pending_proposal_bytes, data.len())?;
        // No await between registering and sending: a dropped (cancelled)
        // handler cannot leave a proposal without its waiter.
        let started = std::time::Instant::now();
        let rx = self.member.wait().register(id);
        if self.raft.tx.send(RaftMsg::Propose { id, data }).is_err() {
            self.member.wait().cancel(id);
            return Err(Error::Stopped);
        }
        let _pending = crate::metrics::server().pending_proposal();
        let _cancel_on_drop = CancelGuard {
            wait: self.member.wait(),
            id,
        };
        match tokio::time::timeout(self.options.limits.request_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(Error::Stopped),
            Err(_) => {
                crate::metrics::server().proposals_failed.inc();
                Err(self.proposal_timeout(started))
            }
        }
    }

    /// Which timeout a proposal made at `started` ran into (etcd's
    /// parseProposeCtxErr): a leader elected soon after it started means
    /// the previous leader failed; a leader this member has not been
    /// connected to since then means the connection was lost.
    fn proposal_timeout(&self, started: std::time::Instant) -> Error {
        let elected = *self
            .raft
            .shared
            .leader_elected_at
            .lock()
            .expect("leader time lock");
        if let Some(elected) = elected {
            let lost = elected
                .checked_sub(2 * self.options.election_timeout)
                .unwrap_or(elected);
            if started > lost && started < elected {
                return Error::TimeoutDueToLeaderFail;
            }
        }
        let leader = self.leader();
        if leader != 0 && leader != self.member.member_id() {
            match self.member.transport().active_since(leader) {
                Some(since) if since <= started => {}
                _ => return Error::TimeoutDueToConnectionLost,
            }
        }
        Error::Timeout
    }

    /// Waits until the backend's LMDB file holds everything readers see
    /// now (the apply thread commits its open txn at once): for what reads
    /// the file itself rather than through the overlay (Hash, snapshots).
    pub async fn backend_barrier(&self) -> Result<(), Error> {
        let visible = self.applied_index();
        let store = self.store().clone();
        let wait = async move { store.committed_through(visible).await };
        tokio::time::timeout(self.options.limits.request_timeout, wait)
            .await
            .map_err(|_| Error::Timeout)
    }

    /// Waits until this member has applied everything committed when the
    /// call began, as confirmed by a quorum (raft's ReadIndex).
    pub async fn linearizable_read(&self) -> Result<(), Error> {
        self.refuse_learner()?;
        // A deliberately broken build (tests/integration/robustness.rs must
        // find its stale reads): a linearizable read served as a
        // serializable one, without asking the quorum.
        #[cfg(feature = "test-stale-reads")]
        return Ok(());
        #[allow(unreachable_code)]
        let (tx, rx) = oneshot::channel();
        if self.raft.tx.send(RaftMsg::ReadIndex(tx)).is_err() {
            return Err(Error::Stopped);
        }
        let wait = async {
            let index = rx.await.map_err(|_| Error::Stopped)??;
            let mut applied = self.applied_rx.clone();
            applied
                .wait_for(|&a| a >= index)
                .await
                .map_err(|_| Error::Stopped)?;
            Ok(())
        };
        match tokio::time::timeout(self.options.limits.request_timeout, wait).await {
            Ok(r) => r,
            Err(_) => Err(Error::Timeout),
        }
    }
}

/// Removes a waiter whose request future was dropped or timed out.
struct CancelGuard<'a> {
    wait: &'a Wait,
    id: u64,
}

impl Drop for CancelGuard<'_> {
    fn drop(&mut self) {
        self.wait.cancel(self.id);
    }
}

#[cfg(test)]
mod admission_tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn proposals_wait_for_apply_by_entries_and_by_bytes() {
        assert_eq!(admit_proposal(100, 90, 0), Ok(()));
        assert_eq!(admit_proposal(5090, 90, 0), Ok(()));
        assert_eq!(admit_proposal(5091, 90, 0), Err(Error::TooManyRequests));
        assert_eq!(admit_proposal(100, 99, MAX_APPLY_BACKLOG_BYTES), Ok(()));
        assert_eq!(
            admit_proposal(100, 99, MAX_APPLY_BACKLOG_BYTES + 1),
            Err(Error::TooManyRequests)
        );
        assert_eq!(admit_proposal(u64::MAX, u64::MAX, 0), Ok(()));
    }

    #[test]
    fn pending_proposal_bytes_are_bounded_and_given_back() {
        let total = AtomicUsize::new(0);
        let a = PendingBytes::take(&total, MAX_PENDING_PROPOSAL_BYTES - 10).expect("fits");
        assert!(PendingBytes::take(&total, 11).is_err());
        assert_eq!(
            total.load(Ordering::Relaxed),
            MAX_PENDING_PROPOSAL_BYTES - 10,
            "a refusal gives back"
        );
        let b = PendingBytes::take(&total, 10).expect("fits exactly");
        drop(a);
        drop(b);
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }
}
