//! systemd's service notification protocol (sd_notify(3)): `READY=1`,
//! `STATUS=…`, `STOPPING=1` and `WATCHDOG=1` datagrams to the socket named
//! by `NOTIFY_SOCKET` — a path, or an abstract socket when it starts with
//! `@`. Without `NOTIFY_SOCKET` every call does nothing, so the daemon
//! behaves the same outside systemd.

use sd_notify::NotifyState;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

/// Where notifications go; cheap to clone.
#[derive(Clone, Default)]
pub struct Notifier {
    target: Option<Arc<Target>>,
}

struct Target {
    socket: UnixDatagram,
    addr: SocketAddr,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`. An unusable value is logged and ignored: a
    /// daemon must not fail to start over its supervisor's socket.
    pub fn from_env() -> Notifier {
        let Some(value) = std::env::var_os("NOTIFY_SOCKET") else {
            return Notifier::default();
        };
        match Self::connect(&value.to_string_lossy()) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(
                    notify_socket = %value.to_string_lossy(),
                    error = %e,
                    "cannot use NOTIFY_SOCKET; not notifying systemd"
                );
                Notifier::default()
            }
        }
    }

    /// A notifier for the socket `spec` (as `NOTIFY_SOCKET` spells it).
    pub fn connect(spec: &str) -> io::Result<Notifier> {
        let addr = if let Some(name) = spec.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt as _;
            SocketAddr::from_abstract_name(name.as_bytes())?
        } else if spec.starts_with('/') {
            SocketAddr::from_pathname(spec)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not an absolute path or an abstract socket name",
            ));
        };
        Ok(Notifier {
            target: Some(Arc::new(Target {
                socket: UnixDatagram::unbound()?,
                addr,
            })),
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.target.is_some()
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// Sends one datagram. The message text comes from the sd-notify
    /// crate; the socket is ours because that crate cannot reach abstract
    /// (`@name`) sockets. Failures are logged at debug level only: the
    /// supervisor may be gone (e.g. during its own shutdown).
    fn send(&self, states: &[NotifyState<'_>]) {
        let Some(t) = &self.target else { return };
        let message = states
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        let message = message.as_str();
        if let Err(e) = t.socket.send_to_addr(message.as_bytes(), &t.addr) {
            tracing::debug!(error = %e, message, "cannot notify systemd");
        }
    }
}

/// How often to ping the watchdog: half of `WATCHDOG_USEC`, as
/// sd_watchdog_enabled(3) advises, when the watchdog is meant for this
/// process (`WATCHDOG_PID` unset or ours).
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
            return None;
        }
    }
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::Notifier;

    #[test]
    fn sends_to_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&path).expect("bind");
        let n = Notifier::connect(path.to_str().expect("utf-8")).expect("connect");
        n.ready("serving");
        let mut buf = [0u8; 256];
        let len = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"READY=1\nSTATUS=serving");

        use std::os::linux::net::SocketAddrExt as _;
        let name = format!("rsetcd-notify-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
            .expect("abstract name");
        let rx = std::os::unix::net::UnixDatagram::bind_addr(&addr).expect("bind abstract");
        let n = Notifier::connect(&format!("@{name}")).expect("connect abstract");
        n.watchdog();
        let len = rx.recv(&mut buf).expect("recv");
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn disabled_without_socket() {
        let n = Notifier::default();
        assert!(!n.is_enabled());
        n.ready("nothing happens");
        assert!(Notifier::connect("relative/path").is_err());
    }
}
