//! What a proposal answers, shared by the layers a proposal crosses: the
//! API registers a waiter (`Wait`) and proposes, raft orders the entry, the
//! apply thread computes its `Response` (or an `ApplyError`) and wakes the
//! waiter, and the API maps an `Error` to etcd's gRPC status.
//!
//! This module sits below `raft`, `apply` and `server` and imports none of
//! them, so each of those can name the same types without importing another.

pub mod wait;

use crate::mvcc;
use crate::proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest,
    AuthRoleDeleteRequest, AuthRoleGrantPermissionRequest, AuthRoleRevokePermissionRequest,
    AuthUserDeleteRequest, AuthUserGrantRoleRequest, AuthUserRevokeRoleRequest, CompactionRequest,
    CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, LeaseGrantRequest,
    LeaseGrantResponse, LeaseRevokeRequest, LeaseRevokeResponse, PutRequest, PutResponse,
    TxnRequest, TxnResponse,
};
use crate::proto::internal::{
    internal_raft_request::Request, ClusterVersionSet, InternalAuthenticateRequest,
    InternalUserAddRequest, InternalUserChangePasswordRequest, LeaseCheckpointRequest,
    MemberAttributes, MemberPeerUrls,
};
pub use wait::Wait;

/// A request's result, handed to the waiter that proposed it.
#[derive(Debug)]
pub enum Response {
    Put(PutResponse),
    DeleteRange(DeleteRangeResponse),
    Txn(TxnResponse),
    Compaction(CompactionResponse),
    LeaseGrant(LeaseGrantResponse),
    LeaseRevoke(LeaseRevokeResponse),
    Alarm(AlarmResponse),
    /// The token Authenticate assigned.
    Authenticate(String),
    /// Internal requests (member attributes, cluster version).
    Done,
}

/// Errors a request can meet while being applied (all deterministic, so
/// every member reaches the same one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExists,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    /// The backend quota is exhausted (NOSPACE alarm active).
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    /// Members' data disagree (CORRUPT alarm active).
    #[error("etcdserver: corrupt cluster")]
    Corrupt,
    /// The backend failed; the member cannot go on.
    #[error("etcdserver: storage failure: {0}")]
    Storage(String),
    /// The request carries something the backend cannot hold (a meta key
    /// over LMDB's key size). Deterministic: every member refuses it at the
    /// same entry and goes on; the API refuses it before proposing, so only
    /// a log written by an older version reaches this.
    #[error("etcdserver: request cannot be stored: {0}")]
    TooLarge(String),
    /// Refused by RBAC, or an auth management error.
    #[error(transparent)]
    Auth(crate::auth::Error),
}

impl From<crate::auth::Error> for ApplyError {
    fn from(e: crate::auth::Error) -> Self {
        match e {
            // a storage failure must stop the member, as any other
            crate::auth::Error::Storage(s) => ApplyError::Storage(s),
            crate::auth::Error::TooLarge(s) => ApplyError::TooLarge(s),
            other => ApplyError::Auth(other),
        }
    }
}

impl From<crate::lease::Error> for ApplyError {
    fn from(e: crate::lease::Error) -> Self {
        match e {
            crate::lease::Error::NotFound => ApplyError::LeaseNotFound,
            crate::lease::Error::Exists => ApplyError::LeaseExists,
            crate::lease::Error::TtlTooLarge => ApplyError::LeaseTtlTooLarge,
        }
    }
}

