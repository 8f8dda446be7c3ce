//! `etcd_disk_*` and `etcd_snap_*`: WAL, backend and snapshot latencies
//! (etcd's wal/metrics.go, backend/metrics.go and snap/metrics.go).

use prometheus::{Histogram, IntGauge, Registry};

use super::{exponential, gauge, histogram};

pub struct DiskMetrics {
    pub wal_fsync_duration: Histogram,
    pub wal_write_duration: Histogram,
    /// A gauge in etcd: bytes written to the WAL since start.
    pub wal_write_bytes: IntGauge,
    pub backend_commit_duration: Histogram,
    pub backend_defrag_duration: Histogram,
    pub backend_snapshot_duration: Histogram,
    pub defrag_inflight: IntGauge,
    pub snap_fsync_duration: Histogram,
    pub snap_db_fsync_duration: Histogram,
    pub snap_db_save_total_duration: Histogram,
}

impl DiskMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        // 1 ms … 8.192 s, etcd's bucket layout for fsync and commit latencies.
        let ms_to_8s = || exponential(0.001, 2.0, 14);
        DiskMetrics {
            wal_fsync_duration: histogram(
                r,
                "etcd_disk_wal_fsync_duration_seconds",
                "The latency distributions of fsync called by WAL.",
                ms_to_8s(),
            ),
            wal_write_duration: histogram(
                r,
                "etcd_disk_wal_write_duration_seconds",
                "The latency distributions of write called by WAL.",
                ms_to_8s(),
            ),
            wal_write_bytes: gauge(
                r,
                "etcd_disk_wal_write_bytes_total",
                "Total number of bytes written in WAL.",
            ),
            backend_commit_duration: histogram(
                r,
                "etcd_disk_backend_commit_duration_seconds",
                "The latency distributions of commit called by backend.",
                ms_to_8s(),
            ),
            backend_defrag_duration: histogram(
                r,
                "etcd_disk_backend_defrag_duration_seconds",
                "The latency distribution of backend defragmentation.",
                exponential(0.1, 2.0, 13),
            ),
            backend_snapshot_duration: histogram(
                r,
                "etcd_disk_backend_snapshot_duration_seconds",
                "The latency distribution of backend snapshots.",
                exponential(0.01, 2.0, 17),
            ),
            defrag_inflight: gauge(
                r,
                "etcd_disk_defrag_inflight",
                "Whether or not defrag is active on the member. 1 means active, 0 means not.",
            ),
            snap_fsync_duration: histogram(
                r,
                "etcd_snap_fsync_duration_seconds",
                "The latency distributions of fsync called by snap.",
                ms_to_8s(),
            ),
            snap_db_fsync_duration: histogram(
                r,
                "etcd_snap_db_fsync_duration_seconds",
                "The latency distributions of fsyncing .snap.db file",
                ms_to_8s(),
            ),
            snap_db_save_total_duration: histogram(
                r,
                "etcd_snap_db_save_total_duration_seconds",
                "The total latency distributions of v3 snapshot save",
                exponential(0.1, 2.0, 10),
            ),
        }
    }
}
