//! What the Lock and Election services share: the server side of etcd's
//! `client/v3/concurrency` package (Session, Mutex, Election) as etcd's
//! v3lock and v3election servers use it.
//!
//! A contender is a key `<name>/<lease id in hex>` bound to its lease; the
//! contender with the smallest create revision holds the lock (or leads).
//! Waiting for one's turn means waiting until every key under the prefix
//! with a smaller create revision is gone. Everything goes through the KV
//! path (raft proposals and linearizable reads), exactly as etcd's servers
//! go through their in-process client.

use std::sync::Arc;

use tonic::Status;

use crate::apply::ops;
use crate::mvcc::{KeyRange, RangeOptions, ReadView};
use crate::proto::etcdserverpb::{
    compare, range_request, request_op, response_op, Compare, DeleteRangeRequest,
    LeaseGrantRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    TxnResponse,
};
use crate::proto::mvccpb::KeyValue;
use crate::server::{Error, EtcdServer};

/// The TTL of the lease a session grants when the request names none
/// (etcd's defaultSessionTTL).
const DEFAULT_SESSION_TTL: i64 = 60;

/// etcd's servers return plain Go errors for these; gRPC sends those as
/// code Unknown with the error's text.
pub(super) fn go_error(message: &str) -> Status {
    Status::unknown(message)
}

/// etcd's lock and election servers reach the KV through an in-process
/// client, which turns every gRPC error into a plain error: the client
/// sees code Unknown with etcd's message ("etcdserver: requested lease not
/// found", "etcdserver: key is not provided", ...).
pub(super) fn as_go_error(status: Status) -> Status {
    if status.code() == tonic::Code::Unknown {
        status
    } else {
        Status::unknown(status.message())
    }
}

/// The lease a request's session uses. etcd's `concurrency.NewSession`
/// grants a fresh lease with the default TTL when given lease 0, and does
/// not check a non-zero one (a put naming it fails if it does not exist).
pub(super) async fn session_lease(server: &EtcdServer, lease: i64) -> Result<i64, Status> {
    if lease != 0 {
        return Ok(lease);
    }
    let grant = LeaseGrantRequest {
        ttl: DEFAULT_SESSION_TTL,
        id: server.next_lease_id(),
    };
    Ok(server.propose(grant).await?.id)
}

/// The session lease for a contender under `prefix`, checked for `who`
/// before anything is granted: a caller that may not read the prefix is
/// refused first, and one that may not write its own key (known only once
/// the lease is) gets the lease it did not ask for revoked again. The
/// caller may not make the cluster grant leases it has no use for.
pub(super) async fn checked_session(
    server: &EtcdServer,
    who: &crate::auth::AuthInfo,
    prefix: &[u8],
    lease: i64,
) -> Result<(i64, Vec<u8>), Status> {
    super::auth::check_contender(server, who, prefix, None)?;
    let granted = session_lease(server, lease).await?;
    let key = contender_key(prefix, granted);
    if let Err(refused) = super::auth::check_contender(server, who, prefix, Some(&key)) {
        if lease == 0 {
            let revoke = crate::proto::etcdserverpb::LeaseRevokeRequest { id: granted };
            // as the caller: only the leader proposes unchecked revokes
            let _ = server.propose_as(revoke, who).await;
        }
        return Err(refused);
    }
    Ok((granted, key))
}

/// `<prefix><lease id in hex>`, Go's `%x` of the signed id.
pub(super) fn contender_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut key = prefix.to_vec();
    key.extend_from_slice(hex.as_bytes());
    key
}

/// The end of the range holding every key that starts with `prefix`
/// (etcd's GetPrefixRangeEnd).
pub(super) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // all 0xff (or empty): to the end of the keyspace
    vec![0]
}

pub(super) fn create_revision_is(key: &[u8], rev: i64) -> Compare {
    Compare {
        result: compare::CompareResult::Equal as i32,
        target: compare::CompareTarget::Create as i32,
        key: key.to_vec(),
        target_union: Some(compare::TargetUnion::CreateRevision(rev)),
        ..Default::default()
    }
}

pub(super) fn put_op(key: &[u8], value: Vec<u8>, lease: i64) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value,
            lease,
            ..Default::default()
        })),
    }
}

pub(super) fn get_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

pub(super) fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestDeleteRange(
            DeleteRangeRequest {
                key: key.to_vec(),
                ..Default::default()
            },
        )),
    }
}

/// The oldest contender under `prefix` (clientv3's `WithFirstCreate`).
pub(super) fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        sort_target: range_request::SortTarget::Create as i32,
        sort_order: range_request::SortOrder::Ascend as i32,
        limit: 1,
        ..Default::default()
    }
}

pub(super) fn first_created_op(prefix: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(first_created(prefix))),
    }
}

/// The kvs of the `index`-th response of a txn, if it is a range.
pub(super) fn range_kvs(resp: &TxnResponse, index: usize) -> &[KeyValue] {
    match resp.responses.get(index).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => &r.kvs,
        _ => &[],
    }
}

/// Proposes `txn` and returns its result with a full header.
pub(super) async fn txn(server: &EtcdServer, txn: TxnRequest) -> Result<TxnResponse, Status> {
    let mut resp = server.propose(txn).await?;
    let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
    resp.header = Some(server.header(rev));
    Ok(resp)
}

