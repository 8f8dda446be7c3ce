//! clientv3's `concurrency.Mutex`: each contender puts `<name>/<lease>`
//! under its session's lease; the oldest key holds the lock, and the others
//! wait for the keys created before theirs to be deleted.

use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::range_request::SortOrder;
use rsetcd::proto::etcdserverpb::request_op::Request;
use rsetcd::proto::etcdserverpb::response_op::Response;
use rsetcd::proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, ResponseHeader, TxnRequest,
    TxnResponse,
};
use rsetcd::proto::mvccpb::KeyValue;

use super::session::{lease_hex, Session};
use super::{by_creation, create_revision_is, range, txn, wait_deletes};
use crate::global::{RpcError, SharedClient};
use crate::watcher::Watcher;

const ERR_SESSION_EXPIRED: &str = "mutex: session is expired";

pub struct Mutex {
    lease: i64,
    prefix: Vec<u8>,
    key: Vec<u8>,
    /// The create revision of our key; -1 while we have none.
    revision: i64,
    header: Option<ResponseHeader>,
}

impl Mutex {
    pub fn new(session: &Session, name: &str) -> Self {
        Mutex {
            lease: session.lease(),
            prefix: format!("{name}/").into_bytes(),
            key: Vec::new(),
            revision: -1,
            header: None,
        }
    }

    /// Waits until the lock is ours. On failure after our key was written,
    /// the key is deleted again.
    pub async fn lock(
        &mut self,
        client: &SharedClient,
        watcher: &mut Watcher,
    ) -> Result<(), RpcError> {
        let response = self.try_acquire(client).await?;
        let owner = range_kvs(&response, 1);
        if owner
            .first()
            .is_none_or(|kv| kv.create_revision == self.revision)
        {
            self.header = response.header;
            return Ok(());
        }
        if let Err(err) = wait_deletes(client, watcher, &self.prefix, self.revision - 1).await {
            let _ = self.unlock(client).await;
            return Err(err);
        }
        // Make sure the session did not expire meanwhile: our key is there.
        let request = RangeRequest {
            key: self.key.clone(),
            ..RangeRequest::default()
        };
        let mine = match range(client, request).await {
            Ok(mine) => mine,
            Err(err) => {
                let _ = self.unlock(client).await;
                return Err(err);
            }
        };
        if mine.kvs.is_empty() {
            return Err(RpcError::new(ERR_SESSION_EXPIRED));
        }
        self.header = mine.header;
        Ok(())
    }

    /// Whether our key was written, so that an abandoned `lock` must delete
    /// it.
    pub fn is_queued(&self) -> bool {
        self.revision != -1
    }

    /// Puts our key unless it is there already, and reads the owner's.
    async fn try_acquire(&mut self, client: &SharedClient) -> Result<TxnResponse, RpcError> {
        let mut key = self.prefix.clone();
        key.extend(lease_hex(self.lease).into_bytes());
        self.key = key;
        let get_owner = RequestOp {
            request: Some(Request::RequestRange(by_creation(
                &self.prefix,
                SortOrder::Ascend,
            ))),
        };
        let request = TxnRequest {
            compare: vec![create_revision_is(&self.key, 0)],
            success: vec![
                RequestOp {
                    request: Some(Request::RequestPut(PutRequest {
                        key: self.key.clone(),
                        lease: self.lease,
                        ..PutRequest::default()
                    })),
                },
                get_owner.clone(),
            ],
            failure: vec![
                RequestOp {
                    request: Some(Request::RequestRange(RangeRequest {
                        key: self.key.clone(),
                        ..RangeRequest::default()
                    })),
                },
                get_owner,
            ],
        };
        let response = txn(client, request).await?;
        self.revision = response.header.as_ref().map_or(0, |h| h.revision);
        if !response.succeeded {
            let existing = range_kvs(&response, 0);
            let Some(kv) = existing.first() else {
                return Err(RpcError::new(ERR_SESSION_EXPIRED));
            };
            self.revision = kv.create_revision;
        }
        Ok(response)
    }

    /// Releases the lock by deleting our key.
    pub async fn unlock(&mut self, client: &SharedClient) -> Result<(), RpcError> {
        let request = DeleteRangeRequest {
            key: self.key.clone(),
            ..DeleteRangeRequest::default()
        };
        client
            .lock()
            .await
            .call(request, false, |channel, req| async move {
                KvClient::new(channel).delete_range(req).await
            })
            .await?;
        self.key = vec![0];
        self.revision = -1;
        Ok(())
    }

    /// Our key: `<name>/<lease in hex>`.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The header of the response that gave us the lock.
    pub fn header(&self) -> Option<&ResponseHeader> {
        self.header.as_ref()
    }
}

/// The keys a range in a transaction's `index`th response returned.
fn range_kvs(response: &TxnResponse, index: usize) -> &[KeyValue] {
    match response
        .responses
        .get(index)
        .and_then(|r| r.response.as_ref())
    {
        Some(Response::ResponseRange(range)) => &range.kvs,
        _ => &[],
    }
}
