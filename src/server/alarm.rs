//! Raising and clearing alarms, and the backend quota that raises NOSPACE
//! (etcd's `v3rpc/quota.go` and `etcdserver/quota.go`).
//!
//! A write that would take the backend past `--quota-backend-bytes` is
//! refused at the API before it reaches raft, and the member raises NOSPACE
//! through raft; from then on every member's apply refuses writes that
//! grow the store (`apply::ops::check_alarms`) until the alarm is disarmed.

use crate::proto::etcdserverpb::{
    alarm_request::AlarmAction, AlarmRequest, AlarmResponse, AlarmType,
};

use super::{Error, EtcdServer};

/// etcd's default quota (2 GiB) for `--quota-backend-bytes=0`, and the
/// size past which it warns.
pub const DEFAULT_QUOTA_BYTES: i64 = 2 * 1024 * 1024 * 1024;
pub const MAX_QUOTA_BYTES: i64 = 8 * 1024 * 1024 * 1024;

/// The quota in force for a `--quota-backend-bytes` value: 0 is the
/// default, a negative value disables it.
pub fn effective_quota(configured: i64) -> Option<i64> {
    match configured {
        q if q < 0 => None,
        0 => Some(DEFAULT_QUOTA_BYTES),
        q => Some(q),
    }
}

impl EtcdServer {
    /// Refuses a request of `cost` bytes that would not fit in the quota,
    /// raising NOSPACE for this member first (as etcd's quotaAlarmer).
    pub async fn check_quota(&self, cost: usize) -> Result<(), Error> {
        let Some(quota) = self.limits().quota_backend_bytes else {
            return Ok(());
        };
        if cost == 0 || self.store().size_bytes() + (cost as i64) < quota {
            return Ok(());
        }
        if let Err(e) = self
            .activate_alarm(self.member_id(), AlarmType::Nospace)
            .await
        {
            tracing::warn!(error = %e, "failed to raise the NOSPACE alarm");
        }
        Err(Error::Apply(crate::apply::ApplyError::NoSpace))
    }

    /// Raises `alarm` for `member_id` on every member.
    pub async fn activate_alarm(&self, member_id: u64, alarm: AlarmType) -> Result<(), Error> {
        if self
            .alarms()
            .get(alarm)
            .iter()
            .any(|m| m.member_id == member_id)
        {
            return Ok(());
        }
        self.alarm(AlarmRequest {
            action: AlarmAction::Activate as i32,
            member_id,
            alarm: alarm as i32,
        })
        .await
        .map(|_| ())
    }

    /// Lists, raises or clears alarms through raft (etcd's Alarm: even a
    /// list is linearized through the log).
    pub async fn alarm(&self, req: AlarmRequest) -> Result<AlarmResponse, Error> {
        self.propose(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alarm::{cost_txn, KV_OVERHEAD};
    use crate::proto::etcdserverpb::{request_op, PutRequest, RequestOp, TxnRequest};

    fn put(k: &str, v: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                value: v.into(),
                ..Default::default()
            })),
        }
    }

    #[test]
    fn txn_cost_is_the_larger_branch_of_puts() {
        let t = TxnRequest {
            success: vec![put("a", "xx"), put("b", "y")],
            failure: vec![put("c", "zzzz")],
            ..Default::default()
        };
        assert_eq!(cost_txn(&t), 2 * KV_OVERHEAD + 5);
        assert_eq!(cost_txn(&TxnRequest::default()), 0);
        assert_eq!(effective_quota(0), Some(DEFAULT_QUOTA_BYTES));
        assert_eq!(effective_quota(-1), None);
    }
}
