//! Corruption checks (etcd's corrupt.go): members that applied the same log
//! must hold the same keyspace, so their HashKV at one revision must agree.
//!
//! - `--experimental-initial-corrupt-check`: before a restarting member
//!   serves anything, it compares its own HashKV with every other member's
//!   at its revision and refuses to start on a mismatch at the same compact
//!   revision ("found data inconsistency with peers").
//! - `--experimental-corrupt-check-time`: the leader periodically compares
//!   its HashKV with the followers' and raises the CORRUPT alarm (for member
//!   0: which side is damaged is unknown, as etcd 3.5 says) on a mismatch.
//!
//! Other members are asked over the peer port (`Peer.HashKV`), as etcd asks
//! over the peer URLs (`/members/hashkv`) rather than client URLs: the
//! initial check runs before this member serves clients, peer URLs are the
//! addresses members are sure to reach each other on, and peer requests
//! carry the cluster id, so a member of another cluster is never compared.

use std::sync::{Arc, Weak};
use std::time::Duration;

use super::EtcdServer;
use crate::cluster::Membership;
use crate::gofmt::format_duration;
use crate::mvcc::store::KvHash;
use crate::mvcc::Store;
use crate::proto::etcdserverpb::AlarmType;
use crate::proto::peer::peer_client::PeerClient;
use crate::proto::peer::{PeerHashKvRequest, PeerHashKvResponse, Route};

/// Why a member's hash could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerHashError {
    /// The member has not reached the revision yet.
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    /// The member compacted past the revision.
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("{0}")]
    Other(String),
}

/// One other member's answer.
#[derive(Debug, Clone)]
pub struct PeerHash {
    pub id: u64,
    pub urls: Vec<String>,
    pub result: Result<PeerHashKvResponse, PeerHashError>,
}

/// This member's hash at its current revision and that revision.
async fn local_hash(store: &Arc<Store>) -> Result<(KvHash, i64), String> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let view = store.read().map_err(|e| e.to_string())?;
        let hash = view.hash_kv(0).map_err(|e| e.to_string())?;
        Ok((hash, view.current_rev()))
    })
    .await
    .map_err(|e| format!("hash task failed: {e}"))?
}

/// Every other member's HashKV at `rev`, trying each of its peer URLs until
/// one answers (etcd's getPeerHashKVs).
pub async fn peer_hashes(
    membership: &Membership,
    peer_tls: Option<&crate::tls::ReloadableTls>,
    rev: i64,
    timeout: Duration,
) -> Vec<PeerHash> {
    let local = membership.local_id;
    let mut out = Vec::new();
    for member in membership.members() {
        if member.id == local || member.peer_urls.is_empty() {
            continue;
        }
        let route = Route {
            cluster_id: membership.cluster_id,
            from: local,
            to: member.id,
        };
        let mut last = PeerHashError::Other("no peer URL answered".into());
        let mut answer = None;
        for url in &member.peer_urls {
            match ask(url, peer_tls, route, rev, timeout).await {
                Ok(r) => {
                    answer = Some(r);
                    break;
                }
                Err(e) => {
                    tracing::warn!(
                        "local-member-id" = format!("{local:x}"),
                        "requested-revision" = rev,
                        "remote-peer-endpoint" = url.as_str(),
                        error = %e,
                        "failed hash kv request"
                    );
                    last = e;
                }
            }
        }
        out.push(PeerHash {
            id: member.id,
            urls: member.peer_urls.clone(),
            result: answer.ok_or(last),
        });
    }
    out
}

async fn ask(
    url: &str,
    peer_tls: Option<&crate::tls::ReloadableTls>,
    route: Route,
    rev: i64,
    timeout: Duration,
) -> Result<PeerHashKvResponse, PeerHashError> {
    let other = |e: String| PeerHashError::Other(e);
    let channel = crate::peer::transport::PeerEndpoint::new(url, peer_tls, |e| {
        e.connect_timeout(timeout).timeout(timeout)
    })
    .map_err(|e| other(format!("{e:#}")))?
    .connect()
    .await
    .map_err(|e| other(format!("{e:#}")))?;
    let request = PeerHashKvRequest {
        route: Some(route),
        revision: rev,
    };
    match PeerClient::new(channel).hash_kv(request).await {
        Ok(r) => Ok(r.into_inner()),
        Err(s) if s.message() == crate::mvcc::Error::FutureRev.to_string() => {
            Err(PeerHashError::FutureRev)
        }
        Err(s) if s.message() == crate::mvcc::Error::Compacted.to_string() => {
            Err(PeerHashError::Compacted)
        }
        Err(s) => Err(other(s.message().to_string())),
    }
}

