//! etcd's request semantics on top of `mvcc`: Range (limits, sorting,
//! filters), Put (prev_kv, ignore_value, ignore_lease), DeleteRange and Txn
//! (compares, nested txns, one revision for the whole txn). Mirrors etcd's
//! `applierV3backend`, so answers match etcd's byte for byte.
//!
//! The same code serves reads (on a `ReadView`, outside raft) and writes
//! (on the apply thread's `WriteTxn`).

use std::cmp::Ordering;

use crate::mvcc::{self, KeyRange, RangeOptions, RangeResult, ReadView, WriteTxn};
use crate::proto::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader, ResponseOp, TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::KeyValue;

pub use crate::propose::ApplyError;

/// What a request sees of the store: reads, and (for `WriteTxn`) writes.
pub trait Kv {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, mvcc::Error>;
    /// Revision before this request's changes.
    fn begin_rev(&self) -> i64;
    fn compacted_rev(&self) -> i64;
    /// Whether this request has changed anything yet.
    fn changed(&self) -> bool;
    fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> Result<(), ApplyError>;
    fn delete_range(&mut self, range: &KeyRange) -> Result<Vec<KeyValue>, ApplyError>;
    /// Whether a put may name lease `id`.
    fn lease_exists(&self, id: i64) -> bool;
}

/// The apply thread's view: the write txn plus the lessor, so puts can
/// check their lease.
pub struct Leased<'a, 's> {
    pub txn: &'a mut WriteTxn<'s>,
    pub lessor: &'a crate::lease::Lessor,
}

impl Kv for Leased<'_, '_> {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, mvcc::Error> {
        WriteTxn::range(self.txn, range, opts)
    }
    fn begin_rev(&self) -> i64 {
        self.txn.current_rev()
    }
    fn compacted_rev(&self) -> i64 {
        WriteTxn::compacted_rev(self.txn)
    }
    fn changed(&self) -> bool {
        self.txn.has_changes()
    }
    fn put(&mut self, key: &[u8], value: Vec<u8>, lease: i64) -> Result<(), ApplyError> {
        Ok(WriteTxn::put(self.txn, key, value, lease)?)
    }
    fn delete_range(&mut self, range: &KeyRange) -> Result<Vec<KeyValue>, ApplyError> {
        Ok(WriteTxn::delete_range(self.txn, range)?)
    }
    fn lease_exists(&self, id: i64) -> bool {
        self.lessor.exists(id)
    }
}

/// Reads served outside raft. Read-only requests never write; the write
/// methods exist only so one txn evaluator serves both paths.
impl Kv for ReadView<'_> {
    fn range(&self, range: &KeyRange, opts: RangeOptions) -> Result<RangeResult, mvcc::Error> {
        ReadView::range(self, range, opts)
    }
    fn begin_rev(&self) -> i64 {
        self.current_rev()
    }
    fn compacted_rev(&self) -> i64 {
        ReadView::compacted_rev(self)
    }
    fn changed(&self) -> bool {
        false
    }
    fn put(&mut self, _: &[u8], _: Vec<u8>, _: i64) -> Result<(), ApplyError> {
        Err(ApplyError::Storage("write in a read-only request".into()))
    }
    fn delete_range(&mut self, _: &KeyRange) -> Result<Vec<KeyValue>, ApplyError> {
        Err(ApplyError::Storage("write in a read-only request".into()))
    }
    fn lease_exists(&self, _: i64) -> bool {
        false
    }
}

fn header(revision: i64) -> Option<ResponseHeader> {
    Some(ResponseHeader {
        revision,
        ..Default::default()
    })
}

/// The revision a request reports: the new one once it changed something.
fn rev_after<K: Kv + ?Sized>(kv: &K) -> i64 {
    kv.begin_rev() + i64::from(kv.changed())
}

