//! clientv3's `concurrency` package, which etcdctl's `lock` and `elect`
//! run on: a session (a lease kept alive), a mutex and an election, built
//! from KV transactions and watches so they work against any etcd. The
//! requests are the ones etcd's client sends, in the same order.

pub mod election;
pub mod mutex;
pub mod session;

use rsetcd::client::prefix_end;
use rsetcd::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use rsetcd::proto::etcdserverpb::{
    Compare, RangeRequest, RangeResponse, ResponseHeader, TxnRequest, TxnResponse,
    WatchCreateRequest,
};
use rsetcd::proto::mvccpb::event::EventType;

use crate::global::{RpcError, SharedClient};
use crate::watcher::Watcher;

/// A linearizable range read (retried on another endpoint if need be).
async fn range(client: &SharedClient, request: RangeRequest) -> Result<RangeResponse, RpcError> {
    client
        .lock()
        .await
        .call(request, true, |channel, req| async move {
            KvClient::new(channel).range(req).await
        })
        .await
}

async fn txn(client: &SharedClient, request: TxnRequest) -> Result<TxnResponse, RpcError> {
    client
        .lock()
        .await
        .call(request, false, |channel, req| async move {
            KvClient::new(channel).txn(req).await
        })
        .await
}

/// `CreateRevision(key) = revision`.
fn create_revision_is(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
    }
}

/// clientv3's `OpGet(prefix, WithFirstCreate()/WithLastCreate())`: the
/// oldest (or newest) key under `prefix`.
fn by_creation(prefix: &[u8], order: SortOrder) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: SortTarget::Create as i32,
        ..RangeRequest::default()
    }
}

/// Waits until `key` is deleted, watching from `revision` (clientv3's
/// `waitDelete`).
async fn wait_delete(watcher: &mut Watcher, key: &[u8], revision: i64) -> Result<(), RpcError> {
    let mut watch = watcher.watch(WatchCreateRequest {
        key: key.to_vec(),
        start_revision: revision,
        ..WatchCreateRequest::default()
    });
    while let Some(response) = watch.recv().await {
        if response
            .events
            .iter()
            .any(|e| e.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
        if let Some(err) = response.err() {
            return Err(RpcError::new(err));
        }
    }
    Err(RpcError::new("lost watcher waiting for delete"))
}

/// Waits until every key under `prefix` created at or before
/// `max_create_revision` is gone (clientv3's `waitDeletes`), returning the
/// header of the read that found none.
async fn wait_deletes(
    client: &SharedClient,
    watcher: &mut Watcher,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<ResponseHeader, RpcError> {
    loop {
        let request = RangeRequest {
            max_create_revision,
            ..by_creation(prefix, SortOrder::Descend)
        };
        let response = range(client, request).await?;
        let header = response.header.unwrap_or_default();
        let Some(last) = response.kvs.first() else {
            return Ok(header);
        };
        wait_delete(watcher, &last.key, header.revision).await?;
    }
}
