//! `etcd_server_*` and `etcd_cluster_version`: raft role, proposals, quota,
//! identity and health-check counters (etcd's etcdserver/metrics.go,
//! membership/metrics.go, etcdhttp/metrics.go and v3rpc/metrics.go).

use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

use super::{counter, counter_vec, gauge, gauge_vec};

pub struct ServerMetrics {
    pub has_leader: IntGauge,
    pub is_leader: IntGauge,
    pub is_learner: IntGauge,
    pub leader_changes_seen: IntCounter,
    pub heartbeat_send_failures: IntCounter,
    pub slow_apply: IntCounter,
    pub snapshot_apply_in_progress: IntGauge,
    /// A gauge in etcd, set to the raft commit index.
    pub proposals_committed: IntGauge,
    /// A gauge in etcd, set to the applied index.
    pub proposals_applied: IntGauge,
    pub proposals_pending: IntGauge,
    /// Ours: bytes committed and not yet applied (read at scrape time).
    pub apply_backlog_bytes: IntGauge,
    pub proposals_failed: IntCounter,
    pub slow_read_indexes: IntCounter,
    pub read_indexes_failed: IntCounter,
    pub lease_expired: IntCounter,
    pub quota_backend_bytes: IntGauge,
    pub learner_promote_successes: IntCounter,
    /// Labelled `server_version`, value 1.
    pub version: IntGaugeVec,
    /// Labelled `server_id` (hex member id), value 1.
    pub id: IntGaugeVec,
    /// `etcd_cluster_version`, labelled `cluster_version` ("3.5"), value 1.
    pub cluster_version: IntGaugeVec,
    pub health_success: IntCounter,
    pub health_failures: IntCounter,
    /// Labelled `type` ("unary" or "stream") and `client_api_version`.
    pub client_requests: IntCounterVec,
}

impl ServerMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        let m = ServerMetrics {
            has_leader: gauge(
                r,
                "etcd_server_has_leader",
                "Whether or not a leader exists. 1 is existence, 0 is not.",
            ),
            is_leader: gauge(
                r,
                "etcd_server_is_leader",
                "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            ),
            is_learner: gauge(
                r,
                "etcd_server_is_learner",
                "Whether or not this member is a learner. 1 if is, 0 otherwise.",
            ),
            leader_changes_seen: counter(
                r,
                "etcd_server_leader_changes_seen_total",
                "The number of leader changes seen.",
            ),
            heartbeat_send_failures: counter(
                r,
                "etcd_server_heartbeat_send_failures_total",
                "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
            ),
            slow_apply: counter(
                r,
                "etcd_server_slow_apply_total",
                "The total number of slow apply requests (likely overloaded from slow disk).",
            ),
            snapshot_apply_in_progress: gauge(
                r,
                "etcd_server_snapshot_apply_in_progress_total",
                "1 if the server is applying the incoming snapshot. 0 if none.",
            ),
            proposals_committed: gauge(
                r,
                "etcd_server_proposals_committed_total",
                "The total number of consensus proposals committed.",
            ),
            proposals_applied: gauge(
                r,
                "etcd_server_proposals_applied_total",
                "The total number of consensus proposals applied.",
            ),
            proposals_pending: gauge(
                r,
                "etcd_server_proposals_pending",
                "The current number of pending proposals to commit.",
            ),
            apply_backlog_bytes: gauge(
                r,
                "rsetcd_server_apply_backlog_bytes",
                "Bytes of committed raft entries not yet applied; new proposals are refused with \"too many requests\" past 256 MiB.",
            ),
            proposals_failed: counter(
                r,
                "etcd_server_proposals_failed_total",
                "The total number of failed proposals seen.",
            ),
            slow_read_indexes: counter(
                r,
                "etcd_server_slow_read_indexes_total",
                "The total number of pending read indexes not in sync with leader's or timed out read index requests.",
            ),
            read_indexes_failed: counter(
                r,
                "etcd_server_read_indexes_failed_total",
                "The total number of failed read indexes seen.",
            ),
            lease_expired: counter(
                r,
                "etcd_debugging_server_lease_expired_total",
                "The total number of expired leases.",
            ),
            quota_backend_bytes: gauge(
                r,
                "etcd_server_quota_backend_bytes",
                "Current backend storage quota size in bytes.",
            ),
            learner_promote_successes: counter(
                r,
                "etcd_server_learner_promote_successes",
                "The total number of successful learner promotions while this member is leader.",
            ),
            version: gauge_vec(
                r,
                "etcd_server_version",
                "Which version is running. 1 for 'server_version' label with current version.",
                &["server_version"],
            ),
            id: gauge_vec(
                r,
                "etcd_server_id",
                "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
                &["server_id"],
            ),
            cluster_version: gauge_vec(
                r,
                "etcd_cluster_version",
                "Which version is running. 1 for 'cluster_version' label with current cluster version",
                &["cluster_version"],
            ),
            health_success: counter(
                r,
                "etcd_server_health_success",
                "The total number of successful health checks",
            ),
            health_failures: counter(
                r,
                "etcd_server_health_failures",
                "The total number of failed health checks",
            ),
            client_requests: counter_vec(
                r,
                "etcd_server_client_requests_total",
                "The total number of client requests per client version.",
                &["type", "client_api_version"],
            ),
        };
        m.version.with_label_values(&[crate::ETCD_VERSION]).set(1);
        m
    }

    /// Records the member id (`etcd_server_id{server_id="8e9e05c52164694d"}`).
    pub fn set_member_id(&self, member_id: u64) {
        self.id.reset();
        self.id
            .with_label_values(&[&format!("{member_id:x}")])
            .set(1);
    }

    /// Records the cluster version as etcd shows it: major.minor.
    pub fn set_cluster_version(&self, version: &str) {
        let short = version.rsplit_once('.').map_or(version, |(a, _)| a);
        self.cluster_version.reset();
        self.cluster_version.with_label_values(&[short]).set(1);
    }

    /// Counts a proposal as pending until the guard drops (etcd increments
    /// before waiting for the result and decrements when it returns).
    pub fn pending_proposal(&'static self) -> PendingProposal {
        self.proposals_pending.inc();
        PendingProposal(&self.proposals_pending)
    }

    /// Records a change of leader as raft reports it (0 = none).
    pub fn observe_leader(&self, previous: u64, leader: u64, is_leader: bool) {
        self.has_leader.set(i64::from(leader != 0));
        self.is_leader.set(i64::from(is_leader));
        if leader != 0 && leader != previous {
            self.leader_changes_seen.inc();
        }
    }
}

/// See `ServerMetrics::pending_proposal`.
pub struct PendingProposal(&'static IntGauge);

impl Drop for PendingProposal {
    fn drop(&mut self) {
        self.0.dec();
    }
}