pub fn range<K: Kv + ?Sized>(kv: &K, r: &RangeRequest) -> Result<RangeResponse, ApplyError> {
    crate::metrics::mvcc().range_total.inc();
    // An order etcd does not know (the API lets it through, as etcd):
    // everything is fetched, nothing sorted.
    let unknown_order = range_request::SortOrder::try_from(r.sort_order).is_err();
    let sort_order =
        range_request::SortOrder::try_from(r.sort_order).unwrap_or(range_request::SortOrder::None);
    let sort_target = range_request::SortTarget::try_from(r.sort_target)
        .unwrap_or(range_request::SortTarget::Key);
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let mut limit = r.limit;
    if sort_order != range_request::SortOrder::None || unknown_order || filtered {
        limit = 0; // fetch everything; sort and truncate afterwards
    }
    if limit > 0 {
        // one extra tells whether there is more; i64::MAX stays "all"
        limit = limit.saturating_add(1);
    }
    let mut rr = kv.range(
        &KeyRange::new(&r.key, &r.range_end),
        RangeOptions {
            rev: r.revision,
            limit,
            count_only: r.count_only,
        },
    )?;
    if r.max_mod_revision != 0 {
        rr.kvs.retain(|kv| kv.mod_revision <= r.max_mod_revision);
    }
    if r.min_mod_revision != 0 {
        rr.kvs.retain(|kv| kv.mod_revision >= r.min_mod_revision);
    }
    if r.max_create_revision != 0 {
        rr.kvs
            .retain(|kv| kv.create_revision <= r.max_create_revision);
    }
    if r.min_create_revision != 0 {
        rr.kvs
            .retain(|kv| kv.create_revision >= r.min_create_revision);
    }
    let mut order = sort_order;
    if sort_target != range_request::SortTarget::Key
        && order == range_request::SortOrder::None
        && !unknown_order
    {
        // results come key-ascending; other targets sort ascending by default
        order = range_request::SortOrder::Ascend;
    }
    if order != range_request::SortOrder::None {
        let cmp = |a: &KeyValue, b: &KeyValue| -> Ordering {
            match sort_target {
                range_request::SortTarget::Key => a.key.cmp(&b.key),
                range_request::SortTarget::Version => a.version.cmp(&b.version),
                range_request::SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                range_request::SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                range_request::SortTarget::Value => a.value.cmp(&b.value),
            }
        };
        // stable, like Go's sort on the small slices etcd sorts
        if order == range_request::SortOrder::Descend {
            rr.kvs.sort_by(|a, b| cmp(b, a));
        } else {
            rr.kvs.sort_by(cmp);
        }
    }
    let mut more = false;
    if r.limit > 0 && rr.kvs.len() as i64 > r.limit {
        rr.kvs
            .truncate(usize::try_from(r.limit).unwrap_or(usize::MAX));
        more = true;
    }
    if r.keys_only {
        for kv in &mut rr.kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: header(rr.rev),
        kvs: rr.kvs,
        more,
        count: rr.count,
    })
}

fn get_one<K: Kv + ?Sized>(kv: &K, key: &[u8]) -> Result<Option<KeyValue>, ApplyError> {
    Ok(kv
        .range(&KeyRange::Single(key.to_vec()), RangeOptions::default())?
        .kvs
        .pop())
}

pub fn put<K: Kv + ?Sized>(kv: &mut K, p: &PutRequest) -> Result<PutResponse, ApplyError> {
    if p.lease != 0 && !kv.lease_exists(p.lease) {
        return Err(ApplyError::LeaseNotFound);
    }
    let mut value = p.value.clone();
    let mut lease = p.lease;
    let mut prev_kv = None;
    if p.ignore_value || p.ignore_lease || p.prev_kv {
        let prev = get_one(kv, &p.key)?;
        if p.ignore_value || p.ignore_lease {
            let Some(prev) = &prev else {
                return Err(ApplyError::KeyNotFound);
            };
            if p.ignore_value {
                value = prev.value.clone();
            }
            if p.ignore_lease {
                lease = prev.lease;
            }
        }
        if p.prev_kv {
            prev_kv = prev;
        }
    }
    kv.put(&p.key, value, lease)?;
    Ok(PutResponse {
        header: header(kv.begin_rev() + 1),
        prev_kv,
    })
}

pub fn delete_range<K: Kv + ?Sized>(
    kv: &mut K,
    d: &DeleteRangeRequest,
) -> Result<DeleteRangeResponse, ApplyError> {
    let deleted = kv.delete_range(&KeyRange::new(&d.key, &d.range_end))?;
    Ok(DeleteRangeResponse {
        header: header(rev_after(kv)),
        deleted: deleted.len() as i64,
        prev_kvs: if d.prev_kv { deleted } else { Vec::new() },
    })
}

