//! Alarms: NOSPACE (the backend quota is exhausted) and CORRUPT (members'
//! data disagree), each raised by one member and seen by all.
//!
//! Alarms change only when an `AlarmRequest` entry is applied, so every
//! member activates and clears them at the same point of the log (etcd's
//! alarm store). They are kept in the backend's meta table, one key per
//! (member, alarm), so they survive restarts and travel in snapshots. While
//! an alarm is active the apply thread refuses what it forbids (NOSPACE:
//! writes that grow the store; CORRUPT: every KV and lease change), which
//! is deterministic because the alarm itself is part of the log.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use crate::proto::etcdserverpb::{
    request_op, AlarmMember, AlarmType, PutRequest, RequestOp, TxnRequest,
};

pub use crate::storage::schema::META_ALARM_PREFIX;

/// Estimated bytes a key's metadata and a lease take in the backend
/// (etcd's kvOverhead, leaseOverhead).
pub(crate) const KV_OVERHEAD: usize = 256;
const LEASE_OVERHEAD: usize = 64;

/// What a request adds to the backend, as etcd estimates it; 0 for
/// requests that do not grow it (reads, deletes).
pub fn cost_put(p: &PutRequest) -> usize {
    KV_OVERHEAD + p.key.len() + p.value.len()
}

pub fn cost_txn(t: &TxnRequest) -> usize {
    let side = |ops: &[RequestOp]| -> usize {
        ops.iter()
            .map(|op| match &op.request {
                Some(request_op::Request::RequestPut(p)) => cost_put(p),
                // etcd leaves nested txns out of the estimate, letting their
                // puts past the quota; we count them.
                Some(request_op::Request::RequestTxn(t)) => cost_txn(t),
                _ => 0,
            })
            .sum()
    };
    side(&t.success).max(side(&t.failure))
}

pub fn cost_lease_grant() -> usize {
    LEASE_OVERHEAD
}

/// The active alarms, as (member id, alarm type).
#[derive(Default)]
pub struct Alarms {
    active: RwLock<BTreeSet<(u64, i32)>>,
    // Checked on every write; kept beside the set so that check is one load.
    nospace: AtomicBool,
    corrupt: AtomicBool,
}

impl Alarms {
    /// The alarms stored in the backend's meta table (see `meta_key`).
    pub fn from_meta(entries: &[(Vec<u8>, Vec<u8>)]) -> Alarms {
        let alarms = Alarms::default();
        alarms.replace(entries);
        alarms
    }

    /// Replaces the whole set with the stored one (after a snapshot install).
    pub fn replace(&self, entries: &[(Vec<u8>, Vec<u8>)]) {
        let mut set = BTreeSet::new();
        for (k, _) in entries {
            if let Some(a) = parse_meta_key(k) {
                set.insert(a);
            }
        }
        *self.active.write().unwrap_or_else(|e| e.into_inner()) = set;
        self.refresh();
    }

    /// Activates an alarm; `None` when it was already active (etcd answers
    /// with no alarm then).
    pub fn activate(&self, member_id: u64, alarm: AlarmType) -> Option<AlarmMember> {
        let added = self
            .active
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((member_id, alarm as i32));
        self.refresh();
        added.then(|| member(member_id, alarm as i32))
    }

    /// Clears an alarm; `None` when it was not active.
    pub fn deactivate(&self, member_id: u64, alarm: AlarmType) -> Option<AlarmMember> {
        let removed = self
            .active
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(member_id, alarm as i32));
        self.refresh();
        removed.then(|| member(member_id, alarm as i32))
    }

    /// Active alarms of one type, or all of them for `AlarmType::None`.
    pub fn get(&self, alarm: AlarmType) -> Vec<AlarmMember> {
        self.active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, t)| alarm == AlarmType::None || *t == alarm as i32)
            .map(|(m, t)| member(*m, *t))
            .collect()
    }

    /// The distinct alarm types active (for /health and metrics).
    pub fn active_types(&self) -> Vec<AlarmType> {
        let mut types: Vec<AlarmType> = self
            .active
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(_, t)| AlarmType::try_from(*t).ok())
            .collect();
        types.dedup();
        types
    }

    pub fn nospace(&self) -> bool {
        self.nospace.load(Ordering::Acquire)
    }

    pub fn corrupt(&self) -> bool {
        self.corrupt.load(Ordering::Acquire)
    }

    fn refresh(&self) {
        let set = self.active.read().unwrap_or_else(|e| e.into_inner());
        let has = |t: AlarmType| set.iter().any(|(_, x)| *x == t as i32);
        self.nospace
            .store(has(AlarmType::Nospace), Ordering::Release);
        self.corrupt
            .store(has(AlarmType::Corrupt), Ordering::Release);
    }
}

fn member(member_id: u64, alarm: i32) -> AlarmMember {
    AlarmMember { member_id, alarm }
}

/// The meta key recording an active alarm.
pub fn meta_key(member_id: u64, alarm: AlarmType) -> Vec<u8> {
    let mut k = META_ALARM_PREFIX.to_vec();
    k.extend_from_slice(&member_id.to_be_bytes());
    k.extend_from_slice(&(alarm as i32).to_be_bytes());
    k
}

fn parse_meta_key(k: &[u8]) -> Option<(u64, i32)> {
    let rest = k.strip_prefix(META_ALARM_PREFIX)?;
    if rest.len() != 12 {
        return None;
    }
    let member = u64::from_be_bytes(rest[..8].try_into().ok()?);
    let alarm = i32::from_be_bytes(rest[8..].try_into().ok()?);
    Some((member, alarm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activate_is_idempotent_and_survives_the_meta_round_trip() {
        let a = Alarms::default();
        assert!(a.activate(7, AlarmType::Nospace).is_some());
        assert!(a.activate(7, AlarmType::Nospace).is_none());
        assert!(a.nospace() && !a.corrupt());
        a.activate(9, AlarmType::Corrupt);
        let stored: Vec<_> = a
            .get(AlarmType::None)
            .iter()
            .map(|m| {
                (
                    meta_key(m.member_id, AlarmType::try_from(m.alarm).unwrap()),
                    Vec::new(),
                )
            })
            .collect();
        let b = Alarms::from_meta(&stored);
        assert_eq!(b.get(AlarmType::None), a.get(AlarmType::None));
        assert_eq!(b.get(AlarmType::Corrupt).len(), 1);
        assert!(b.deactivate(7, AlarmType::Nospace).is_some());
        assert!(!b.nospace() && b.corrupt());
        assert!(b.deactivate(7, AlarmType::Nospace).is_none());
    }
}
