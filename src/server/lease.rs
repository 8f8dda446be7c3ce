//! The leader's side of leases: keep the lessor's clocks running while this
//! member leads, propose the revocation of expired leases, and checkpoint
//! remaining TTLs through raft.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::EtcdServer;
use crate::proto::etcdserverpb::LeaseRevokeRequest;
use crate::proto::internal::LeaseCheckpointRequest;

/// How often expiry is checked (etcd: 500 ms).
const EXPIRY_TICK: Duration = Duration::from_millis(500);
/// How often the leases due for a checkpoint are gathered (each lease has
/// its own period, `lease::checkpoint_every`: a tenth of its TTL, at least
/// this). etcd checkpoints every lease every 5 minutes; shorter periods
/// keep a new leader from giving leases back more than a few seconds.
const CHECKPOINT_INTERVAL: Duration = crate::lease::CHECKPOINT_MIN_INTERVAL;
/// Revocations proposed per tick at most (etcd: leaseRevokeRate 1000/s).
const MAX_REVOKES_PER_TICK: usize = 500;
/// Leases per checkpoint entry (etcd: maxLeaseCheckpointBatchSize).
const CHECKPOINT_BATCH: usize = 1000;

pub async fn run(server: Arc<EtcdServer>, election_timeout: Duration) {
    let mut tick = tokio::time::interval(EXPIRY_TICK);
    let mut last_checkpoint = Instant::now();
    let mut was_leader = false;
    let revoking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut leader_changes = server.leader_changes();
    loop {
        // React to a leadership change at once: a lease granted just after
        // election must not get the handover grace.
        tokio::select! {
            _ = tick.tick() => {}
            changed = leader_changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        let leader = server.is_leader();
        if leader && !was_leader {
            // A new leader gives every lease at least an election timeout
            // more, so none expires during the handover.
            server.lessor().promote(election_timeout);
        } else if !leader && was_leader {
            server.lessor().demote();
        }
        was_leader = leader;
        if !leader {
            continue;
        }
        let expired = server.lessor().expired(MAX_REVOKES_PER_TICK);
        // As etcd (#15247): a leader that cannot confirm it still leads
        // (cut off, or its raft thread stuck) revokes nothing. Confirmed
        // off this loop, which must go on seeing leadership changes; the
        // leases not revoked now come back after the lessor's retry delay.
        if !expired.is_empty() && !revoking.swap(true, Ordering::AcqRel) {
            let (server, revoking) = (server.clone(), revoking.clone());
            tokio::spawn(async move {
                if server.ensure_leadership().await {
                    for id in expired {
                        revoke_expired(server.clone(), id);
                    }
                } else {
                    tracing::warn!(
                        "ignored expired leases: this member could not confirm it leads"
                    );
                }
                revoking.store(false, Ordering::Release);
            });
        }
        if last_checkpoint.elapsed() >= CHECKPOINT_INTERVAL {
            last_checkpoint = Instant::now();
            for chunk in server.lessor().checkpoints().chunks(CHECKPOINT_BATCH) {
                let req = LeaseCheckpointRequest {
                    checkpoints: chunk.to_vec(),
                };
                if let Err(e) = server.propose(req).await {
                    tracing::warn!(error = %e, "failed to checkpoint leases");
                }
            }
        }
    }
}

/// Proposes the revoke of an expired lease, as the member itself.
fn revoke_expired(server: Arc<EtcdServer>, id: i64) {
    crate::metrics::server().lease_expired.inc();
    tokio::spawn(async move {
        let r = server.propose(LeaseRevokeRequest { id }).await;
        match r {
            Ok(_) => tracing::debug!(lease_id = format!("{id:x}"), "revoked expired lease"),
            Err(e) => {
                tracing::warn!(lease_id = format!("{id:x}"), error = %e, "failed to revoke expired lease")
            }
        }
    });
}
