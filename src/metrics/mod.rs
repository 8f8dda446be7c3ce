//! The member's Prometheus metrics: one registry holding every metric etcd
//! exports, under etcd's names, types, label names, help texts and buckets
//! (including etcd's quirks, such as `etcd_server_proposals_committed_total`
//! being a gauge), so that etcd's alert rules and dashboards work unchanged.
//!
//! Metrics live in one process-wide registry; code anywhere records with a
//! one-line call such as `metrics::mvcc().put_total.inc()`. Values that are
//! cheaper to read than to track (applied index, database size, process
//! state) are refreshed by hooks just before each scrape (`on_scrape`).

mod auth;
mod disk;
pub mod grpc;
mod lease;
mod mvcc;
mod network;
mod process;
mod server;

use std::sync::{LazyLock, Mutex};

use prometheus::core::Collector;
use prometheus::{Encoder as _, Histogram, HistogramOpts, IntGaugeVec, Opts, Registry};

pub use auth::AuthMetrics;
pub use disk::DiskMetrics;
pub use grpc::GrpcMetrics;
pub use lease::LeaseMetrics;
pub use mvcc::MvccMetrics;
pub use network::NetworkMetrics;
pub use server::{PendingProposal, ServerMetrics};

/// Content type of the text exposition format, as etcd's promhttp sends it.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

type ScrapeHook = Box<dyn Fn() + Send + Sync>;

struct Metrics {
    registry: Registry,
    server: ServerMetrics,
    disk: DiskMetrics,
    mvcc: MvccMetrics,
    lease: LeaseMetrics,
    auth: AuthMetrics,
    network: NetworkMetrics,
    grpc: GrpcMetrics,
    process: process::ProcessMetrics,
    hooks: Mutex<Vec<ScrapeHook>>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let build_info = register(
        &registry,
        IntGaugeVec::new(
            Opts::new(
                "rsetcd_build_info",
                "A metric with a constant '1' value labeled by the rsetcd version, the etcd version it implements and the git commit it was built from.",
            ),
            &["version", "etcd_version", "revision"],
        )
        .expect("valid metric"),
    );
    build_info
        .with_label_values(&[
            env!("CARGO_PKG_VERSION"),
            crate::ETCD_VERSION,
            option_env!("RSETCD_GIT_SHA").unwrap_or("unknown"),
        ])
        .set(1);
    Metrics {
        server: ServerMetrics::new(&registry),
        disk: DiskMetrics::new(&registry),
        mvcc: MvccMetrics::new(&registry),
        lease: LeaseMetrics::new(&registry),
        auth: AuthMetrics::new(&registry),
        network: NetworkMetrics::new(&registry),
        grpc: GrpcMetrics::new(&registry),
        process: process::ProcessMetrics::new(&registry),
        hooks: Mutex::new(Vec::new()),
        registry,
    }
});

/// `--metrics`: `extensive` adds `grpc_server_handling_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Basic,
    Extensive,
}

impl Level {
    /// etcd enables the histogram only for exactly "extensive".
    pub fn from_flag(value: &str) -> Level {
        if value == "extensive" {
            Level::Extensive
        } else {
            Level::Basic
        }
    }
}

/// Sets up the registry for the server; call once at start.
pub fn init(level: Level) {
    if level == Level::Extensive {
        METRICS.grpc.enable_handling_histogram(&METRICS.registry);
    }
    METRICS.grpc.preregister_etcd_services();
}

pub fn server() -> &'static ServerMetrics {
    &METRICS.server
}

pub fn disk() -> &'static DiskMetrics {
    &METRICS.disk
}

pub fn mvcc() -> &'static MvccMetrics {
    &METRICS.mvcc
}

pub fn auth() -> &'static AuthMetrics {
    &METRICS.auth
}

pub fn lease() -> &'static LeaseMetrics {
    &METRICS.lease
}

pub fn network() -> &'static NetworkMetrics {
    &METRICS.network
}

pub fn grpc() -> &'static GrpcMetrics {
    &METRICS.grpc
}

/// Runs `hook` before every scrape, to refresh values read from state.
pub fn on_scrape(hook: impl Fn() + Send + Sync + 'static) {
    if let Ok(mut hooks) = METRICS.hooks.lock() {
        hooks.push(Box::new(hook));
    }
}

/// Every metric in Prometheus' text format, families sorted by name.
pub fn render() -> String {
    if let Ok(hooks) = METRICS.hooks.lock() {
        for hook in hooks.iter() {
            hook();
        }
    }
    METRICS.process.refresh();
    let families = METRICS.registry.gather();
    let mut out = Vec::new();
    // Encoding into a Vec fails only on a malformed family, which the
    // registry's own checks rule out; an empty answer is the safe fallback.
    if let Err(e) = prometheus::TextEncoder::new().encode(&families, &mut out) {
        tracing::warn!(error = %e, "cannot encode metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Registers `metric` and hands it back. Names are fixed in this module, so
/// a clash is a programming error caught by the unit test below.
fn register<T: Collector + Clone + 'static>(registry: &Registry, metric: T) -> T {
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// etcd's `prometheus.ExponentialBuckets(start, factor, count)`.
fn exponential(start: f64, factor: f64, count: usize) -> Vec<f64> {
    prometheus::exponential_buckets(start, factor, count).expect("valid bucket parameters")
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    register(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
            .expect("valid metric"),
    )
}

fn counter(registry: &Registry, name: &str, help: &str) -> prometheus::IntCounter {
    register(
        registry,
        prometheus::IntCounter::new(name, help).expect("valid metric"),
    )
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::IntGauge {
    register(
        registry,
        prometheus::IntGauge::new(name, help).expect("valid metric"),
    )
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> prometheus::IntCounterVec {
    register(
        registry,
        prometheus::IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        registry,
        IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_builds_and_renders_etcd_names() {
        super::init(super::Level::Extensive);
        super::server().has_leader.set(1);
        {
            let _pending = super::server().pending_proposal();
            assert_eq!(super::server().proposals_pending.get(), 1);
        }
        assert_eq!(super::server().proposals_pending.get(), 0);
        super::disk().wal_fsync_duration.observe(0.0015);
        let text = super::render();
        assert!(text.contains("# TYPE etcd_server_has_leader gauge\netcd_server_has_leader 1\n"));
        assert!(text.contains("# TYPE etcd_server_proposals_committed_total gauge"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"0.002\"} 1"));
        assert!(text.contains("etcd_disk_wal_fsync_duration_seconds_bucket{le=\"8.192\"} 1"));
        assert!(text.contains(
            "grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 0"
        ));
        assert!(text.contains(
            "grpc_server_handling_seconds_bucket{grpc_method=\"Watch\",grpc_service=\"etcdserverpb.Watch\",grpc_type=\"bidi_stream\",le=\"0.005\"} 0"
        ));
        assert!(text.contains("# TYPE process_cpu_seconds_total counter"));
        assert!(text.contains("rsetcd_build_info{"));
    }
}
