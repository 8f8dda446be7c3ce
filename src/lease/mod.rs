//! Leases (etcd's lessor): which leases exist, which keys each one holds,
//! and, on the leader only, when each one expires.
//!
//! Grant, revoke and checkpoint change state only when applied from the
//! raft log, so every member agrees on which leases exist. Expiry is a
//! leader-local clock: the leader notices an expired lease and proposes its
//! revocation through raft. The remaining TTL is checkpointed through raft,
//! so a restart or a new leader neither resets a lease to its full TTL nor
//! expires it early.
//!
//! `lease` knows nothing of gRPC or LMDB; `apply` persists what it decides.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::proto::internal::{LeaseCheckpoint, LeaseRecord};

/// etcd's MaxLeaseTTL: about 285 years.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A TTL in seconds as a duration, held to `0..=MAX_LEASE_TTL`: TTLs also
/// come from checkpoint entries and snapshots, which nothing else bounds.
fn ttl_duration(seconds: i64) -> Duration {
    Duration::from_secs(seconds.clamp(0, MAX_LEASE_TTL) as u64)
}

/// `now + ttl + extend`, never panicking: `Instant + Duration` panics on
/// overflow, and a lease that far out simply never expires.
/// The shortest time between two checkpoints of one lease.
pub const CHECKPOINT_MIN_INTERVAL: Duration = Duration::from_secs(5);

/// How often a lease's remaining TTL is checkpointed: every 5 s, or a tenth
/// of its TTL when that is longer. A new leader gives a lease back at most
/// this much time, and the checkpoint traffic of N leases of TTL t is about
/// 10·N/t entries a second (etcd checkpoints every lease every 5 minutes).
fn checkpoint_every(ttl_seconds: i64) -> Duration {
    CHECKPOINT_MIN_INTERVAL.max(ttl_duration(ttl_seconds) / 10)
}

fn deadline(now: Instant, ttl_seconds: i64, extend: Duration) -> Instant {
    let far = now + Duration::from_secs(MAX_LEASE_TTL as u64);
    now.checked_add(ttl_duration(ttl_seconds))
        .and_then(|t| t.checked_add(extend))
        .unwrap_or(far)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("etcdserver: requested lease not found")]
    NotFound,
    #[error("etcdserver: lease already exists")]
    Exists,
    #[error("etcdserver: too large lease TTL")]
    TtlTooLarge,
}

struct Lease {
    /// Granted TTL in seconds (after the minimum TTL rule).
    ttl: i64,
    /// Remaining TTL at the last checkpoint; 0 when none since the grant
    /// or the last renewal.
    remaining_ttl: i64,
    /// Leader only: when it expires. `None` on followers (never expires).
    expiry: Option<Instant>,
    /// Leader only: a revocation was proposed; ask again after this.
    retry_revoke: Option<Instant>,
    /// Leader only: when this lease's remaining TTL is next worth a
    /// checkpoint (`checkpoint_every`).
    checkpoint_due: Option<Instant>,
    /// Leader only: renewed while the members hold a checkpointed remaining
    /// TTL; the next checkpoint resets it to the full TTL (0), as etcd's
    /// Renew does, or a new leader would use the stale remainder.
    reset_pending: bool,
    keys: BTreeSet<Vec<u8>>,
}

impl Lease {
    fn remaining(&self, now: Instant) -> Duration {
        match self.expiry {
            Some(e) => e.saturating_duration_since(now),
            None => ttl_duration(self.effective_ttl()),
        }
    }

    fn effective_ttl(&self) -> i64 {
        if self.remaining_ttl > 0 {
            self.remaining_ttl
        } else {
            self.ttl
        }
    }
}

#[derive(Default)]
struct Inner {
    leases: HashMap<i64, Lease>,
    key_lease: HashMap<Vec<u8>, i64>,
    primary: bool,
}

pub struct Lessor {
    inner: Mutex<Inner>,
    /// etcd: 1.5 election timeouts, rounded up to whole seconds.
    min_ttl: i64,
}

/// What TimeToLive reports.
pub struct TimeToLive {
    pub granted_ttl: i64,
    pub remaining: i64,
    pub keys: Vec<Vec<u8>>,
}

