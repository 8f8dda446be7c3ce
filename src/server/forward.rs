//! A follower's side of what only the leader can answer (see `leader`):
//! the request goes to the leader's peer URL, as etcd sends it to the
//! leader's /leases and /members/promote peer endpoints, over one cached
//! connection per leader with this member's peer TLS. The client's
//! permission was checked here, where its identity (token or certificate
//! CN) is known; the leader trusts a member, never a client.

use std::sync::Mutex;
use std::time::Duration;

use tonic::transport::Channel;
use tonic::Status;

use super::{Error, EtcdServer};
use crate::cluster::Member;
use crate::proto::peer::peer_client::PeerClient;
use crate::proto::peer::{
    PeerLeaseRenewRequest, PeerLeaseTimeToLiveRequest, PeerLeaseTimeToLiveResponse,
    PeerMemberPromoteRequest, Route,
};

#[derive(Default)]
pub struct LeaderChannel {
    /// (leader id, its peer URL, the connection)
    cached: Mutex<Option<(u64, String, Channel)>>,
}

impl EtcdServer {
    /// A client of the current leader's peer service, and the route that
    /// names this member as the sender.
    async fn leader_peer(&self) -> Result<(PeerClient<Channel>, Route), Error> {
        let leader = self.wait_leader().await?;
        let route = Route {
            cluster_id: self.cluster_id(),
            from: self.member_id(),
            to: leader,
        };
        let url = self
            .membership()
            .member(leader)
            .and_then(|m| m.peer_urls.first().cloned())
            .ok_or(Error::NoLeader)?;
        let mut cached = self
            .leader_channel
            .cached
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some((id, u, c)) = &*cached {
            if *id == leader && *u == url {
                return Ok((PeerClient::new(c.clone()), route));
            }
        }
        let timeout = self.limits().request_timeout;
        let endpoint =
            crate::peer::transport::PeerEndpoint::new(&url, self.member().transport().tls(), |e| {
                e.connect_timeout(Duration::from_secs(2)).timeout(timeout)
            })
            .map_err(|e| {
                tracing::warn!(error = %format!("{e:#}"), "cannot set up TLS towards the leader");
                Error::NoLeader
            })?;
        // Connected lazily: the first request through it connects.
        let channel = endpoint.connect_lazy();
        *cached = Some((leader, url, channel.clone()));
        Ok((PeerClient::new(channel), route))
    }

    /// Renews lease `id` through the leader; the TTL it granted.
    pub async fn forward_lease_renew(&self, id: i64) -> Result<i64, Status> {
        let (mut leader, route) = self.leader_peer().await?;
        let resp = leader
            .lease_renew(PeerLeaseRenewRequest {
                route: Some(route),
                id,
            })
            .await?;
        Ok(resp.into_inner().ttl)
    }

    /// Lease `id`'s TTL from the leader's lessor. The caller has checked
    /// the client's permission to see the keys.
    pub async fn forward_lease_time_to_live(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<PeerLeaseTimeToLiveResponse, Status> {
        let (mut leader, route) = self.leader_peer().await?;
        let resp = leader
            .lease_time_to_live(PeerLeaseTimeToLiveRequest {
                route: Some(route),
                id,
                keys,
            })
            .await?;
        Ok(resp.into_inner())
    }

    /// Promotes learner `id` through the leader; the leader's member list
    /// after it. The caller has checked that the client is root.
    pub async fn forward_member_promote(&self, id: u64) -> Result<Vec<Member>, Status> {
        let (mut leader, route) = self.leader_peer().await?;
        let resp = leader
            .member_promote(PeerMemberPromoteRequest {
                route: Some(route),
                id,
            })
            .await?;
        Ok(resp.into_inner().members)
    }
}
