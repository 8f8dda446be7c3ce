//! `etcd_debugging_lease_*`: lease grants, revocations, renewals and TTLs
//! (etcd's lease/metrics.go).

use prometheus::{Histogram, IntCounter, Registry};

use super::{counter, exponential, histogram};

pub struct LeaseMetrics {
    pub granted_total: IntCounter,
    pub revoked_total: IntCounter,
    pub renewed_total: IntCounter,
    /// Granted TTLs in seconds.
    pub ttl_total: Histogram,
}

impl LeaseMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        LeaseMetrics {
            granted_total: counter(
                r,
                "etcd_debugging_lease_granted_total",
                "The total number of granted leases.",
            ),
            revoked_total: counter(
                r,
                "etcd_debugging_lease_revoked_total",
                "The total number of revoked leases.",
            ),
            renewed_total: counter(
                r,
                "etcd_debugging_lease_renewed_total",
                "The number of renewed leases seen by the leader.",
            ),
            // 1 second to about 3 months.
            ttl_total: histogram(
                r,
                "etcd_debugging_lease_ttl_total",
                "Bucketed histogram of lease TTLs.",
                exponential(1.0, 2.0, 24),
            ),
        }
    }
}
