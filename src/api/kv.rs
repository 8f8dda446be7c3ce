//! The KV service (etcd's v3rpc/key.go): validate, then read locally (after
//! a ReadIndex unless serializable) or propose through raft.

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::{auth, validate};
use crate::apply::ops;
use crate::proto::etcdserverpb::{
    kv_server::Kv, request_op, CompactionRequest, CompactionResponse, DeleteRangeRequest,
    DeleteRangeResponse, PutRequest, PutResponse, RangeRequest, RangeResponse, ResponseHeader,
    TxnRequest, TxnResponse,
};
use crate::server::{Error, EtcdServer};

pub struct KvService {
    server: Arc<EtcdServer>,
}

impl KvService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        KvService { server }
    }

    /// etcd's `header.fill`: ids and term; the revision if the request did
    /// not set one.
    fn fill(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map(|h| h.revision).unwrap_or(0);
        let revision = if revision == 0 {
            self.server
                .store()
                .read()
                .map(|v| v.current_rev())
                .unwrap_or(0)
        } else {
            revision
        };
        *header = Some(self.server.header(revision));
    }
}

/// Whether every range in a read-only txn asks for a serializable read.
fn txn_serializable(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => r.serializable,
            Some(request_op::Request::RequestTxn(t)) => txn_serializable(t),
            _ => true,
        })
}

/// Whether a range is as cheap as a point lookup: one key. Any other range
/// may walk many keys, even with a small limit (the response counts every
/// key in the range).
fn is_small_range(r: &RangeRequest) -> bool {
    r.range_end.is_empty()
}

fn is_small_txn(t: &TxnRequest) -> bool {
    t.success
        .iter()
        .chain(&t.failure)
        .all(|op| match &op.request {
            Some(request_op::Request::RequestRange(r)) => is_small_range(r),
            Some(request_op::Request::RequestTxn(t)) => is_small_txn(t),
            _ => true,
        })
}

/// Runs a read: a small one here, anything that may walk many keys on a
/// blocking thread, so that it cannot hold back peer traffic, lease
/// keep-alives and the other requests sharing the async workers.
async fn run_read<T: Send + 'static>(
    small: bool,
    read: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    if small {
        return read();
    }
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| Status::internal(format!("etcdserver: read task failed: {e}")))?
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn range(&self, req: Request<RangeRequest>) -> Result<Response<RangeResponse>, Status> {
        validate::range(req.get_ref())?;
        // a serializable read sees every answered write at once: a batch
        // is published before its answers go out
        if !req.get_ref().serializable {
            self.server.linearizable_read().await?;
        }
        let caller = auth::caller(&self.server, &req).await?;
        let r = req.into_inner();
        self.server
            .auth()
            .check_range(&auth::or_empty(&caller), &r)?;
        let store = self.server.store().clone();
        let mut resp = run_read(is_small_range(&r), move || {
            let view = store.read().map_err(|e| Error::Apply(e.into()))?;
            Ok(ops::range(&view, &r)?)
        })
        .await?;
        auth::check_stale(&self.server, &caller)?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn put(&self, req: Request<PutRequest>) -> Result<Response<PutResponse>, Status> {
        // etcd's quotaKVServer checks before anything else.
        self.server
            .check_quota(crate::alarm::cost_put(req.get_ref()))
            .await?;
        validate::put(req.get_ref())?;
        let caller = auth::caller(&self.server, &req).await?;
        let r = req.into_inner();
        let mut resp = self.server.propose_as(r, &auth::or_empty(&caller)).await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn delete_range(
        &self,
        req: Request<DeleteRangeRequest>,
    ) -> Result<Response<DeleteRangeResponse>, Status> {
        validate::delete_range(req.get_ref())?;
        let caller = auth::caller(&self.server, &req).await?;
        let r = req.into_inner();
        let mut resp = self.server.propose_as(r, &auth::or_empty(&caller)).await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn txn(&self, req: Request<TxnRequest>) -> Result<Response<TxnResponse>, Status> {
        self.server
            .check_quota(crate::alarm::cost_txn(req.get_ref()))
            .await?;
        validate::txn(req.get_ref(), self.server.limits().max_txn_ops)?;
        if ops::is_txn_read_only(req.get_ref()) {
            if !txn_serializable(req.get_ref()) {
                self.server.linearizable_read().await?;
            }
            let caller = auth::caller(&self.server, &req).await?;
            let r = req.into_inner();
            self.server.auth().check_txn(&auth::or_empty(&caller), &r)?;
            let store = self.server.store().clone();
            let mut resp = run_read(is_small_txn(&r), move || {
                let mut view = store.read().map_err(|e| Error::Apply(e.into()))?;
                Ok(ops::txn(&mut view, &r)?)
            })
            .await?;
            auth::check_stale(&self.server, &caller)?;
            self.fill(&mut resp.header);
            return Ok(Response::new(resp));
        }
        let caller = auth::caller(&self.server, &req).await?;
        let r = req.into_inner();
        let mut resp = self.server.propose_as(r, &auth::or_empty(&caller)).await?;
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }

    async fn compact(
        &self,
        req: Request<CompactionRequest>,
    ) -> Result<Response<CompactionResponse>, Status> {
        let caller = auth::caller(&self.server, &req).await?;
        // root only with auth on (beyond etcd): a compaction destroys the
        // history every watcher and reader relies on. Checked here only, so
        // that what apply decides does not change (a member of an older
        // version must reach the same result from the same entry).
        self.server.auth().check_admin(&auth::or_empty(&caller))?;
        let r = req.into_inner();
        let (physical, revision) = (r.physical, r.revision);
        let mut resp = self.server.propose_as(r, &auth::or_empty(&caller)).await?;
        // physical: answered once the records are deleted too, as etcd's
        // (they go in batches after the apply; etcd waits for as long as
        // that takes, or until the client leaves)
        if physical {
            self.server.store().physically_compacted(revision).await;
        }
        self.fill(&mut resp.header);
        Ok(Response::new(resp))
    }
}
