//! `etcd_mvcc_*` and `etcd_debugging_mvcc_*`: operation counters, key and
//! watcher gauges, database size, compaction and hash latencies (etcd's
//! mvcc/metrics.go).

use prometheus::{Histogram, IntCounter, IntGauge, Registry};

use super::{counter, exponential, gauge, histogram};

pub struct MvccMetrics {
    pub range_total: IntCounter,
    pub put_total: IntCounter,
    pub delete_total: IntCounter,
    pub txn_total: IntCounter,
    pub keys_total: IntGauge,
    pub watch_stream_total: IntGauge,
    pub watcher_total: IntGauge,
    pub slow_watcher_total: IntGauge,
    pub events_total: IntCounter,
    pub pending_events_total: IntGauge,
    pub db_total_size_in_bytes: IntGauge,
    pub db_total_size_in_use_in_bytes: IntGauge,
    pub db_open_read_transactions: IntGauge,
    pub current_revision: IntGauge,
    pub compact_revision: IntGauge,
    pub total_put_size_in_bytes: IntGauge,
    pub db_compaction_keys_total: IntCounter,
    pub db_compaction_last: IntGauge,
    pub index_compaction_pause_duration_ms: Histogram,
    pub db_compaction_pause_duration_ms: Histogram,
    pub db_compaction_total_duration_ms: Histogram,
    pub hash_duration: Histogram,
    pub hash_rev_duration: Histogram,
}

impl MvccMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        MvccMetrics {
            range_total: counter(
                r,
                "etcd_mvcc_range_total",
                "Total number of ranges seen by this member.",
            ),
            put_total: counter(
                r,
                "etcd_mvcc_put_total",
                "Total number of puts seen by this member.",
            ),
            delete_total: counter(
                r,
                "etcd_mvcc_delete_total",
                "Total number of deletes seen by this member.",
            ),
            txn_total: counter(
                r,
                "etcd_mvcc_txn_total",
                "Total number of txns seen by this member.",
            ),
            keys_total: gauge(r, "etcd_debugging_mvcc_keys_total", "Total number of keys."),
            watch_stream_total: gauge(
                r,
                "etcd_debugging_mvcc_watch_stream_total",
                "Total number of watch streams.",
            ),
            watcher_total: gauge(
                r,
                "etcd_debugging_mvcc_watcher_total",
                "Total number of watchers.",
            ),
            slow_watcher_total: gauge(
                r,
                "etcd_debugging_mvcc_slow_watcher_total",
                "Total number of unsynced slow watchers.",
            ),
            events_total: counter(
                r,
                "etcd_debugging_mvcc_events_total",
                "Total number of events sent by this member.",
            ),
            pending_events_total: gauge(
                r,
                "etcd_debugging_mvcc_pending_events_total",
                "Total number of pending events to be sent.",
            ),
            db_total_size_in_bytes: gauge(
                r,
                "etcd_mvcc_db_total_size_in_bytes",
                "Total size of the underlying database physically allocated in bytes.",
            ),
            db_total_size_in_use_in_bytes: gauge(
                r,
                "etcd_mvcc_db_total_size_in_use_in_bytes",
                "Total size of the underlying database logically in use in bytes.",
            ),
            db_open_read_transactions: gauge(
                r,
                "etcd_mvcc_db_open_read_transactions",
                "The number of currently open read transactions",
            ),
            current_revision: gauge(
                r,
                "etcd_debugging_mvcc_current_revision",
                "The current revision of store.",
            ),
            compact_revision: gauge(
                r,
                "etcd_debugging_mvcc_compact_revision",
                "The revision of the last compaction in store.",
            ),
            total_put_size_in_bytes: gauge(
                r,
                "etcd_debugging_mvcc_total_put_size_in_bytes",
                "The total size of put kv pairs seen by this member.",
            ),
            db_compaction_keys_total: counter(
                r,
                "etcd_debugging_mvcc_db_compaction_keys_total",
                "Total number of db keys compacted.",
            ),
            db_compaction_last: gauge(
                r,
                "etcd_debugging_mvcc_db_compaction_last",
                "The unix time of the last db compaction. Resets to 0 on start.",
            ),
            index_compaction_pause_duration_ms: histogram(
                r,
                "etcd_debugging_mvcc_index_compaction_pause_duration_milliseconds",
                "Bucketed histogram of index compaction pause duration.",
                exponential(0.5, 2.0, 14),
            ),
            db_compaction_pause_duration_ms: histogram(
                r,
                "etcd_debugging_mvcc_db_compaction_pause_duration_milliseconds",
                "Bucketed histogram of db compaction pause duration.",
                exponential(1.0, 2.0, 13),
            ),
            db_compaction_total_duration_ms: histogram(
                r,
                "etcd_debugging_mvcc_db_compaction_total_duration_milliseconds",
                "Bucketed histogram of db compaction total duration.",
                exponential(100.0, 2.0, 14),
            ),
            hash_duration: histogram(
                r,
                "etcd_mvcc_hash_duration_seconds",
                "The latency distribution of storage hash operation.",
                exponential(0.01, 2.0, 15),
            ),
            hash_rev_duration: histogram(
                r,
                "etcd_mvcc_hash_rev_duration_seconds",
                "The latency distribution of storage hash by revision operation.",
                exponential(0.01, 2.0, 15),
            ),
        }
    }
}
