//! The Lease service (etcd's v3rpc/lease.go): grant and revoke go through
//! raft; keep-alive renews on the leader; time-to-live and the list read the
//! lessor after a linearizable read.

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use crate::proto::etcdserverpb::{
    lease_server::Lease, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseLeasesRequest, LeaseLeasesResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse,
};
use crate::server::EtcdServer;

pub struct LeaseService {
    server: Arc<EtcdServer>,
}

impl LeaseService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        LeaseService { server }
    }
}

#[tonic::async_trait]
impl Lease for LeaseService {
    async fn lease_grant(
        &self,
        req: Request<LeaseGrantRequest>,
    ) -> Result<Response<LeaseGrantResponse>, Status> {
        self.server
            .check_quota(crate::alarm::cost_lease_grant())
            .await?;
        let caller = super::auth::caller(&self.server, &req).await?;
        let mut r = req.into_inner();
        if r.id == 0 {
            r.id = self.server.next_lease_id();
        }
        let mut resp = self
            .server
            .propose_as(r, &super::auth::or_empty(&caller))
            .await?;
        let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        resp.header = Some(self.server.header(rev));
        Ok(Response::new(resp))
    }

    async fn lease_revoke(
        &self,
        req: Request<LeaseRevokeRequest>,
    ) -> Result<Response<LeaseRevokeResponse>, Status> {
        // every key on the lease must be writable (checked when applied)
        let caller = super::auth::caller(&self.server, &req).await?;
        let mut resp = self
            .server
            .propose_as(req.into_inner(), &super::auth::or_empty(&caller))
            .await?;
        let rev = resp.header.as_ref().map(|h| h.revision).unwrap_or(0);
        resp.header = Some(self.server.header(rev));
        Ok(Response::new(resp))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        req: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<Self::LeaseKeepAliveStream>, Status> {
        self.server.refuse_learner()?;
        let mut requests = req.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let server = self.server.clone();
        tokio::spawn(async move {
            loop {
                let r = match requests.message().await {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    // one that does not decode ends the stream with its
                    // status (Internal), as etcd's
                    Err(undecodable) => {
                        let _ = tx.send(Err(undecodable)).await;
                        return;
                    }
                };
                let renewed = if server.is_leader() {
                    server.renew_lease_here(r.id).await.map_err(Status::from)
                } else {
                    server.forward_lease_renew(r.id).await
                };
                let ttl = match renewed {
                    Ok(ttl) => ttl,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let resp =
                    server
                        .current_rev()
                        .map_err(Status::from)
                        .map(|rev| LeaseKeepAliveResponse {
                            header: Some(server.header(rev)),
                            id: r.id,
                            ttl,
                        });
                if tx.send(resp).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn lease_time_to_live(
        &self,
        req: Request<LeaseTimeToLiveRequest>,
    ) -> Result<Response<LeaseTimeToLiveResponse>, Status> {
        // etcd's checkLeaseTimeToLive: listing the keys needs read on each
        let caller = if req.get_ref().keys {
            let caller = super::auth::caller(&self.server, &req).await?;
            let lease_keys = |id: i64| {
                self.server
                    .lessor()
                    .time_to_live(id)
                    .map(|t| t.keys)
                    .unwrap_or_default()
            };
            self.server
                .auth()
                .check_lease_read(caller.as_ref(), req.get_ref().id, &lease_keys)?;
            caller
        } else {
            None
        };
        let r = req.into_inner();
        self.server.refuse_learner()?;
        // Only the leader's lease clocks run. A follower asks it over the
        // peer port, having checked the caller here (etcd does the same):
        // a caller known only by its certificate CN has no token the
        // leader could check again.
        let answer = if self.server.is_leader() {
            self.server.lease_time_to_live_here(r.id, r.keys).await?
        } else {
            self.server.forward_lease_time_to_live(r.id, r.keys).await?
        };
        let resp = LeaseTimeToLiveResponse {
            header: Some(self.server.header(self.server.current_rev()?)),
            id: r.id,
            ttl: answer.ttl,
            granted_ttl: answer.granted_ttl,
            keys: answer.keys,
        };
        super::auth::check_stale(&self.server, &caller)?;
        Ok(Response::new(resp))
    }

    async fn lease_leases(
        &self,
        _: Request<LeaseLeasesRequest>,
    ) -> Result<Response<LeaseLeasesResponse>, Status> {
        self.server.linearizable_read().await?;
        let leases = self
            .server
            .lessor()
            .ids()
            .into_iter()
            .map(|id| LeaseStatus { id })
            .collect();
        Ok(Response::new(LeaseLeasesResponse {
            header: Some(self.server.header(self.server.current_rev()?)),
            leases,
        }))
    }
}
