//! The Lock service (etcd's v3lock server with concurrency.Mutex): Lock
//! puts the caller's key `<name>/<lease hex>` on its lease and returns once
//! every older key under the name is gone; Unlock deletes the key.
//!
//! Unlike etcd 3.4, a lock is never granted to an expired lease: after the
//! wait the key and the lease are checked (etcd 3.5 checks the key only).

use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::concurrency::{self as cc, Standing, Turn, WithdrawOnDrop};
use super::validate;
use crate::proto::etcdserverpb::{DeleteRangeRequest, TxnRequest};
use crate::proto::v3lockpb::{
    lock_server::Lock, LockRequest, LockResponse, UnlockRequest, UnlockResponse,
};
use crate::server::EtcdServer;

/// concurrency.ErrSessionExpired (etcd 3.5's text).
const SESSION_EXPIRED: &str = "mutex: session is expired";

pub struct LockService {
    server: Arc<EtcdServer>,
}

impl LockService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        LockService { server }
    }

    async fn acquire(
        &self,
        r: LockRequest,
        who: crate::auth::AuthInfo,
    ) -> Result<LockResponse, Status> {
        let server = &self.server;
        let mut prefix = r.name;
        prefix.push(b'/');
        // as the caller's own txn would be checked in etcd
        let (lease, key) = cc::checked_session(server, &who, &prefix, r.lease).await?;

        // Queue up (or find our key from an earlier call on the same
        // lease) and learn the current holder, in one request.
        let resp = cc::txn(
            server,
            TxnRequest {
                compare: vec![cc::create_revision_is(&key, 0)],
                success: vec![
                    cc::put_op(&key, Vec::new(), lease),
                    cc::first_created_op(&prefix),
                ],
                failure: vec![cc::get_op(&key), cc::first_created_op(&prefix)],
            },
        )
        .await?;
        let my_rev = if resp.succeeded {
            resp.header.as_ref().map(|h| h.revision).unwrap_or(0)
        } else {
            match cc::range_kvs(&resp, 0).first() {
                Some(kv) => kv.create_revision,
                // deleted between compare and read cannot happen in one txn
                None => return Err(cc::go_error(SESSION_EXPIRED)),
            }
        };
        let guard = WithdrawOnDrop::new(server.clone(), key.clone(), my_rev);
        let owner_rev = cc::range_kvs(&resp, 1).first().map(|kv| kv.create_revision);

        let standing = if owner_rev.is_none_or(|rev| rev == my_rev) {
            // Ours at once, unless the lease expired just before the put
            // (its revocation not applied yet).
            if server.lessor().alive(lease) {
                Standing::Held(resp.header.unwrap_or_default())
            } else {
                Standing::LeaseExpired
            }
        } else if cc::wait_turn(server, &prefix, &key, my_rev).await? == Turn::Lost {
            Standing::KeyLost
        } else {
            cc::standing(server, &key, my_rev, lease).await?
        };
        match standing {
            Standing::Held(header) => {
                guard.disarm();
                Ok(LockResponse {
                    header: Some(header),
                    key,
                })
            }
            Standing::KeyLost => {
                guard.disarm();
                Err(cc::go_error(SESSION_EXPIRED))
            }
            Standing::LeaseExpired => {
                cc::withdraw(server, &key, my_rev).await?;
                guard.disarm();
                Err(cc::go_error(SESSION_EXPIRED))
            }
        }
    }

    /// A plain delete of the key, whoever holds it (as etcd).
    async fn release(
        &self,
        r: UnlockRequest,
        caller: Option<crate::auth::AuthInfo>,
    ) -> Result<UnlockResponse, Status> {
        let delete = DeleteRangeRequest {
            key: r.key,
            ..Default::default()
        };
        validate::delete_range(&delete)?;
        let resp = self
            .server
            .propose_as(delete, &super::auth::or_empty(&caller))
            .await?;
        let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        Ok(UnlockResponse {
            header: Some(self.server.header(rev)),
        })
    }
}

#[tonic::async_trait]
impl Lock for LockService {
    async fn lock(&self, req: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        let caller = super::auth::caller(&self.server, &req)
            .await
            .map_err(cc::as_go_error)?;
        self.acquire(req.into_inner(), super::auth::or_empty(&caller))
            .await
            .map(Response::new)
            .map_err(cc::as_go_error)
    }

    async fn unlock(
        &self,
        req: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        let caller = super::auth::caller(&self.server, &req)
            .await
            .map_err(cc::as_go_error)?;
        self.release(req.into_inner(), caller)
            .await
            .map(Response::new)
            .map_err(cc::as_go_error)
    }
}