impl Lessor {
    pub fn new(election_timeout: Duration) -> Self {
        let min = (election_timeout.as_secs_f64() * 1.5).ceil() as i64;
        Lessor {
            inner: Mutex::new(Inner::default()),
            min_ttl: min.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A std mutex: critical sections are map operations, never awaits.
        self.inner.lock().expect("lessor lock")
    }

    /// Rebuilds state from the backend (at startup, or after installing a
    /// snapshot from the leader: what was here before is dropped).
    pub fn recover(&self, leases: Vec<LeaseRecord>, keys: Vec<(Vec<u8>, i64)>) {
        let mut inner = self.lock();
        inner.leases.clear();
        inner.key_lease.clear();
        for r in leases {
            inner.leases.insert(
                r.id,
                Lease {
                    ttl: r.ttl,
                    remaining_ttl: r.remaining_ttl,
                    expiry: None,
                    retry_revoke: None,
                    checkpoint_due: None,
                    reset_pending: false,
                    keys: BTreeSet::new(),
                },
            );
        }
        for (key, id) in keys {
            if let Some(l) = inner.leases.get_mut(&id) {
                l.keys.insert(key.clone());
                inner.key_lease.insert(key, id);
            }
        }
    }

    pub fn exists(&self, id: i64) -> bool {
        self.lock().leases.contains_key(&id)
    }

    /// Applies a grant; returns the record to persist.
    pub fn grant(&self, id: i64, ttl: i64) -> Result<LeaseRecord, Error> {
        if ttl > MAX_LEASE_TTL {
            return Err(Error::TtlTooLarge);
        }
        let ttl = ttl.max(self.min_ttl);
        let mut inner = self.lock();
        if inner.leases.contains_key(&id) {
            return Err(Error::Exists);
        }
        let now = Instant::now();
        let expiry = inner.primary.then(|| deadline(now, ttl, Duration::ZERO));
        let checkpoint_due = inner.primary.then(|| now + checkpoint_every(ttl));
        inner.leases.insert(
            id,
            Lease {
                ttl,
                remaining_ttl: 0,
                expiry,
                retry_revoke: None,
                checkpoint_due,
                reset_pending: false,
                keys: BTreeSet::new(),
            },
        );
        let m = crate::metrics::lease();
        m.granted_total.inc();
        m.ttl_total.observe(ttl as f64);
        Ok(LeaseRecord {
            id,
            ttl,
            remaining_ttl: 0,
        })
    }

    /// Applies a revoke; returns the keys to delete (in key order).
    pub fn revoke(&self, id: i64) -> Result<Vec<Vec<u8>>, Error> {
        let mut inner = self.lock();
        let lease = inner.leases.remove(&id).ok_or(Error::NotFound)?;
        crate::metrics::lease().revoked_total.inc();
        for k in &lease.keys {
            inner.key_lease.remove(k);
        }
        Ok(lease.keys.into_iter().collect())
    }

    /// Applies checkpoints; returns the records to persist.
    pub fn checkpoint(&self, cps: &[LeaseCheckpoint]) -> Vec<LeaseRecord> {
        let mut inner = self.lock();
        let primary = inner.primary;
        let now = Instant::now();
        let mut out = Vec::new();
        for cp in cps {
            if let Some(l) = inner.leases.get_mut(&cp.id) {
                l.remaining_ttl = cp.remaining_ttl;
                if primary {
                    l.checkpoint_due = Some(now + checkpoint_every(l.ttl));
                }
                out.push(LeaseRecord {
                    id: cp.id,
                    ttl: l.ttl,
                    remaining_ttl: cp.remaining_ttl,
                });
            }
        }
        out
    }

    /// A put of `key` with `lease` (0: none): the key leaves its old lease.
    pub fn attach(&self, key: &[u8], lease: i64) {
        let mut inner = self.lock();
        if let Some(old) = inner.key_lease.remove(key) {
            if let Some(l) = inner.leases.get_mut(&old) {
                l.keys.remove(key);
            }
        }
        if lease != 0 {
            if let Some(l) = inner.leases.get_mut(&lease) {
                l.keys.insert(key.to_vec());
                inner.key_lease.insert(key.to_vec(), lease);
            }
        }
    }

    /// A delete of `key`.
    pub fn detach(&self, key: &[u8]) {
        self.attach(key, 0);
    }

    /// This member became leader: start every lease's clock, from its
    /// checkpointed remaining TTL, plus `extend` (etcd extends by one
    /// election timeout so leases do not expire during the handover).
    pub fn promote(&self, extend: Duration) {
        let mut inner = self.lock();
        inner.primary = true;
        let now = Instant::now();
        for l in inner.leases.values_mut() {
            l.expiry = Some(deadline(now, l.effective_ttl(), extend));
            l.checkpoint_due = Some(now + checkpoint_every(l.ttl));
        }
    }

    /// This member lost leadership: leases no longer expire here.
    pub fn demote(&self) {
        let mut inner = self.lock();
        inner.primary = false;
        for l in inner.leases.values_mut() {
            l.expiry = None;
        }
    }

    pub fn is_primary(&self) -> bool {
        self.lock().primary
    }

    /// A keep-alive on the leader: restart the clock; returns the TTL.
    /// An expired lease is gone for the client even before its revoke is
    /// applied.
    pub fn renew(&self, id: i64) -> Result<i64, Error> {
        let mut inner = self.lock();
        let now = Instant::now();
        let l = inner.leases.get_mut(&id).ok_or(Error::NotFound)?;
        if l.expiry.is_some_and(|e| e <= now) {
            return Err(Error::NotFound);
        }
        if l.remaining_ttl > 0 {
            l.reset_pending = true;
            l.checkpoint_due = Some(now);
        } else {
            l.checkpoint_due = Some(now + checkpoint_every(l.ttl));
        }
        l.remaining_ttl = 0;
        l.expiry = Some(deadline(now, l.ttl, Duration::ZERO));
        crate::metrics::lease().renewed_total.inc();
        Ok(l.ttl)
    }

    /// Whether the lease exists and, on the leader, has not expired.
    pub fn alive(&self, id: i64) -> bool {
        let inner = self.lock();
        let now = Instant::now();
        inner
            .leases
            .get(&id)
            .is_some_and(|l| l.expiry.is_none_or(|e| e > now))
    }

    pub fn time_to_live(&self, id: i64) -> Result<TimeToLive, Error> {
        let inner = self.lock();
        let l = inner.leases.get(&id).ok_or(Error::NotFound)?;
        Ok(TimeToLive {
            granted_ttl: l.ttl,
            // etcd truncates the remaining duration to whole seconds
            remaining: l.remaining(Instant::now()).as_secs() as i64,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    pub fn ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().leases.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Leader only: leases whose time is up, at most `limit`. Each is
    /// returned again only if its revocation has not applied 3 s later.
    pub fn expired(&self, limit: usize) -> Vec<i64> {
        let mut inner = self.lock();
        if !inner.primary {
            return Vec::new();
        }
        let now = Instant::now();
        let mut ids = Vec::new();
        for (id, l) in inner.leases.iter_mut() {
            if ids.len() >= limit {
                break;
            }
            let due = l.expiry.is_some_and(|e| e <= now) && l.retry_revoke.is_none_or(|r| r <= now);
            if due {
                l.retry_revoke = Some(now + Duration::from_secs(3));
                ids.push(*id);
            }
        }
        ids.sort_unstable();
        ids
    }

    /// Leader only: the remaining TTLs worth a checkpoint now: of the live
    /// leases whose last checkpoint (or renewal, or this member's
    /// promotion) is `checkpoint_every` old.
    pub fn checkpoints(&self) -> Vec<LeaseCheckpoint> {
        self.checkpoints_at(Instant::now())
    }

    fn checkpoints_at(&self, now: Instant) -> Vec<LeaseCheckpoint> {
        let mut inner = self.lock();
        if !inner.primary {
            return Vec::new();
        }
        let mut cps: Vec<LeaseCheckpoint> = inner
            .leases
            .iter_mut()
            .filter(|(_, l)| l.checkpoint_due.is_some_and(|due| due <= now))
            .filter_map(|(id, l)| {
                if std::mem::take(&mut l.reset_pending) {
                    return Some(LeaseCheckpoint {
                        id: *id,
                        remaining_ttl: 0,
                    });
                }
                let left = l.remaining(now).as_secs_f64().ceil() as i64;
                // only what changed since the last checkpoint
                (left > 0 && left != l.remaining_ttl).then_some(LeaseCheckpoint {
                    id: *id,
                    remaining_ttl: left,
                })
            })
            .collect();
        cps.sort_unstable_by_key(|c| c.id);
        cps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_attach_revoke() {
        let l = Lessor::new(Duration::from_secs(1));
        assert_eq!(
            l.grant(7, 1).unwrap().ttl,
            2,
            "minimum TTL is 1.5 election timeouts"
        );
        assert_eq!(l.grant(7, 10), Err(Error::Exists));
        assert_eq!(l.grant(8, MAX_LEASE_TTL + 1), Err(Error::TtlTooLarge));
        l.attach(b"a", 7);
        l.attach(b"b", 7);
        l.attach(b"b", 0); // put without lease detaches
        assert_eq!(l.time_to_live(7).unwrap().keys, vec![b"a".to_vec()]);
        assert_eq!(l.revoke(7).unwrap(), vec![b"a".to_vec()]);
        assert_eq!(l.revoke(7), Err(Error::NotFound));
    }

    #[test]
    fn checkpoints_survive_promotion() {
        let l = Lessor::new(Duration::from_secs(1));
        l.grant(1, 60).unwrap();
        l.checkpoint(&[LeaseCheckpoint {
            id: 1,
            remaining_ttl: 20,
        }]);
        l.promote(Duration::ZERO);
        let ttl = l.time_to_live(1).unwrap();
        assert_eq!(ttl.granted_ttl, 60);
        assert!((19..=20).contains(&ttl.remaining), "{}", ttl.remaining);
        assert_eq!(l.renew(1), Ok(60));
        assert!(l.time_to_live(1).unwrap().remaining >= 59);
    }

    /// A lease is checkpointed once a tenth of its TTL (at least 5 s) has
    /// passed since its last checkpoint or renewal: short leases often,
    /// long ones rarely, none twice in a row for nothing.
    #[test]
    fn checkpoints_come_as_often_as_the_ttl_needs() {
        let l = Lessor::new(Duration::from_secs(1));
        l.grant(1, 10).unwrap();
        l.grant(2, 3600).unwrap();
        l.promote(Duration::ZERO);
        let now = Instant::now();
        let ids = |at: Duration| -> Vec<i64> {
            l.checkpoints_at(now + at).iter().map(|c| c.id).collect()
        };
        assert!(ids(Duration::from_secs(1)).is_empty());
        assert_eq!(ids(Duration::from_secs(6)), vec![1]);
        assert_eq!(
            ids(Duration::from_secs(361)),
            vec![2],
            "lease 1 has expired by then"
        );
        // once applied, not again until the next interval
        l.checkpoint(&[LeaseCheckpoint {
            id: 1,
            remaining_ttl: 4,
        }]);
        assert!(l
            .checkpoints_at(Instant::now() + Duration::from_secs(1))
            .is_empty());
        // a renewal restarts the interval
        assert_eq!(l.renew(2), Ok(3600));
        assert!(l
            .checkpoints_at(Instant::now() + Duration::from_secs(300))
            .is_empty());
        // a renewal while the members hold a checkpointed remainder resets
        // it to the full TTL at once (etcd's Renew), then waits again
        l.checkpoint(&[LeaseCheckpoint {
            id: 2,
            remaining_ttl: 100,
        }]);
        assert_eq!(l.renew(2), Ok(3600));
        let cps = l.checkpoints_at(Instant::now());
        assert_eq!(cps.len(), 1);
        assert_eq!((cps[0].id, cps[0].remaining_ttl), (2, 0));
        l.checkpoint(&cps);
        assert_eq!(l.renew(2), Ok(3600));
        assert!(l
            .checkpoints_at(Instant::now() + Duration::from_secs(300))
            .is_empty());
    }

    /// Checkpoint entries and snapshots carry TTLs nothing else bounds:
    /// `Instant + Duration` must not overflow (it panics, in release too)
    /// when a member with such a lease becomes leader or renews it.
    #[test]
    fn absurd_remaining_ttls_never_panic() {
        let l = Lessor::new(Duration::from_secs(1));
        for (id, remaining) in [
            (1, i64::MAX),
            (2, i64::MIN),
            (3, -1),
            (4, MAX_LEASE_TTL + 1),
        ] {
            l.grant(id, MAX_LEASE_TTL).unwrap();
            l.checkpoint(&[LeaseCheckpoint {
                id,
                remaining_ttl: remaining,
            }]);
        }
        l.promote(Duration::from_secs(u64::MAX / 4));
        for id in 1..=4 {
            assert!(l.time_to_live(id).is_ok(), "lease {id}");
            assert_eq!(l.renew(id), Ok(MAX_LEASE_TTL));
        }
    }
}
