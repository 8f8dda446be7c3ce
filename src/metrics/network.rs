//! `etcd_network_*`: peer traffic, failures and round-trip times (etcd's
//! rafthttp/metrics.go) and bytes exchanged with gRPC clients (v3rpc).
//!
//! Peer series are labelled by the remote member's hex id (`To`/`From`), so
//! a single-member cluster has none until peers exist.

use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGaugeVec, Registry};

use super::{counter, counter_vec, exponential, gauge_vec, register};

pub struct NetworkMetrics {
    /// Labelled `Local`, `Remote`.
    pub active_peers: IntGaugeVec,
    /// Labelled `Local`, `Remote`.
    pub disconnected_peers: IntCounterVec,
    /// Labelled `To`.
    pub peer_sent_bytes: IntCounterVec,
    /// Labelled `From`.
    pub peer_received_bytes: IntCounterVec,
    /// Labelled `To`.
    pub peer_sent_failures: IntCounterVec,
    /// Labelled `From`.
    pub peer_received_failures: IntCounterVec,
    /// Labelled `To`.
    pub peer_round_trip_time: HistogramVec,
    pub client_grpc_sent_bytes: IntCounter,
    pub client_grpc_received_bytes: IntCounter,
    /// Labelled `Type`, `API`.
    pub server_stream_failures: IntCounterVec,
}

impl NetworkMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        NetworkMetrics {
            active_peers: gauge_vec(
                r,
                "etcd_network_active_peers",
                "The current number of active peer connections.",
                &["Local", "Remote"],
            ),
            disconnected_peers: counter_vec(
                r,
                "etcd_network_disconnected_peers_total",
                "The total number of disconnected peers.",
                &["Local", "Remote"],
            ),
            peer_sent_bytes: counter_vec(
                r,
                "etcd_network_peer_sent_bytes_total",
                "The total number of bytes sent to peers.",
                &["To"],
            ),
            peer_received_bytes: counter_vec(
                r,
                "etcd_network_peer_received_bytes_total",
                "The total number of bytes received from peers.",
                &["From"],
            ),
            peer_sent_failures: counter_vec(
                r,
                "etcd_network_peer_sent_failures_total",
                "The total number of send failures from peers.",
                &["To"],
            ),
            peer_received_failures: counter_vec(
                r,
                "etcd_network_peer_received_failures_total",
                "The total number of receive failures from peers.",
                &["From"],
            ),
            peer_round_trip_time: register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "etcd_network_peer_round_trip_time_seconds",
                        "Round-Trip-Time histogram between peers",
                    )
                    .buckets(exponential(0.0001, 2.0, 14)),
                    &["To"],
                )
                .expect("valid metric"),
            ),
            client_grpc_sent_bytes: counter(
                r,
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            ),
            client_grpc_received_bytes: counter(
                r,
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            ),
            server_stream_failures: counter_vec(
                r,
                "etcd_network_server_stream_failures_total",
                "The total number of stream failures from the local server.",
                &["Type", "API"],
            ),
        }
    }
}
