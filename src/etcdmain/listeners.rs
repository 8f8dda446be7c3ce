//! The ports a member listens on: binding etcd's URLs, the metrics
//! listener, and the values Prometheus reads when it scrapes.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::alarm::{DEFAULT_QUOTA_BYTES, MAX_QUOTA_BYTES};
use crate::server::EtcdServer;

pub(super) async fn bind(u: &url::Url) -> anyhow::Result<TcpListener> {
    if !matches!(u.scheme(), "http" | "https") {
        bail!("listen URL {u}: only http:// and https:// are supported");
    }
    let host = u.host_str().unwrap_or("localhost");
    let port = u
        .port()
        .with_context(|| format!("listen URL {u} has no port"))?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("resolve {host}"))?
        .collect();
    // etcd binds "localhost" to its IPv4 loopback address.
    let addr = addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .with_context(|| format!("{host} resolves to no address"))?;
    // Go's text: tests and scripts retry on "bind: address already in use".
    TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!(
            "listen tcp {addr}: bind: {}",
            crate::gofmt::os_error_text(&e)
        )
    })
}

/// `etcd_server_quota_backend_bytes` as etcd sets it: the default for 0,
/// nothing for a negative (disabled) quota.
pub(super) fn set_quota_metric(quota: i64) {
    let gauge = &crate::metrics::server().quota_backend_bytes;
    match quota {
        q if q < 0 => {}
        0 => gauge.set(DEFAULT_QUOTA_BYTES),
        q => {
            gauge.set(q);
            if q > MAX_QUOTA_BYTES {
                tracing::warn!(
                    quota_size_bytes = q,
                    quota_maximum_size_bytes = MAX_QUOTA_BYTES,
                    "quota exceeds the maximum value"
                );
            }
        }
    }
}

/// Values read from the member's state when Prometheus scrapes.
pub(super) fn register_scrape_hooks(server: &Arc<EtcdServer>) {
    // Weak: the registry lives for the process, the server does not.
    let server = Arc::downgrade(server);
    crate::metrics::on_scrape(move || {
        let Some(s) = server.upgrade() else { return };
        let server_metrics = crate::metrics::server();
        server_metrics
            .proposals_applied
            .set(s.applied_index() as i64);
        let backlog = s.raft_status().apply_backlog_bytes;
        server_metrics
            .apply_backlog_bytes
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let mvcc = crate::metrics::mvcc();
        if let Ok((total, in_use)) = s.store().db_size() {
            mvcc.db_total_size_in_bytes.set(total);
            mvcc.db_total_size_in_use_in_bytes.set(in_use);
        }
        mvcc.keys_total.set(s.store().live_keys() as i64);
        if let Ok(view) = s.store().read() {
            mvcc.current_revision.set(view.current_rev());
            mvcc.compact_revision.set(view.compacted_rev());
        };
        let auth = crate::metrics::auth();
        auth.revision
            .set(i64::try_from(s.auth().revision()).unwrap_or(i64::MAX));
        auth.peers_unauthenticated
            .set(i64::from(s.auth().bypassable_through_peers()));
    });
}

/// A `--listen-metrics-urls` listener: /metrics and the health endpoints
/// over plain HTTP, until shutdown.
pub(super) async fn serve_metrics(
    listener: TcpListener,
    tls: Option<Arc<crate::tls::ReloadableTls>>,
    server: Arc<EtcdServer>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let app = crate::api::http::metrics_listener_routes(server);
    let stopped = async move {
        let _ = shutdown.wait_for(|&s| s).await;
    };
    match tls {
        // As etcd: https:// metrics listeners use the client certificates.
        Some(tls) => {
            axum::serve(crate::tls::acceptor::AxumListener::new(listener, tls)?, app)
                .with_graceful_shutdown(stopped)
                .await
        }
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await
        }
    }
}
