//! The one place errors become gRPC statuses, with etcd's exact codes and
//! messages (etcd's `rpctypes`); clients match on these strings.

use tonic::{Code, Status};

use crate::apply::ApplyError;
use crate::server::Error;

/// Request validation failures, found before a request reaches raft.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: invalid sort option")]
    InvalidSortOption,
}

impl From<Invalid> for Status {
    fn from(e: Invalid) -> Status {
        Status::new(Code::InvalidArgument, e.to_string())
    }
}

pub fn to_status(e: Error) -> Status {
    let code = match &e {
        Error::Apply(a) => match a {
            ApplyError::Compacted | ApplyError::FutureRev => Code::OutOfRange,
            ApplyError::KeyNotFound => Code::InvalidArgument,
            ApplyError::LeaseNotFound => Code::NotFound,
            ApplyError::LeaseExists => Code::FailedPrecondition,
            ApplyError::LeaseTtlTooLarge => Code::OutOfRange,
            ApplyError::Storage(_) => Code::Internal,
            ApplyError::TooLarge(_) => Code::InvalidArgument,
            ApplyError::MemberNotFound => Code::NotFound,
            ApplyError::PeerUrlExists => Code::FailedPrecondition,
            ApplyError::NoSpace => Code::ResourceExhausted,
            ApplyError::Corrupt => Code::DataLoss,
            ApplyError::Auth(a) => a.code(),
        },
        Error::NoLeader
        | Error::Timeout
        | Error::TimeoutDueToLeaderFail
        | Error::TimeoutDueToConnectionLost
        | Error::Stopped
        | Error::LeaderChanged
        | Error::LearnerNotSupported
        | Error::Unhealthy
        | Error::LeaderTransferTimeout => Code::Unavailable,
        Error::NotLeader
        | Error::MemberExists
        | Error::PeerUrlExists
        | Error::NotEnoughStartedMembers
        | Error::MemberNotLearner
        | Error::LearnerNotReady
        | Error::TooManyLearners
        | Error::BadLeaderTransferee => Code::FailedPrecondition,
        Error::MemberNotFound => Code::NotFound,
        Error::MemberBadUrls => Code::InvalidArgument,
        Error::TooManyRequests => Code::ResourceExhausted,
        Error::UnexpectedAnswer(_) => Code::Internal,
        Error::RequestTooLarge => Code::InvalidArgument,
        // not in etcd's error map: clients get Go's Unknown and the text
        Error::NotPrimary => Code::Unknown,
    };
    Status::new(code, e.to_string())
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        to_status(e)
    }
}

impl From<crate::auth::Error> for Status {
    fn from(e: crate::auth::Error) -> Status {
        Status::new(e.code(), e.to_string())
    }
}

impl From<ApplyError> for Status {
    fn from(e: ApplyError) -> Status {
        to_status(Error::Apply(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table clients depend on (etcd's api/v3rpc/rpctypes/error.go).
    #[test]
    fn etcd_codes_and_messages() {
        let cases: Vec<(Status, Code, &str)> = vec![
            (
                Invalid::EmptyKey.into(),
                Code::InvalidArgument,
                "etcdserver: key is not provided",
            ),
            (
                Invalid::ValueProvided.into(),
                Code::InvalidArgument,
                "etcdserver: value is provided",
            ),
            (
                Invalid::LeaseProvided.into(),
                Code::InvalidArgument,
                "etcdserver: lease is provided",
            ),
            (
                Invalid::TooManyOps.into(),
                Code::InvalidArgument,
                "etcdserver: too many operations in txn request",
            ),
            (
                Invalid::DuplicateKey.into(),
                Code::InvalidArgument,
                "etcdserver: duplicate key given in txn request",
            ),
            (
                ApplyError::KeyNotFound.into(),
                Code::InvalidArgument,
                "etcdserver: key not found",
            ),
            (
                ApplyError::LeaseNotFound.into(),
                Code::NotFound,
                "etcdserver: requested lease not found",
            ),
            (
                ApplyError::Compacted.into(),
                Code::OutOfRange,
                "etcdserver: mvcc: required revision has been compacted",
            ),
            (
                ApplyError::FutureRev.into(),
                Code::OutOfRange,
                "etcdserver: mvcc: required revision is a future revision",
            ),
            (
                Error::RequestTooLarge.into(),
                Code::InvalidArgument,
                "etcdserver: request is too large",
            ),
            (
                Error::NoLeader.into(),
                Code::Unavailable,
                "etcdserver: no leader",
            ),
            (
                Error::Timeout.into(),
                Code::Unavailable,
                "etcdserver: request timed out",
            ),
            (
                Error::TimeoutDueToLeaderFail.into(),
                Code::Unavailable,
                "etcdserver: request timed out, possibly due to previous leader failure",
            ),
            (
                Error::LeaderChanged.into(),
                Code::Unavailable,
                "etcdserver: leader changed",
            ),
            (
                Error::NotEnoughStartedMembers.into(),
                Code::FailedPrecondition,
                "etcdserver: re-configuration failed due to not enough started members",
            ),
            (
                Error::LearnerNotReady.into(),
                Code::FailedPrecondition,
                "etcdserver: can only promote a learner member which is in sync with leader",
            ),
            (
                Error::MemberNotFound.into(),
                Code::NotFound,
                "etcdserver: member not found",
            ),
            (
                Error::TooManyRequests.into(),
                Code::ResourceExhausted,
                "etcdserver: too many requests",
            ),
        ];
        for (status, code, msg) in cases {
            assert_eq!(status.code(), code, "{msg}");
            assert_eq!(status.message(), msg);
        }
    }
}