impl From<mvcc::Error> for ApplyError {
    fn from(e: mvcc::Error) -> Self {
        match e {
            mvcc::Error::Compacted => ApplyError::Compacted,
            mvcc::Error::FutureRev => ApplyError::FutureRev,
            mvcc::Error::TooLarge(what) => ApplyError::TooLarge(what),
            other => ApplyError::Storage(other.to_string()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: request timed out, possibly due to previous leader failure")]
    TimeoutDueToLeaderFail,
    #[error("etcdserver: request timed out, possibly due to connection lost")]
    TimeoutDueToConnectionLost,
    #[error("etcdserver: too many requests")]
    TooManyRequests,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: not leader")]
    NotLeader,
    /// A leader that could not confirm its leadership was asked to renew a
    /// lease (etcd's lease.ErrNotPrimary, which reaches clients as is).
    #[error("not a primary lessor")]
    NotPrimary,
    #[error("etcdserver: rpc not supported for learner")]
    LearnerNotSupported,
    #[error("etcdserver: member ID already exist")]
    MemberExists,
    #[error("etcdserver: Peer URLs already exists")]
    PeerUrlExists,
    #[error("etcdserver: member not found")]
    MemberNotFound,
    #[error("etcdserver: given member URLs are invalid")]
    MemberBadUrls,
    #[error("etcdserver: re-configuration failed due to not enough started members")]
    NotEnoughStartedMembers,
    #[error("etcdserver: can only promote a learner member")]
    MemberNotLearner,
    #[error("etcdserver: can only promote a learner member which is in sync with leader")]
    LearnerNotReady,
    #[error("etcdserver: too many learner members in cluster")]
    TooManyLearners,
    #[error("etcdserver: unhealthy cluster")]
    Unhealthy,
    #[error("etcdserver: bad leader transferee")]
    BadLeaderTransferee,
    #[error("etcdserver: request timed out, leader transfer took too long")]
    LeaderTransferTimeout,
    /// Apply answered a proposal with another kind of response than its
    /// request has: a bug, reported to the client as Internal.
    #[error("etcdserver: unexpected apply result {0}")]
    UnexpectedAnswer(String),
}

pub type ProposeResult = Result<Response, Error>;

/// A request proposed through raft, with the one kind of answer its apply
/// gives: a Put proposal answers a `PutResponse`, so the handlers that
/// propose never match on `Response`.
pub trait Proposal: Sized {
    type Answer;
    fn into_request(self) -> Request;
    /// The response back when apply answered another kind (never, unless
    /// a bug).
    fn answer(response: Response) -> Result<Self::Answer, Response>;
}

/// Requests whose apply answers a response of their own.
macro_rules! proposal {
    ($($request:ty => $variant:ident($answer:ty)),* $(,)?) => {$(
        impl Proposal for $request {
            type Answer = $answer;
            fn into_request(self) -> Request {
                Request::$variant(self)
            }
            fn answer(response: Response) -> Result<$answer, Response> {
                match response {
                    Response::$variant(answer) => Ok(answer),
                    other => Err(other),
                }
            }
        }
    )*};
}

proposal! {
    PutRequest => Put(PutResponse),
    DeleteRangeRequest => DeleteRange(DeleteRangeResponse),
    TxnRequest => Txn(TxnResponse),
    CompactionRequest => Compaction(CompactionResponse),
    LeaseGrantRequest => LeaseGrant(LeaseGrantResponse),
    LeaseRevokeRequest => LeaseRevoke(LeaseRevokeResponse),
    AlarmRequest => Alarm(AlarmResponse),
}

/// The token Authenticate assigned.
impl Proposal for InternalAuthenticateRequest {
    type Answer = String;
    fn into_request(self) -> Request {
        Request::Authenticate(self)
    }
    fn answer(response: Response) -> Result<String, Response> {
        match response {
            Response::Authenticate(token) => Ok(token),
            other => Err(other),
        }
    }
}

/// Requests whose apply answers only success or an error.
macro_rules! done_proposal {
    ($($request:ty => $variant:ident),* $(,)?) => {$(
        impl Proposal for $request {
            type Answer = ();
            fn into_request(self) -> Request {
                Request::$variant(self)
            }
            fn answer(response: Response) -> Result<(), Response> {
                match response {
                    Response::Done => Ok(()),
                    other => Err(other),
                }
            }
        }
    )*};
}

done_proposal! {
    MemberAttributes => MemberAttributes,
    MemberPeerUrls => MemberPeerUrls,
    ClusterVersionSet => ClusterVersion,
    LeaseCheckpointRequest => LeaseCheckpoint,
    AuthEnableRequest => AuthEnable,
    AuthDisableRequest => AuthDisable,
    InternalUserAddRequest => AuthUserAdd,
    AuthUserDeleteRequest => AuthUserDelete,
    InternalUserChangePasswordRequest => AuthUserChangePassword,
    AuthUserGrantRoleRequest => AuthUserGrantRole,
    AuthUserRevokeRoleRequest => AuthUserRevokeRole,
    AuthRoleAddRequest => AuthRoleAdd,
    AuthRoleDeleteRequest => AuthRoleDelete,
    AuthRoleGrantPermissionRequest => AuthRoleGrantPermission,
    AuthRoleRevokePermissionRequest => AuthRoleRevokePermission,
}
