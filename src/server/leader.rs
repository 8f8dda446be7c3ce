//! What only the leader can answer: lease renewals and time-to-live (only
//! the leader's lease clocks run) and learner promotion (only the leader
//! knows how far a learner's log is). The client API calls these when this
//! member leads; the peer service calls them when a follower forwards a
//! client's request (see `forward`).

use raft::eraftpb::{ConfChange, ConfChangeType};

use super::{Error, EtcdServer};
use crate::proto::peer::PeerLeaseTimeToLiveResponse;

/// A learner is ready for promotion once it has this share of the leader's
/// log (etcd's readyPercent).
const READY_PERCENT: f64 = 0.9;

impl EtcdServer {
    /// Renews lease `id` on this leader; 0 for an unknown or expired lease,
    /// as etcd answers. Leadership is confirmed first (etcd's
    /// ensureLeadership, since 3.5.8): a leader cut off from the others, or
    /// whose raft thread is stuck on its disk, still believes it leads,
    /// while the others may have elected a new leader that lets the lease
    /// expire and hands its lock to someone else.
    pub async fn renew_lease_here(&self, id: i64) -> Result<i64, Error> {
        if !self.ensure_leadership().await {
            return Err(Error::NotPrimary);
        }
        Ok(self.lessor().renew(id).unwrap_or(0))
    }

    /// Whether this member still leads, confirmed by a quorum (a
    /// ReadIndex round, bounded by the request timeout).
    pub async fn ensure_leadership(&self) -> bool {
        self.linearizable_read().await.is_ok() && self.is_leader()
    }

    /// Lease `id`'s remaining and granted TTL (and its keys when `keys`)
    /// from this leader's lessor; TTL -1 for an unknown lease, as etcd.
    pub async fn lease_time_to_live_here(
        &self,
        id: i64,
        keys: bool,
    ) -> Result<PeerLeaseTimeToLiveResponse, Error> {
        self.linearizable_read().await?;
        Ok(match self.lessor().time_to_live(id) {
            Ok(t) => PeerLeaseTimeToLiveResponse {
                ttl: t.remaining,
                granted_ttl: t.granted_ttl,
                keys: if keys { t.keys } else { Vec::new() },
            },
            Err(_) => PeerLeaseTimeToLiveResponse {
                ttl: -1,
                ..Default::default()
            },
        })
    }

    /// Promotes learner `id` to voter once its log has caught up (etcd's
    /// mayPromoteMember and PromoteMember on the leader).
    pub async fn promote_member_here(&self, id: u64) -> Result<(), Error> {
        if !self.is_leader() {
            return Err(Error::NotLeader);
        }
        let Some(member) = self.membership().member(id) else {
            return Err(Error::MemberNotFound);
        };
        if !member.is_learner {
            return Err(Error::MemberNotLearner);
        }
        let progress = self.progress().await?;
        let leader_match = progress
            .matched
            .get(&self.member_id())
            .copied()
            .unwrap_or(0);
        let learner_match = progress.matched.get(&id).copied().unwrap_or(0);
        if (learner_match as f64) < (leader_match as f64) * READY_PERCENT || learner_match == 0 {
            return Err(Error::LearnerNotReady);
        }
        if self.options.strict_reconfig_check {
            // etcd's IsReadyToPromoteMember
            let voters = self.membership().voting_members();
            let nmembers = voters.len() + 1;
            let nstarted = voters.iter().filter(|m| !m.name.is_empty()).count() + 1;
            if nstarted < nmembers / 2 + 1 {
                return Err(Error::NotEnoughStartedMembers);
            }
        }
        let promoted = crate::cluster::Member {
            is_learner: false,
            ..member
        };
        let cc = ConfChange {
            change_type: ConfChangeType::AddNode,
            node_id: id,
            context: prost::Message::encode_to_vec(&promoted).into(),
            ..Default::default()
        };
        self.propose_conf_change(cc).await?;
        Ok(())
    }
}
