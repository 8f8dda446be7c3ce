//! Membership: who is in the cluster (id, name, peer and client URLs,
//! voter or learner), who was removed for good, and the cluster id.
//!
//! Members change only when raft entries are applied (the bootstrap conf
//! changes, MemberAdd/Remove/Update/Promote, a member's published
//! attributes), so the apply thread is the only writer; it stores each
//! change in the backend in the same transaction as the entry. The peer
//! transport, the Cluster API and Status read the in-memory copy.

pub mod id;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use prost::Message as _;

pub use crate::proto::internal::Member;

pub use crate::storage::schema::{META_MEMBER_PREFIX, META_REMOVED_PREFIX};

pub fn member_key(id: u64) -> Vec<u8> {
    format!("{META_MEMBER_PREFIX}{id:016x}").into_bytes()
}

pub fn removed_key(id: u64) -> Vec<u8> {
    format!("{META_REMOVED_PREFIX}{id:016x}").into_bytes()
}

#[derive(Default, Clone)]
struct State {
    members: BTreeMap<u64, Member>,
    removed: BTreeSet<u64>,
}

pub struct Membership {
    pub local_id: u64,
    pub cluster_id: u64,
    state: RwLock<State>,
}

impl Membership {
    pub fn new(local_id: u64, cluster_id: u64) -> Self {
        Membership {
            local_id,
            cluster_id,
            state: RwLock::new(State::default()),
        }
    }

    /// Loads the members stored in the backend (replacing what is in memory).
    pub fn load(&self, store: &crate::mvcc::Store) -> anyhow::Result<()> {
        let mut state = State::default();
        for (k, v) in store.meta_with_prefix(META_MEMBER_PREFIX.as_bytes())? {
            let m = Member::decode(v.as_slice()).map_err(|e| {
                anyhow::anyhow!(
                    "backend holds a malformed member record {}: {e}",
                    String::from_utf8_lossy(&k)
                )
            })?;
            state.members.insert(m.id, m);
        }
        for (k, _) in store.meta_with_prefix(META_REMOVED_PREFIX.as_bytes())? {
            let hex = &k[META_REMOVED_PREFIX.len()..];
            if let Some(id) = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u64::from_str_radix(h, 16).ok())
            {
                state.removed.insert(id);
            }
        }
        *self.state.write().expect("membership lock") = state;
        Ok(())
    }

    /// Every member, ordered by id.
    pub fn members(&self) -> Vec<Member> {
        let state = self.state.read().expect("membership lock");
        state.members.values().cloned().collect()
    }

    pub fn member(&self, id: u64) -> Option<Member> {
        self.state
            .read()
            .expect("membership lock")
            .members
            .get(&id)
            .cloned()
    }

    pub fn is_removed(&self, id: u64) -> bool {
        self.state
            .read()
            .expect("membership lock")
            .removed
            .contains(&id)
    }

    pub fn removed(&self) -> Vec<u64> {
        let state = self.state.read().expect("membership lock");
        state.removed.iter().copied().collect()
    }

    /// Whether this member is a learner (it may be promoted later).
    pub fn local_is_learner(&self) -> bool {
        self.member(self.local_id)
            .map(|m| m.is_learner)
            .unwrap_or(false)
    }

    /// Voting members (not learners), ordered by id.
    pub fn voting_members(&self) -> Vec<Member> {
        let state = self.state.read().expect("membership lock");
        state
            .members
            .values()
            .filter(|m| !m.is_learner)
            .cloned()
            .collect()
    }

    /// Adds or replaces a member (apply thread).
    pub fn upsert(&self, member: Member) {
        let mut state = self.state.write().expect("membership lock");
        state.members.insert(member.id, member);
    }

    /// Removes a member for good (apply thread).
    pub fn remove(&self, id: u64) {
        let mut state = self.state.write().expect("membership lock");
        state.members.remove(&id);
        state.removed.insert(id);
    }

    /// A member whose peer URLs match `peer_urls` exactly (as sets).
    pub fn find_by_peer_urls(&self, peer_urls: &[String]) -> Option<Member> {
        let mut want = peer_urls.to_vec();
        want.sort();
        self.members().into_iter().find(|m| {
            let mut have = m.peer_urls.clone();
            have.sort();
            have == want
        })
    }
}

/// The members of a brand-new cluster, from --initial-cluster and
/// --initial-cluster-token, with etcd's ids; ordered by id.
pub fn initial_members(initial_cluster: &[(String, String)], token: &str) -> Vec<Member> {
    let mut names: Vec<&str> = Vec::new();
    for (n, _) in initial_cluster {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let mut members: Vec<Member> = names
        .into_iter()
        .map(|name| {
            let peer_urls: Vec<String> = initial_cluster
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, u)| u.clone())
                .collect();
            Member {
                id: id::member_id(&peer_urls, token),
                name: name.to_string(),
                peer_urls,
                client_urls: Vec::new(),
                is_learner: false,
            }
        })
        .collect();
    members.sort_by_key(|m| m.id);
    members
}

/// The cluster id of a brand-new cluster (etcd's genID).
pub fn initial_cluster_id(members: &[Member]) -> u64 {
    let ids: Vec<u64> = members.iter().map(|m| m.id).collect();
    id::cluster_id(&ids)
}

/// The id of a member added at run time (etcd's NewMember: sha1 of its
/// sorted peer URLs and the current time).
pub fn new_member_id(peer_urls: &[String]) -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    id::member_id(peer_urls, &secs.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_member_ids_match_etcd() {
        // ids etcd 3.4 gives `infra1..3` on 127.0.0.1:12380/22380/32380
        // with token etcd-cluster-1 (etcd's Procfile example).
        let ic: Vec<(String, String)> = [
            ("infra1", "http://127.0.0.1:12380"),
            ("infra2", "http://127.0.0.1:22380"),
            ("infra3", "http://127.0.0.1:32380"),
        ]
        .iter()
        .map(|(n, u)| (n.to_string(), u.to_string()))
        .collect();
        let members = initial_members(&ic, "etcd-cluster-1");
        let ids: Vec<String> = members.iter().map(|m| format!("{:x}", m.id)).collect();
        assert_eq!(
            ids,
            ["8211f1d0f64f3269", "91bc3c398fb3c146", "fd422379fda50e48"]
        );
    }
}
