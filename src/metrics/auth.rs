//! `etcd_debugging_auth_*`: the auth store (etcd's auth/metrics.go), and
//! one of ours: whether RBAC can be bypassed through the peer port.

use prometheus::{IntGauge, Registry};

use super::gauge;

pub struct AuthMetrics {
    /// The auth store's revision, read from the store at each scrape as
    /// etcd's GaugeFunc reads it, so every user, role or enable/disable
    /// change shows on the next scrape.
    pub revision: IntGauge,
    /// 1 while auth is on and the peer port does not authenticate members
    /// (the state the start-up warning names), so an alert can watch it.
    pub peers_unauthenticated: IntGauge,
}

impl AuthMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        AuthMetrics {
            revision: gauge(
                r,
                "etcd_debugging_auth_revision",
                "The current revision of auth store.",
            ),
            peers_unauthenticated: gauge(
                r,
                "rsetcd_auth_peers_unauthenticated",
                "1 when authentication is enabled but the peer port does not authenticate members (http peer URLs, or https without --peer-client-cert-auth): whoever reaches the peer port can bypass RBAC.",
            ),
        }
    }
}