/// Whether a txn writes nothing, whichever branch it takes (etcd serves
/// such txns like reads, outside raft).
pub fn is_txn_read_only(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(_)) | None => true,
            Some(request_op::Request::RequestTxn(t)) => is_txn_read_only(t),
            Some(_) => false,
        })
}

pub fn txn<K: Kv + ?Sized>(kv: &mut K, t: &TxnRequest) -> Result<TxnResponse, ApplyError> {
    crate::metrics::mvcc().txn_total.inc();
    // Every compare, nested ones included, sees the store before the txn.
    let mut path = Vec::new();
    compare_path(kv, t, &mut path)?;
    check_ops(kv, t, &path, &mut 0, Check::Puts)?;
    check_ops(kv, t, &path, &mut 0, Check::Ranges)?;
    let mut at = 0;
    let mut resp = apply_txn(kv, t, &path, &mut at)?;
    resp.header = header(rev_after(kv));
    Ok(resp)
}

/// Records, depth first, which branch each (nested) txn takes.
fn compare_path<K: Kv + ?Sized>(
    kv: &K,
    t: &TxnRequest,
    path: &mut Vec<bool>,
) -> Result<(), ApplyError> {
    let mut ok = true;
    for c in &t.compare {
        if !compare_holds(kv, c)? {
            ok = false;
            break;
        }
    }
    path.push(ok);
    for op in if ok { &t.success } else { &t.failure } {
        if let Some(request_op::Request::RequestTxn(inner)) = &op.request {
            compare_path(kv, inner, path)?;
        }
    }
    Ok(())
}

/// Whether one compare holds. A failed read is an error, never "false":
/// that would quietly run the other branch.
fn compare_holds<K: Kv + ?Sized>(kv: &K, c: &Compare) -> Result<bool, ApplyError> {
    let rr = kv.range(
        &KeyRange::new(&c.key, &c.range_end),
        RangeOptions::default(),
    )?;
    // an unknown target compares as equal, as in etcd's compareKV
    let target = compare::CompareTarget::try_from(c.target).ok();
    if rr.kvs.is_empty() {
        if target == Some(compare::CompareTarget::Value) {
            // a missing key has no value to compare
            return Ok(false);
        }
        return Ok(compare_kv(c, target, &KeyValue::default()));
    }
    Ok(rr.kvs.iter().all(|kv| compare_kv(c, target, kv)))
}

fn compare_kv(c: &Compare, target: Option<compare::CompareTarget>, kv: &KeyValue) -> bool {
    use compare::TargetUnion as T;
    let Some(target) = target else {
        return compare_result(c, Ordering::Equal);
    };
    let ord = match target {
        compare::CompareTarget::Value => {
            let want: &[u8] = match &c.target_union {
                Some(T::Value(v)) => v,
                _ => &[],
            };
            kv.value.as_slice().cmp(want)
        }
        compare::CompareTarget::Create => kv.create_revision.cmp(&match c.target_union {
            Some(T::CreateRevision(r)) => r,
            _ => 0,
        }),
        compare::CompareTarget::Mod => kv.mod_revision.cmp(&match c.target_union {
            Some(T::ModRevision(r)) => r,
            _ => 0,
        }),
        compare::CompareTarget::Version => kv.version.cmp(&match c.target_union {
            Some(T::Version(r)) => r,
            _ => 0,
        }),
        compare::CompareTarget::Lease => kv.lease.cmp(&match c.target_union {
            Some(T::Lease(r)) => r,
            _ => 0,
        }),
    };
    compare_result(c, ord)
}

fn compare_result(c: &Compare, ord: Ordering) -> bool {
    match compare::CompareResult::try_from(c.result) {
        Ok(compare::CompareResult::Equal) => ord == Ordering::Equal,
        Ok(compare::CompareResult::NotEqual) => ord != Ordering::Equal,
        Ok(compare::CompareResult::Greater) => ord == Ordering::Greater,
        Ok(compare::CompareResult::Less) => ord == Ordering::Less,
        Err(_) => true,
    }
}

fn branch<'a>(t: &'a TxnRequest, path: &[bool], at: usize) -> &'a [RequestOp] {
    if path.get(at).copied().unwrap_or(false) {
        &t.success
    } else {
        &t.failure
    }
}

/// Which of etcd's two pre-checks runs: every put first, then every range.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    Puts,
    Ranges,
}

