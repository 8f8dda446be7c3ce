//! Free 127.0.0.1 ports for the servers tests start.
//!
//! A port found free by binding port 0 comes from the kernel's ephemeral
//! range, the same range every outgoing connection takes its source port
//! from: between the check and the server's own bind, a peer or client
//! connection of the cluster under test can take it ("bind: address already
//! in use"). Ports here come from just below that range, which only
//! listeners use, each handed out once per process.
//!
//! One copy for the whole test binary (declared in main.rs; the support
//! modules re-export `free_port`): every test shares one sequence, so no
//! two servers of concurrent tests are handed the same port.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;

/// The lowest port handed out; well above the well-known services.
const LOWEST: u32 = 10_000;

static START: OnceLock<u32> = OnceLock::new();
static NEXT: AtomicU32 = AtomicU32::new(0);

/// A port on 127.0.0.1 that nothing listens on and that this process has
/// not handed out before.
pub fn free_port() -> anyhow::Result<u16> {
    let Some(end) = ephemeral_range_start().filter(|&end| end >= LOWEST + 1_000) else {
        return kernel_pick();
    };
    let span = end - LOWEST;
    let start = *START.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        std::process::id().wrapping_mul(7_919).wrapping_add(nanos) % span
    });
    for _ in 0..span {
        let offset = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + (start + offset) % span;
        // Nothing listening there now (a server of an earlier test binary
        // or another user of the machine).
        if TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
            return Ok(port as u16);
        }
    }
    kernel_pick()
}

/// The first port of the kernel's ephemeral range, if it can be read.
fn ephemeral_range_start() -> Option<u32> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    range.split_whitespace().next()?.parse().ok()
}

fn kernel_pick() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
