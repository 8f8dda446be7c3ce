//! The membership a backend carries, rewritten for a new cluster: the old
//! members, removed ids, conf state and this member's ids go, the new
//! cluster's members, ids and conf state (every member votes) come in.
//! `snapshot restore` and `backup` both turn an old member's data into a
//! member of a cluster that never existed before, so it cannot talk to, or
//! be mistaken for, the cluster it came from.

use heed::types::Bytes;
use heed::{Database, RwTxn};
use prost::Message as _;
use protobuf::Message as _;

use super::meta;
use crate::cluster::{self, Member};
use crate::storage::snapshot::META_CONF_STATE;

/// Who the rewritten member is and which cluster it belongs to.
#[derive(Debug, Clone)]
pub struct NewIdentity {
    pub member_id: u64,
    pub cluster_id: u64,
    /// Every member of the new cluster (all voters).
    pub members: Vec<Member>,
}

/// Replaces the membership and identity in the backend's `meta` table, in
/// the caller's transaction.
pub fn rewrite(
    txn: &mut RwTxn<'_>,
    meta_table: Database<'_, Bytes, Bytes>,
    identity: &NewIdentity,
) -> anyhow::Result<()> {
    let mut stale: Vec<Vec<u8>> = Vec::new();
    for prefix in [cluster::META_MEMBER_PREFIX, cluster::META_REMOVED_PREFIX] {
        for item in meta_table.prefix_iter(txn, prefix.as_bytes())? {
            let (k, _) = item?;
            stale.push(k.to_vec());
        }
    }
    for k in &stale {
        meta_table.delete(txn, k)?;
    }
    for m in &identity.members {
        meta_table.put(txn, &cluster::member_key(m.id), &m.encode_to_vec())?;
    }
    meta_table.put(txn, meta::MEMBER_ID, &identity.member_id.to_be_bytes())?;
    meta_table.put(txn, meta::CLUSTER_ID, &identity.cluster_id.to_be_bytes())?;
    let conf_state = crate::raft::node::bootstrap_conf_state(&identity.members);
    meta_table.put(txn, META_CONF_STATE, &conf_state.write_to_bytes()?)?;
    Ok(())
}
