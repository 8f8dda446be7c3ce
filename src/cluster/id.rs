//! Member and cluster ids derived as etcd derives them, so a cluster
//! bootstrapped from the same flags gets the same ids as etcd would give it,
//! and request ids unique across restarts (etcd's `idutil`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

fn sha1_prefix(bytes: &[u8]) -> u64 {
    let digest = sha1_smol::Sha1::from(bytes).digest().bytes();
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"))
}

/// etcd's `computeMemberId`: sha1 of the sorted peer URLs and the cluster
/// token.
pub fn member_id(peer_urls: &[String], token: &str) -> u64 {
    let mut urls = peer_urls.to_vec();
    urls.sort();
    let mut b = urls.concat().into_bytes();
    b.extend_from_slice(token.as_bytes());
    sha1_prefix(&b)
}

/// etcd's `RaftCluster.genID`: sha1 of the sorted member ids.
pub fn cluster_id(member_ids: &[u64]) -> u64 {
    let mut ids = member_ids.to_vec();
    ids.sort_unstable();
    let b: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
    sha1_prefix(&b)
}

/// Request ids: member id's low 16 bits, then a millisecond timestamp, then
/// a counter; unique per member across restarts.
pub struct RequestIds {
    next: AtomicU64,
}

impl RequestIds {
    pub fn new(member_id: u64) -> Self {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let prefix = (member_id & 0xffff) << 48;
        let suffix = (ms & 0xff_ffff_ffff) << 8;
        RequestIds {
            next: AtomicU64::new(prefix | suffix),
        }
    }

    pub fn next(&self) -> u64 {
        // wraps like etcd's counter (Go's unsigned addition)
        self.next.fetch_add(1, Ordering::Relaxed).wrapping_add(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_member_matches_etcd() {
        // `etcd` run bare: member 8e9e05c52164694d in cluster cdf818194e3a8c32
        let id = member_id(&["http://localhost:2380".to_string()], "etcd-cluster");
        assert_eq!(format!("{id:x}"), "8e9e05c52164694d");
        assert_eq!(format!("{:x}", cluster_id(&[id])), "cdf818194e3a8c32");
    }
}
