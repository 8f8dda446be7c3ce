//! etcd's Cluster service: MemberList, MemberAdd, MemberRemove,
//! MemberUpdate and MemberPromote, with etcd's checks and error texts.
//!
//! Adding, removing and promoting go through raft as conf changes; the
//! answer is given once the change is applied here, with the members as
//! this member then knows them. With --strict-reconfig-check (the default)
//! a change that would leave the cluster without a quorum of started,
//! connected members is refused, as etcd refuses it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use raft::eraftpb::{ConfChange, ConfChangeType};
use tonic::{Request, Response, Status};

use crate::cluster::{self, Member};
use crate::proto::etcdserverpb::cluster_server::Cluster;
use crate::proto::etcdserverpb::{
    self as pb, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse,
    MemberPromoteRequest, MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse,
    MemberUpdateRequest, MemberUpdateResponse,
};
use crate::proto::internal::MemberPeerUrls;
use crate::server::{Error, EtcdServer};

/// etcd's HealthInterval: members must have been connected this long to
/// count as healthy for a reconfiguration.
const HEALTH_INTERVAL: Duration = Duration::from_secs(5);
/// etcd's maxLearners.
const MAX_LEARNERS: usize = 1;

pub struct ClusterService {
    server: Arc<EtcdServer>,
}

impl ClusterService {
    pub fn new(server: Arc<EtcdServer>) -> Self {
        ClusterService { server }
    }

    /// etcd's cluster header carries no revision.
    fn header(&self) -> Option<pb::ResponseHeader> {
        Some(self.server.header(0))
    }

    fn members(&self) -> Vec<pb::Member> {
        self.server
            .membership()
            .members()
            .iter()
            .map(to_pb)
            .collect()
    }

    /// Whether every other voter has been connected since `HEALTH_INTERVAL`
    /// ago (etcd's isConnectedFullySince).
    fn connected_since(&self, id: u64, since: Instant) -> bool {
        id == self.server.member_id()
            || self
                .server
                .member()
                .transport()
                .active_since(id)
                .is_some_and(|t| t <= since)
    }

    fn check_add_voter(&self) -> Result<(), Error> {
        if !self.server.strict_reconfig_check() {
            return Ok(());
        }
        let voters = self.server.membership().voting_members();
        // etcd's IsReadyToAddVotingMember
        let nmembers = voters.len() + 1;
        let nstarted = voters.iter().filter(|m| !m.name.is_empty()).count();
        if !(nstarted == 1 && nmembers == 2) && nstarted < nmembers / 2 + 1 {
            return Err(Error::NotEnoughStartedMembers);
        }
        let since = Instant::now()
            .checked_sub(HEALTH_INTERVAL)
            .unwrap_or_else(Instant::now);
        if !voters.iter().all(|m| self.connected_since(m.id, since)) {
            return Err(Error::Unhealthy);
        }
        Ok(())
    }

    fn check_remove(&self, id: u64) -> Result<(), Error> {
        let Some(target) = self.server.membership().member(id) else {
            return Err(Error::MemberNotFound);
        };
        if !self.server.strict_reconfig_check() || target.is_learner {
            return Ok(());
        }
        let voters = self.server.membership().voting_members();
        // etcd's IsReadyToRemoveVotingMember
        let nmembers = voters.len().saturating_sub(1);
        let nstarted = voters
            .iter()
            .filter(|m| m.id != id && !m.name.is_empty())
            .count();
        if nstarted < nmembers / 2 + 1 {
            return Err(Error::NotEnoughStartedMembers);
        }
        // A member that is down is safe to remove: it is not part of the
        // active quorum.
        if id != self.server.member_id()
            && self.server.member().transport().active_since(id).is_none()
        {
            return Ok(());
        }
        let since = Instant::now()
            .checked_sub(HEALTH_INTERVAL)
            .unwrap_or_else(Instant::now);
        let active = voters
            .iter()
            .filter(|m| self.connected_since(m.id, since))
            .count();
        if active.saturating_sub(1) < 1 + voters.len().saturating_sub(1) / 2 {
            return Err(Error::NotEnoughStartedMembers);
        }
        Ok(())
    }
}

fn to_pb(m: &Member) -> pb::Member {
    pb::Member {
        id: m.id,
        name: m.name.clone(),
        peer_ur_ls: m.peer_urls.clone(),
        client_ur_ls: m.client_urls.clone(),
        is_learner: m.is_learner,
    }
}

