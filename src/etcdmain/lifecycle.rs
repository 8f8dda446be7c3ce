//! A running member's life: readiness for systemd once it serves, the
//! watchdog that checks it still answers, and the signals that stop it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::server::EtcdServer;

/// Waits for SIGTERM or SIGINT; returns its name as Go prints it (etcd
/// logs `signal`).
pub(super) async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        crate::fatal("cannot install signal handlers");
    };
    tokio::select! {
        _ = term.recv() => "terminated",
        _ = int.recv() => "interrupt",
    }
}

/// Tells systemd READY=1 once the member has caught up with the commit
/// index it learned on joining and a client listener answers a
/// linearizable read, end to end over gRPC.
pub(super) async fn notify_when_ready(
    server: Arc<EtcdServer>,
    client_addrs: Vec<(SocketAddr, bool)>,
    notifier: crate::notify::Notifier,
) {
    let committed = server.raft_status().committed;
    notifier.status(&format!(
        "catching up: applied {} of {committed} committed entries",
        server.applied_index()
    ));
    let mut applied = server.applied_changes();
    if applied.wait_for(|&a| a >= committed).await.is_err() {
        return;
    }
    // A plain listener when there is one: no certificate is involved.
    let Some(&(addr, secure)) = client_addrs
        .iter()
        .find(|(_, secure)| !secure)
        .or(client_addrs.first())
    else {
        return;
    };
    let target = reachable(addr);
    notifier.status(&format!("checking a linearizable read on {target}"));
    let mut attempt = 0u32;
    loop {
        // A TLS listener may want a client certificate this member does
        // not hold (and a bare connection would be logged as a refused
        // handshake): the listener is bound, the read is made in-process.
        let checked = if secure {
            in_process_read(&server).await
        } else {
            linearizable_read_via(target).await
        };
        match checked {
            Ok(()) => break,
            Err(e) => {
                attempt += 1;
                if attempt % 10 == 1 {
                    tracing::warn!(address = %target, error = %e, "readiness check: linearizable read failed; retrying");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let addrs: Vec<String> = client_addrs.iter().map(|(a, _)| a.to_string()).collect();
    notifier.ready(&format!("serving client requests on {}", addrs.join(", ")));
}

/// A listener bound to a wildcard address is reached over loopback.
pub(super) fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// One linearizable Range through the client port, as a client sees it.
pub(super) async fn linearizable_read_via(addr: SocketAddr) -> anyhow::Result<()> {
    use crate::proto::etcdserverpb::kv_client::KvClient;
    use crate::proto::etcdserverpb::RangeRequest;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(5));
    let mut client = KvClient::new(endpoint.connect().await?);
    client
        .range(RangeRequest {
            key: b"\0".to_vec(),
            limit: 1,
            keys_only: true,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// The readiness check of a TLS-only member: a linearizable read.
pub(super) async fn in_process_read(server: &EtcdServer) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(5), server.linearizable_read())
        .await
        .context("linearizable read timed out")??;
    Ok(())
}

/// WATCHDOG=1 every `every` while the raft thread keeps ticking; a raft
/// loop stuck for longer than a ping interval (plus a second of grace for
/// a slow fsync) stops the pings, so that systemd restarts the member.
pub(super) async fn ping_watchdog(
    notifier: crate::notify::Notifier,
    raft: Arc<crate::raft::RaftShared>,
    every: Duration,
) {
    let ticks = || raft.ticks.load(std::sync::atomic::Ordering::Relaxed);
    let (mut last_ticks, mut last_advance) = (ticks(), tokio::time::Instant::now());
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let now_ticks = ticks();
        if now_ticks != last_ticks {
            (last_ticks, last_advance) = (now_ticks, tokio::time::Instant::now());
        }
        if last_advance.elapsed() <= every + Duration::from_secs(1) {
            notifier.watchdog();
        } else {
            tracing::warn!(
                stalled_for = ?last_advance.elapsed(),
                "raft loop is not ticking; not pinging the systemd watchdog"
            );
        }
    }
}