/// etcd refuses the whole txn before changing anything if an op on the
/// taken path would fail: ignore_* on a missing key, an unknown lease, a
/// bad read revision. It checks all puts (nested ones too) before any
/// range, which decides the error when several ops would fail.
fn check_ops<K: Kv + ?Sized>(
    kv: &K,
    t: &TxnRequest,
    path: &[bool],
    at: &mut usize,
    check: Check,
) -> Result<(), ApplyError> {
    let ops = branch(t, path, *at);
    for op in ops {
        match &op.request {
            Some(request_op::Request::RequestTxn(inner)) => {
                *at += 1;
                check_ops(kv, inner, path, at, check)?;
            }
            Some(request_op::Request::RequestPut(p)) if check == Check::Puts => {
                if (p.ignore_value || p.ignore_lease) && get_one(kv, &p.key)?.is_none() {
                    return Err(ApplyError::KeyNotFound);
                }
                if p.lease != 0 && !kv.lease_exists(p.lease) {
                    return Err(ApplyError::LeaseNotFound);
                }
            }
            Some(request_op::Request::RequestRange(r))
                if check == Check::Ranges && r.revision != 0 =>
            {
                if r.revision > kv.begin_rev() {
                    return Err(ApplyError::FutureRev);
                }
                if r.revision < kv.compacted_rev() {
                    return Err(ApplyError::Compacted);
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn apply_txn<K: Kv + ?Sized>(
    kv: &mut K,
    t: &TxnRequest,
    path: &[bool],
    at: &mut usize,
) -> Result<TxnResponse, ApplyError> {
    let succeeded = path.get(*at).copied().unwrap_or(false);
    let ops = branch(t, path, *at);
    let mut responses = Vec::with_capacity(ops.len());
    for op in ops {
        let response = match &op.request {
            Some(request_op::Request::RequestRange(r)) => {
                Some(response_op::Response::ResponseRange(range(kv, r)?))
            }
            Some(request_op::Request::RequestPut(p)) => {
                Some(response_op::Response::ResponsePut(put(kv, p)?))
            }
            Some(request_op::Request::RequestDeleteRange(d)) => Some(
                response_op::Response::ResponseDeleteRange(delete_range(kv, d)?),
            ),
            Some(request_op::Request::RequestTxn(inner)) => {
                *at += 1;
                let mut r = apply_txn(kv, inner, path, at)?;
                // etcd leaves nested txn headers empty
                r.header = Some(ResponseHeader::default());
                Some(response_op::Response::ResponseTxn(r))
            }
            None => None,
        };
        responses.push(ResponseOp { response });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose reads fail, as a damaged backend's would.
    struct FailingReads;

    impl Kv for FailingReads {
        fn range(&self, _: &KeyRange, _: RangeOptions) -> Result<RangeResult, mvcc::Error> {
            Err(mvcc::Error::Corrupt("page 7 is not a branch page".into()))
        }
        fn begin_rev(&self) -> i64 {
            1
        }
        fn compacted_rev(&self) -> i64 {
            0
        }
        fn changed(&self) -> bool {
            false
        }
        fn put(&mut self, _: &[u8], _: Vec<u8>, _: i64) -> Result<(), ApplyError> {
            panic!("a txn whose compare could not be read must not write");
        }
        fn delete_range(&mut self, _: &KeyRange) -> Result<Vec<KeyValue>, ApplyError> {
            panic!("a txn whose compare could not be read must not write");
        }
        fn lease_exists(&self, _: i64) -> bool {
            false
        }
    }

    #[test]
    fn a_compare_that_cannot_be_read_fails_the_txn_instead_of_taking_the_failure_branch() {
        let put = |key: &str| RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.into(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        };
        let t = TxnRequest {
            compare: vec![Compare {
                key: b"k".to_vec(),
                target: compare::CompareTarget::Version as i32,
                result: compare::CompareResult::Equal as i32,
                target_union: Some(compare::TargetUnion::Version(0)),
                ..Default::default()
            }],
            success: vec![put("on-success")],
            failure: vec![put("on-failure")],
        };
        match txn(&mut FailingReads, &t) {
            Err(ApplyError::Storage(text)) => assert!(text.contains("page 7"), "{text}"),
            other => panic!("expected a storage error, got {other:?}"),
        }
    }
}
