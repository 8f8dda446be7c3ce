//! What each KV and lease request needs, as etcd's authApplierV3 checks it:
//! a range reads `[key, range_end)`; a put writes its key (and reads it
//! with prev_kv, inside a txn too, where etcd forgets to); a delete writes its range (and reads it with prev_kv); a
//! txn reads every compare key and needs what each op in both branches
//! needs, nested txns included; revoking a lease, or attaching a key to
//! it, writes every key already attached.

use crate::proto::etcdserverpb::{
    request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

use super::{Access, AuthInfo, AuthStore, Error};

/// The keys attached to a lease (empty for none or an unknown lease).
pub type LeaseKeys<'a> = &'a dyn Fn(i64) -> Vec<Vec<u8>>;

impl AuthStore {
    pub fn check_range(&self, who: &AuthInfo, r: &RangeRequest) -> Result<(), Error> {
        self.check(who, Access::Read, &r.key, &r.range_end)
    }

    pub fn check_put(
        &self,
        who: &AuthInfo,
        r: &PutRequest,
        lease_keys: LeaseKeys<'_>,
    ) -> Result<(), Error> {
        self.check(who, Access::Write, &r.key, &[])?;
        self.check_lease_keys(who, r.lease, lease_keys)?;
        if r.prev_kv {
            self.check(who, Access::Read, &r.key, &[])?;
        }
        Ok(())
    }

    pub fn check_delete_range(&self, who: &AuthInfo, r: &DeleteRangeRequest) -> Result<(), Error> {
        self.check(who, Access::Write, &r.key, &r.range_end)?;
        if r.prev_kv {
            self.check(who, Access::Read, &r.key, &r.range_end)?;
        }
        Ok(())
    }

    /// etcd's checkTxnAuth. Puts inside a txn are not checked against
    /// their lease's keys (etcd does not either).
    pub fn check_txn(&self, who: &AuthInfo, t: &TxnRequest) -> Result<(), Error> {
        for c in &t.compare {
            self.check(who, Access::Read, &c.key, &c.range_end)?;
        }
        self.check_ops(who, &t.success)?;
        self.check_ops(who, &t.failure)
    }

    fn check_ops(&self, who: &AuthInfo, ops: &[RequestOp]) -> Result<(), Error> {
        for op in ops {
            match &op.request {
                Some(request_op::Request::RequestRange(r)) => self.check_range(who, r)?,
                Some(request_op::Request::RequestPut(p)) => {
                    self.check(who, Access::Write, &p.key, &[])?;
                    // prev_kv returns the old value: a read, as for a put
                    // outside a txn (etcd checks only the write here, so a
                    // write-only user could read through a txn)
                    if p.prev_kv {
                        self.check(who, Access::Read, &p.key, &[])?;
                    }
                }
                Some(request_op::Request::RequestDeleteRange(d)) => {
                    if d.prev_kv {
                        self.check(who, Access::Read, &d.key, &d.range_end)?;
                    }
                    self.check(who, Access::Write, &d.key, &d.range_end)?;
                }
                Some(request_op::Request::RequestTxn(t)) => self.check_txn(who, t)?,
                None => {}
            }
        }
        Ok(())
    }

    /// etcd's checkLeasePuts: every key on the lease must be writable.
    pub fn check_lease_keys(
        &self,
        who: &AuthInfo,
        lease: i64,
        lease_keys: LeaseKeys<'_>,
    ) -> Result<(), Error> {
        if lease == 0 || !self.is_enabled() {
            return Ok(());
        }
        for key in lease_keys(lease) {
            self.check(who, Access::Write, &key, &[])?;
        }
        Ok(())
    }

    /// etcd's checkLeaseTimeToLive: every key on the lease must be
    /// readable, and a caller is needed.
    pub fn check_lease_read(
        &self,
        who: Option<&AuthInfo>,
        lease: i64,
        lease_keys: LeaseKeys<'_>,
    ) -> Result<(), Error> {
        if !self.is_enabled() {
            return Ok(());
        }
        let who = who.ok_or(Error::UserEmpty)?;
        for key in lease_keys(lease) {
            self.check(who, Access::Read, &key, &[])?;
        }
        Ok(())
    }
}