/// etcd's InitialCheck: refuse to start when another member's hash at this
/// member's revision differs at the same compact revision.
pub async fn initial_check(
    store: &Arc<Store>,
    membership: &Membership,
    peer_tls: Option<&crate::tls::ReloadableTls>,
    timeout: Duration,
) -> anyhow::Result<()> {
    let local = format!("{:x}", membership.local_id);
    tracing::info!(
        "local-member-id" = local.as_str(),
        timeout = format_duration(timeout),
        "starting initial corruption check"
    );
    let (h, rev) = local_hash(store)
        .await
        .map_err(|e| anyhow::anyhow!("{local} failed to fetch hash ({e})"))?;
    let mut mismatch = 0;
    for p in peer_hashes(membership, peer_tls, rev, timeout).await {
        let remote = format!("{:x}", p.id);
        let endpoints = p.urls.join(",");
        match &p.result {
            Ok(r) if r.hash != h.hash => {
                let msg = if r.compact_revision == h.compact_revision {
                    mismatch += 1;
                    "found different hash values from remote peer"
                } else {
                    "found different compact revision values from remote peer"
                };
                tracing::warn!(
                    "local-member-id" = local.as_str(),
                    "local-member-revision" = rev,
                    "local-member-compact-revision" = h.compact_revision,
                    "local-member-hash" = h.hash,
                    "remote-peer-id" = remote.as_str(),
                    "remote-peer-endpoints" = endpoints.as_str(),
                    "remote-peer-revision" = r.revision,
                    "remote-peer-compact-revision" = r.compact_revision,
                    "remote-peer-hash" = r.hash,
                    "{msg}"
                );
            }
            Ok(_) => {}
            Err(e @ (PeerHashError::FutureRev | PeerHashError::Compacted)) => {
                let msg = if *e == PeerHashError::FutureRev {
                    "cannot fetch hash from slow remote peer"
                } else {
                    "cannot fetch hash from remote peer; local member is behind"
                };
                tracing::warn!(
                    "local-member-id" = local.as_str(),
                    "local-member-revision" = rev,
                    "local-member-compact-revision" = h.compact_revision,
                    "local-member-hash" = h.hash,
                    "remote-peer-id" = remote.as_str(),
                    "remote-peer-endpoints" = endpoints.as_str(),
                    error = %e,
                    "{msg}"
                );
            }
            // Unreachable members were reported by `peer_hashes`.
            Err(PeerHashError::Other(_)) => {}
        }
    }
    if mismatch > 0 {
        anyhow::bail!("{local} found data inconsistency with peers");
    }
    tracing::info!(
        "local-member-id" = local.as_str(),
        "initial corruption checking passed; no corruption"
    );
    Ok(())
}

/// Starts the leader's periodic check every `every` (nothing for zero). It
/// holds the server weakly and ends when the server is gone.
pub fn spawn_periodic(server: &Arc<EtcdServer>, every: Duration) {
    if every.is_zero() {
        return;
    }
    tracing::info!(
        "local-member-id" = format!("{:x}", server.member_id()),
        interval = format_duration(every),
        "enabled corruption checking"
    );
    let server = Arc::downgrade(server);
    tokio::spawn(monitor(server, every));
}

async fn monitor(server: Weak<EtcdServer>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(server) = server.upgrade() else {
            return;
        };
        if !server.is_leader() {
            continue;
        }
        if let Err(e) = periodic_check(&server).await {
            tracing::warn!(error = %e, "failed to check hash KV");
        }
    }
}

/// etcd's PeriodicCheck: the leader hashes, asks the followers for their
/// hash at that revision, waits for a linearizable read point, hashes
/// again, and raises the CORRUPT alarm when its own hash changed without a
/// new revision, a follower is ahead of it, or a follower at the same
/// compact revision disagrees.
async fn periodic_check(server: &Arc<EtcdServer>) -> Result<(), String> {
    let (h, rev) = local_hash(server.store()).await?;
    let peers = peer_hashes(
        server.membership(),
        server.member().transport().tls(),
        rev,
        server.limits().request_timeout,
    )
    .await;
    server
        .linearizable_read()
        .await
        .map_err(|e| e.to_string())?;
    let (h2, rev2) = local_hash(server.store()).await?;

    let mut alarmed = false;
    let mut mismatch = || {
        if !alarmed {
            alarmed = true;
            raise_corrupt_alarm(server);
        }
    };
    if h2.hash != h.hash && rev2 == rev && h.compact_revision == h2.compact_revision {
        tracing::warn!(
            "revision-1" = rev,
            "compact-revision-1" = h.compact_revision,
            "hash-1" = h.hash,
            "revision-2" = rev2,
            "compact-revision-2" = h2.compact_revision,
            "hash-2" = h2.hash,
            "found hash mismatch"
        );
        mismatch();
    }
    let mut checked = 0;
    for p in &peers {
        let Ok(r) = &p.result else { continue };
        checked += 1;
        let follower = format!("{:x}", p.id);
        if r.revision > rev2 {
            tracing::warn!(
                "leader-revision" = rev2,
                "follower-revision" = r.revision,
                "follower-peer-id" = follower.as_str(),
                "revision from follower must be less than or equal to leader's"
            );
            mismatch();
        }
        if r.compact_revision > h2.compact_revision {
            tracing::warn!(
                "leader-compact-revision" = h2.compact_revision,
                "follower-compact-revision" = r.compact_revision,
                "follower-peer-id" = follower.as_str(),
                "compact revision from follower must be less than or equal to leader's"
            );
            mismatch();
        }
        if r.compact_revision == h.compact_revision && r.hash != h.hash {
            tracing::warn!(
                "leader-compact-revision" = h2.compact_revision,
                "leader-hash" = h.hash,
                "follower-compact-revision" = r.compact_revision,
                "follower-hash" = r.hash,
                "follower-peer-id" = follower.as_str(),
                "same compact revision then hashes must match"
            );
            mismatch();
        }
    }
    tracing::info!(
        "number-of-peers-checked" = checked,
        "finished peer corruption check"
    );
    Ok(())
}

/// Raises CORRUPT through raft, in the background as etcd does. The member
/// is 0: the leader cannot tell which side is damaged (etcd 3.5.7+).
fn raise_corrupt_alarm(server: &Arc<EtcdServer>) {
    let server = server.clone();
    tokio::spawn(async move {
        if let Err(e) = server.activate_alarm(0, AlarmType::Corrupt).await {
            tracing::warn!(error = %e, "failed to raise the CORRUPT alarm");
        }
    });
}
