//! `etcd_debugging_auth_*`: the auth store (etcd's auth/metrics.go).

use prometheus::{IntGauge, Registry};

use super::gauge;

pub struct AuthMetrics {
    /// The auth store's revision, read from the store at each scrape as
    /// etcd's GaugeFunc reads it, so every user, role or enable/disable
    /// change shows on the next scrape.
    pub revision: IntGauge,
}

impl AuthMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        AuthMetrics {
            revision: gauge(
                r,
                "etcd_debugging_auth_revision",
                "The current revision of auth store.",
            ),
        }
    }
}
