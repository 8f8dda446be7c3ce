//! etcd's request checks before anything is proposed (v3rpc/key.go):
//! empty keys, put option conflicts, txn size and overlapping writes.

use std::collections::HashSet;

use super::status::Invalid;
use crate::proto::etcdserverpb::{
    range_request, request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};

pub fn range(r: &RangeRequest) -> Result<(), Invalid> {
    if r.key.is_empty() {
        return Err(Invalid::EmptyKey);
    }
    // An unknown sort order is taken (etcd sorts nothing then); an unknown
    // target is refused: etcd sorts with no comparison and crashes.
    if range_request::SortTarget::try_from(r.sort_target).is_err() {
        return Err(Invalid::InvalidSortOption);
    }
    Ok(())
}

pub fn put(r: &PutRequest) -> Result<(), Invalid> {
    if r.key.is_empty() {
        return Err(Invalid::EmptyKey);
    }
    if r.ignore_value && !r.value.is_empty() {
        return Err(Invalid::ValueProvided);
    }
    if r.ignore_lease && r.lease != 0 {
        return Err(Invalid::LeaseProvided);
    }
    Ok(())
}

pub fn delete_range(r: &DeleteRangeRequest) -> Result<(), Invalid> {
    if r.key.is_empty() {
        return Err(Invalid::EmptyKey);
    }
    Ok(())
}

pub fn txn(r: &TxnRequest, max_txn_ops: u64) -> Result<(), Invalid> {
    txn_ops(r, i64::try_from(max_txn_ops).unwrap_or(i64::MAX))?;
    check_intervals(&r.success)?;
    check_intervals(&r.failure)?;
    Ok(())
}

fn txn_ops(r: &TxnRequest, max_ops: i64) -> Result<(), Invalid> {
    let opc = r.compare.len().max(r.success.len()).max(r.failure.len()) as i64;
    if opc > max_ops {
        return Err(Invalid::TooManyOps);
    }
    if r.compare.iter().any(|c| c.key.is_empty()) {
        return Err(Invalid::EmptyKey);
    }
    for op in r.success.iter().chain(&r.failure) {
        request_op(op, max_ops - opc)?;
    }
    Ok(())
}

fn request_op(op: &RequestOp, max_ops: i64) -> Result<(), Invalid> {
    match &op.request {
        Some(request_op::Request::RequestRange(r)) => range(r),
        Some(request_op::Request::RequestPut(p)) => put(p),
        Some(request_op::Request::RequestDeleteRange(d)) => delete_range(d),
        Some(request_op::Request::RequestTxn(t)) => txn_ops(t, max_ops),
        None => Err(Invalid::KeyNotFound),
    }
}

/// A deleted interval `[begin, end)`; a single key `k` is `[k, k\0)`.
#[derive(Clone)]
struct Interval {
    begin: Vec<u8>,
    end: Vec<u8>,
}

impl Interval {
    fn covers(&self, k: &[u8]) -> bool {
        self.begin.as_slice() <= k && k < self.end.as_slice()
    }
}

/// etcd's `checkIntervals`: no key may be put twice, or put and deleted, on
/// one path through a txn. Returns the puts and deletes of `reqs`.
fn check_intervals(reqs: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<Interval>), Invalid> {
    let mut dels: Vec<Interval> = reqs
        .iter()
        .filter_map(|op| match &op.request {
            Some(request_op::Request::RequestDeleteRange(d)) => Some(if d.range_end.is_empty() {
                let mut end = d.key.clone();
                end.push(0);
                Interval {
                    begin: d.key.clone(),
                    end,
                }
            } else {
                Interval {
                    begin: d.key.clone(),
                    end: d.range_end.clone(),
                }
            }),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|iv| iv.covers(k));
    let mut puts: HashSet<Vec<u8>> = HashSet::new();
    for op in reqs {
        let Some(request_op::Request::RequestTxn(t)) = &op.request else {
            continue;
        };
        let (puts_then, dels_then) = check_intervals(&t.success)?;
        let (puts_else, dels_else) = check_intervals(&t.failure)?;
        for k in &puts_then {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(Invalid::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        for k in &puts_else {
            // then and else exclude each other: the same key in both is fine
            if (puts.contains(k) && !puts_then.contains(k)) || deleted(&dels, k) {
                return Err(Invalid::DuplicateKey);
            }
            puts.insert(k.clone());
        }
        dels.extend(dels_then);
        dels.extend(dels_else);
    }
    for op in reqs {
        let Some(request_op::Request::RequestPut(p)) = &op.request else {
            continue;
        };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(Invalid::DuplicateKey);
        }
        puts.insert(p.key.clone());
    }
    Ok((puts, dels))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_op(k: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: k.into(),
                ..Default::default()
            })),
        }
    }

    fn del_op(k: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(request_op::Request::RequestDeleteRange(
                DeleteRangeRequest {
                    key: k.into(),
                    range_end: end.into(),
                    ..Default::default()
                },
            )),
        }
    }

    #[test]
    fn duplicate_and_overlapping_writes() {
        let t = |ops: Vec<RequestOp>| TxnRequest {
            success: ops,
            ..Default::default()
        };
        assert_eq!(
            txn(&t(vec![put_op("a"), put_op("a")]), 128),
            Err(Invalid::DuplicateKey)
        );
        assert_eq!(
            txn(&t(vec![put_op("b"), del_op("a", "c")]), 128),
            Err(Invalid::DuplicateKey)
        );
        assert_eq!(txn(&t(vec![put_op("c"), del_op("a", "c")]), 128), Ok(()));
        assert_eq!(
            txn(&t(vec![put_op("a"), del_op("a", "")]), 128),
            Err(Invalid::DuplicateKey)
        );
        let too_many = t((0..129).map(|i| put_op(&format!("k{i}"))).collect());
        assert_eq!(txn(&too_many, 128), Err(Invalid::TooManyOps));
        assert_eq!(txn(&t(vec![put_op("")]), 128), Err(Invalid::EmptyKey));
    }
}
