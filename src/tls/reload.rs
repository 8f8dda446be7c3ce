//! Reloading TLS without a restart: every few seconds the certificate, key
//! and CA files are re-read and, when they changed, new connections use
//! them; SIGHUP reloads at once (systemd's `ExecReload`).

use std::sync::Arc;
use std::time::Duration;

use super::info::{ReloadableTls, Trigger};

/// How often the files are compared with the ones in use.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Watches `sides` until the runtime stops.
pub fn spawn(sides: Vec<Arc<ReloadableTls>>) {
    if sides.is_empty() {
        return;
    }
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // Several SIGHUP listeners may exist (the daemon reloads its log
        // level too): each one is woken.
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "cannot handle SIGHUP; TLS files are reloaded on change only");
                None
            }
        };
        let mut ticker = tokio::time::interval(POLL_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticker.tick().await;
        loop {
            let on_signal = async {
                match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            let trigger = tokio::select! {
                _ = ticker.tick() => Trigger::FileChange,
                _ = on_signal => Trigger::Signal,
            };
            let sides = sides.clone();
            // File reads and key parsing stay off the async workers.
            let _ = tokio::task::spawn_blocking(move || {
                for side in &sides {
                    side.reload(trigger);
                }
            })
            .await;
        }
    });
}