/// etcd's types.NewURLs: every URL parses, has a scheme of http/https/unix
/// and a host with a port.
fn parse_peer_urls(urls: &[String]) -> Result<Vec<String>, Error> {
    if urls.is_empty() {
        return Err(Error::MemberBadUrls);
    }
    let mut out = Vec::new();
    for u in urls {
        let parsed = url::Url::parse(u).map_err(|_| Error::MemberBadUrls)?;
        let ok = matches!(parsed.scheme(), "http" | "https" | "unix" | "unixs")
            && parsed.host_str().is_some()
            && parsed.port().is_some()
            && (parsed.path().is_empty() || parsed.path() == "/");
        if !ok {
            return Err(Error::MemberBadUrls);
        }
        out.push(crate::config::url_to_string(&parsed));
    }
    out.sort();
    Ok(out)
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(
        &self,
        req: Request<MemberAddRequest>,
    ) -> Result<Response<MemberAddResponse>, Status> {
        super::auth::require_root(&self.server, &req).await?;
        let r = req.into_inner();
        self.server.refuse_learner()?;
        let peer_urls = parse_peer_urls(&r.peer_ur_ls)?;
        let members = self.server.membership().members();
        // etcd's ValidateConfigurationChange order: the id (sha1 of the URLs
        // and the second, so a repeated add within a second collides), then
        // the URLs
        let id = cluster::new_member_id(&peer_urls);
        if members.iter().any(|m| m.id == id) {
            return Err(Error::MemberExists.into());
        }
        if members
            .iter()
            .any(|m| m.peer_urls.iter().any(|p| peer_urls.contains(p)))
        {
            return Err(Error::PeerUrlExists.into());
        }
        if r.is_learner {
            if members.iter().filter(|m| m.is_learner).count() >= MAX_LEARNERS {
                return Err(Error::TooManyLearners.into());
            }
        } else {
            self.check_add_voter()?;
        }
        let member = Member {
            id,
            name: String::new(),
            peer_urls,
            client_urls: Vec::new(),
            is_learner: r.is_learner,
        };
        let cc = ConfChange {
            change_type: if r.is_learner {
                ConfChangeType::AddLearnerNode
            } else {
                ConfChangeType::AddNode
            },
            node_id: member.id,
            context: prost::Message::encode_to_vec(&member).into(),
            ..Default::default()
        };
        self.server.propose_conf_change(cc).await?;
        Ok(Response::new(MemberAddResponse {
            header: self.header(),
            member: Some(to_pb(&member)),
            members: self.members(),
        }))
    }

    async fn member_remove(
        &self,
        req: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        super::auth::require_root(&self.server, &req).await?;
        let id = req.into_inner().id;
        self.server.refuse_learner()?;
        self.check_remove(id)?;
        let cc = ConfChange {
            change_type: ConfChangeType::RemoveNode,
            node_id: id,
            ..Default::default()
        };
        self.server.propose_conf_change(cc).await?;
        Ok(Response::new(MemberRemoveResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_update(
        &self,
        req: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        super::auth::require_root(&self.server, &req).await?;
        let r = req.into_inner();
        self.server.refuse_learner()?;
        // etcd answers an unknown member first (it never checks the URLs;
        // we refuse bad ones rather than store them)
        if self.server.membership().member(r.id).is_none() {
            return Err(Error::MemberNotFound.into());
        }
        let peer_urls = parse_peer_urls(&r.peer_ur_ls)?;
        self.server
            .propose(MemberPeerUrls {
                id: r.id,
                peer_urls,
            })
            .await?;
        Ok(Response::new(MemberUpdateResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_list(
        &self,
        req: Request<MemberListRequest>,
    ) -> Result<Response<MemberListResponse>, Status> {
        if req.into_inner().linearizable {
            self.server.linearizable_read().await?;
        }
        Ok(Response::new(MemberListResponse {
            header: self.header(),
            members: self.members(),
        }))
    }

    async fn member_promote(
        &self,
        req: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        super::auth::require_root(&self.server, &req).await?;
        let r = req.into_inner();
        self.server.refuse_learner()?;
        let members = if self.server.is_leader() {
            self.server.promote_member_here(r.id).await?;
            self.members()
        } else {
            // Only the leader knows how far the learner's log is. The
            // caller is root (checked here, where its token or certificate
            // CN is known); the leader trusts this member on the peer port,
            // as etcd's /members/promote. Its list: this member may not
            // have applied the change yet.
            self.server
                .forward_member_promote(r.id)
                .await?
                .iter()
                .map(to_pb)
                .collect()
        };
        Ok(Response::new(MemberPromoteResponse {
            header: self.header(),
            members,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked_like_etcd() {
        assert_eq!(
            parse_peer_urls(&["http://127.0.0.1:2380".into()]).unwrap(),
            ["http://127.0.0.1:2380"]
        );
        for bad in [
            "127.0.0.1:2380",
            "http://127.0.0.1",
            "ftp://a:1",
            "http://a:1/path",
        ] {
            assert_eq!(
                parse_peer_urls(&[bad.into()]),
                Err(Error::MemberBadUrls),
                "{bad}"
            );
        }
        assert_eq!(parse_peer_urls(&[]), Err(Error::MemberBadUrls));
    }
}