/// Deletes `key` if it is still the incarnation created at `rev`
/// (etcd's Election.Resign; a mutex's cleanup of its waiter key).
pub(super) async fn withdraw(
    server: &EtcdServer,
    key: &[u8],
    rev: i64,
) -> Result<TxnResponse, Status> {
    txn(
        server,
        TxnRequest {
            compare: vec![create_revision_is(key, rev)],
            success: vec![delete_op(key)],
            failure: Vec::new(),
        },
    )
    .await
}

fn read_view(server: &EtcdServer) -> Result<ReadView<'_>, Status> {
    Ok(server.read_view()?)
}

fn get(view: &ReadView<'_>, key: &[u8]) -> Result<Option<KeyValue>, Status> {
    let mut r = view
        .range(&KeyRange::Single(key.to_vec()), RangeOptions::default())
        .map_err(|e| Error::Apply(e.into()))?;
    Ok(r.kvs.pop())
}

/// Whether `key` is still the incarnation created at `rev`.
fn holds(view: &ReadView<'_>, key: &[u8], rev: i64) -> Result<bool, Status> {
    Ok(get(view, key)?.is_some_and(|kv| kv.create_revision == rev))
}

/// The newest contender under `prefix` created before `rev`: the one to
/// wait for (clientv3's waitDeletes with `WithLastCreate`).
fn predecessor(view: &ReadView<'_>, prefix: &[u8], rev: i64) -> Result<Option<KeyValue>, Status> {
    let r = ops::range(
        view,
        &RangeRequest {
            key: prefix.to_vec(),
            range_end: prefix_end(prefix),
            max_create_revision: rev - 1,
            sort_target: range_request::SortTarget::Create as i32,
            sort_order: range_request::SortOrder::Descend as i32,
            limit: 1,
            ..Default::default()
        },
    )?;
    Ok(r.kvs.into_iter().next())
}

/// How waiting for one's turn ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Turn {
    /// No contender created before ours is left.
    Reached,
    /// Our own key is gone (its lease expired or was revoked, or someone
    /// deleted it): waiting longer could never succeed. etcd keeps waiting
    /// for the others and fails afterwards; we fail at once.
    Lost,
}

/// Waits until no key under `prefix` has a create revision below `rev`,
/// re-checking on every new revision. Like etcd, it waits on the newest
/// older contender at a time, so a handover wakes one waiter's rescan.
pub(super) async fn wait_turn(
    server: &EtcdServer,
    prefix: &[u8],
    key: &[u8],
    rev: i64,
) -> Result<Turn, Status> {
    let mut changes = server.hub().subscribe();
    loop {
        changes.borrow_and_update();
        let pred = {
            let view = read_view(server)?;
            if !holds(&view, key, rev)? {
                return Ok(Turn::Lost);
            }
            match predecessor(&view, prefix, rev)? {
                Some(kv) => kv,
                None => return Ok(Turn::Reached),
            }
        };
        loop {
            changes.changed().await.map_err(|_| Error::Stopped)?;
            let view = read_view(server)?;
            if !holds(&view, key, rev)? {
                return Ok(Turn::Lost);
            }
            if !holds(&view, &pred.key, pred.create_revision)? {
                break;
            }
        }
    }
}

/// Whether the contender may be told it won.
#[derive(Debug)]
pub(super) enum Standing {
    /// Its key and lease are both live; the header of the check.
    Held(ResponseHeader),
    /// Its key is gone.
    KeyLost,
    /// Its key is there but its lease has expired (the revocation is not
    /// applied yet) or is gone.
    LeaseExpired,
}

/// etcd 3.5's check after waiting (a linearizable get of the own key),
/// plus the lease: an expired lease's keys are about to be revoked, so it
/// must not win (the lock bug Jepsen found in etcd 3.4.3).
pub(super) async fn standing(
    server: &EtcdServer,
    key: &[u8],
    rev: i64,
    lease: i64,
) -> Result<Standing, Status> {
    server.linearizable_read().await?;
    let view = read_view(server)?;
    if !holds(&view, key, rev)? {
        return Ok(Standing::KeyLost);
    }
    if !server.lessor().alive(lease) {
        return Ok(Standing::LeaseExpired);
    }
    Ok(Standing::Held(server.header(view.current_rev())))
}

/// Removes a contender's key when its request ends without winning, also
/// when the client goes away mid-wait (gRPC drops the handler): etcd's
/// Mutex.Lock and Election.Campaign clean up on a cancelled context too.
pub(super) struct WithdrawOnDrop {
    server: Arc<EtcdServer>,
    key: Vec<u8>,
    rev: i64,
    armed: bool,
}

impl WithdrawOnDrop {
    pub(super) fn new(server: Arc<EtcdServer>, key: Vec<u8>, rev: i64) -> Self {
        WithdrawOnDrop {
            server,
            key,
            rev,
            armed: true,
        }
    }

    /// The contender won (or was cleaned up already): keep the key.
    pub(super) fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for WithdrawOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // shutting down: the lease's expiry removes the key
        };
        let server = self.server.clone();
        let key = std::mem::take(&mut self.key);
        let rev = self.rev;
        runtime.spawn(async move {
            if let Err(e) = withdraw(&server, &key, rev).await {
                tracing::warn!(error = %e.message(), "could not remove an abandoned lock/election key");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_like_go() {
        assert_eq!(contender_key(b"lk/", 0x694d7a), b"lk/694d7a");
        assert_eq!(contender_key(b"lk/", -255), b"lk/-ff");
        assert_eq!(prefix_end(b"lk/"), b"lk0");
        assert_eq!(prefix_end(&[b'a', 0xff]), b"b");
        assert_eq!(prefix_end(&[0xff]), vec![0]);
    }
}
