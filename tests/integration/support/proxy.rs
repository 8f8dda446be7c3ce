//! A TCP proxy in front of one member's peer port, the test's network:
//! member i advertises proxy i, so every peer connection *to* member i runs
//! through it. The proxy finds which process opened each connection (its
//! socket in /proc), so a fault can also hit what a given member *sends*:
//! a two-way partition, delay or loss of one member is its own proxy's
//! inbound link plus the link from its process on every other proxy.
//!
//! Links: up, cut (connections dropped, new ones refused), delayed (every
//! chunk held back by a fixed time, both directions), lossy (TCP's view of
//! packet loss: a lost segment is retransmitted after 200 ms, TCP's
//! minimum RTO, holding back everything behind it; now and then a
//! connection is reset).

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Link {
    Up,
    Cut,
    Delay(Duration),
    Lossy,
}

struct Conn {
    /// The socket inode of the sender's end (0: not found).
    sender_inode: u64,
    link: Arc<Mutex<Link>>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Rules {
    /// Every connection's link, unless `from` names its sender.
    inbound: Option<Link>,
    /// Links of connections opened by a process (by pid).
    from: HashMap<u32, Link>,
    conns: Vec<Conn>,
}

impl Rules {
    /// The link of a connection whose sender's socket is `inode`.
    fn link_of(&self, inode: u64) -> Link {
        let inbound = self.inbound.unwrap_or(Link::Up);
        if inbound == Link::Cut {
            return Link::Cut;
        }
        for (&pid, &link) in &self.from {
            if inode != 0 && socket_inodes(pid).contains(&inode) {
                return link;
            }
        }
        inbound
    }

    /// Applies the rules to the open connections: cut ones end.
    fn apply(&mut self) {
        let links: Vec<Link> = self
            .conns
            .iter()
            .map(|c| self.link_of(c.sender_inode))
            .collect();
        let mut kept = Vec::new();
        for (c, link) in self.conns.drain(..).zip(links) {
            if link == Link::Cut || c.task.is_finished() {
                c.task.abort();
            } else {
                *c.link.lock().expect("link") = link;
                kept.push(c);
            }
        }
        self.conns = kept;
    }
}

pub struct PeerProxy {
    pub port: u16,
    rules: Arc<Mutex<Rules>>,
    accept: JoinHandle<()>,
}

impl PeerProxy {
    pub async fn start(target: u16) -> anyhow::Result<PeerProxy> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let rules: Arc<Mutex<Rules>> = Default::default();
        let r = rules.clone();
        let accept = tokio::spawn(async move {
            while let Ok((inbound, from)) = listener.accept().await {
                // the sender's socket: local = its port, remote = ours
                let inode = sender_inode(from.port(), port);
                if inode == 0 {
                    // rules naming a sender do not reach this connection
                    eprintln!(
                        "peer proxy {port}: the sender of a connection from port {} is unknown",
                        from.port()
                    );
                }
                let mut rules = r.lock().expect("proxy rules");
                let link = rules.link_of(inode);
                if link == Link::Cut {
                    continue; // dropped: the connection closes at once
                }
                let shared = Arc::new(Mutex::new(link));
                let task = tokio::spawn(forward(inbound, target, shared.clone()));
                rules.conns.retain(|c| !c.task.is_finished());
                rules.conns.push(Conn {
                    sender_inode: inode,
                    link: shared,
                    task,
                });
            }
        });
        Ok(PeerProxy {
            port,
            rules,
            accept,
        })
    }

    /// Drops every connection to the member and refuses new ones.
    pub fn cut(&self) {
        self.set_inbound(Link::Cut);
    }

    /// Every link through this proxy back up.
    pub fn heal(&self) {
        let mut rules = self.rules.lock().expect("proxy rules");
        rules.inbound = None;
        rules.from.clear();
        rules.apply();
    }

    /// The link of every connection to the member (unless a `from` rule
    /// names the sender).
    pub fn set_inbound(&self, link: Link) {
        let mut rules = self.rules.lock().expect("proxy rules");
        rules.inbound = Some(link);
        rules.apply();
    }

    /// The link of connections the process `pid` opens to the member.
    pub fn set_from(&self, pid: u32, link: Link) {
        let mut rules = self.rules.lock().expect("proxy rules");
        rules.from.insert(pid, link);
        rules.apply();
    }
}

impl Drop for PeerProxy {
    fn drop(&mut self) {
        self.accept.abort();
        for c in self.rules.lock().expect("proxy rules").conns.drain(..) {
            c.task.abort();
        }
    }
}

/// Sets `link` on everything member `target` (process `pids[target]`)
/// sends and receives: its own proxy's inbound link and the link from it
/// on every other member's proxy.
pub fn isolate(proxies: &[PeerProxy], pids: &[u32], target: usize, link: Link) {
    for (i, p) in proxies.iter().enumerate() {
        if i == target {
            p.set_inbound(link);
        } else {
            p.set_from(pids[target], link);
        }
    }
}

/// A splitmix64 step: the proxy's own coin for lossy links.
fn coin(state: &AtomicU64) -> u64 {
    let mut z = state
        .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

async fn forward(inbound: TcpStream, target: u16, link: Arc<Mutex<Link>>) {
    let Ok(outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
        return;
    };
    let (ir, iw) = inbound.into_split();
    let (or, ow) = outbound.into_split();
    let seed = Arc::new(AtomicU64::new(
        u64::from(target) << 32 | u64::from(std::process::id()),
    ));
    let up = pipe(ir, ow, link.clone(), seed.clone());
    let down = pipe(or, iw, link, seed);
    tokio::pin!(up, down);
    // A direction that ended at its EOF waits for the other (a half
    // close, as copy_bidirectional); one cut or reset ends both.
    tokio::select! {
        end = &mut up => if end == End::Eof { down.await; },
        end = &mut down => if end == End::Eof { up.await; },
    }
}

#[derive(PartialEq)]
enum End {
    /// The sender closed its side: everything queued was delivered.
    Eof,
    /// Cut, reset, or the receiver gone: the connection ends now.
    Kill,
}

/// Copies one direction, each chunk held back as the link says, in order.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    link: Arc<Mutex<Link>>,
    seed: Arc<AtomicU64>,
) -> End {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return false;
            }
        }
        // every chunk delivered: pass the close on
        to.shutdown().await.is_ok()
    };
    // (the reader's end drops `tx`, so the writer drains and finishes)
    let reader = async move {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_due = Instant::now();
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return End::Eof,
                Ok(n) => n,
            };
            let now = Instant::now();
            let link = *link.lock().expect("link");
            let due = match link {
                Link::Up => now,
                Link::Cut => return End::Kill,
                Link::Delay(d) => now + d,
                Link::Lossy => match coin(&seed) % 100 {
                    0 => return End::Kill, // reset
                    1..=10 => now + Duration::from_millis(200),
                    _ => now,
                },
            };
            // TCP delivers in order: nothing overtakes a held-back chunk
            last_due = last_due.max(due);
            if tx.send((last_due, buf[..n].to_vec())).is_err() {
                return End::Kill;
            }
        }
    };
    tokio::pin!(reader, writer);
    let end = tokio::select! {
        end = &mut reader => end,
        _ = &mut writer => return End::Kill, // the receiver went away
    };
    if end == End::Eof && !writer.await {
        return End::Kill;
    }
    end
}

/// The inode of the socket whose local port is `local` and remote port
/// `remote` on 127.0.0.1 (0 when /proc does not list it).
fn sender_inode(local: u16, remote: u16) -> u64 {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return 0;
    };
    let want_local = format!("0100007F:{local:04X}");
    let want_remote = format!("0100007F:{remote:04X}");
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() > 9 && f[1] == want_local && f[2] == want_remote {
            return f[9].parse().unwrap_or(0);
        }
    }
    0
}

/// The inodes of the sockets process `pid` has open.
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return Vec::new();
    };
    fds.filter_map(|fd| {
        let target = std::fs::read_link(fd.ok()?.path()).ok()?;
        let target = target.to_str()?;
        target
            .strip_prefix("socket:[")?
            .strip_suffix(']')?
            .parse()
            .ok()
    })
    .collect()
}

/// Every link through every proxy back up.
pub fn heal_all(proxies: &[PeerProxy]) {
    for p in proxies {
        p.heal();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server; returns its port.
    async fn echo() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        port
    }

    /// Sends a byte through `s` and waits for it back (None: the
    /// connection ended or nothing came within 2 s).
    async fn round_trip(s: &mut TcpStream) -> Option<Duration> {
        let sent = Instant::now();
        s.write_all(b"x").await.ok()?;
        let mut b = [0u8; 1];
        match tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await {
            Ok(Ok(1)) => Some(sent.elapsed()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn links_act_on_the_connections_of_the_process_they_name() {
        let proxy = PeerProxy::start(echo().await).await.unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        assert!(round_trip(&mut s).await.is_some());

        // another process's link leaves ours alone
        proxy.set_from(1, Link::Cut);
        assert!(round_trip(&mut s).await.is_some());

        // ours delayed: each way, so a round trip takes twice the delay
        proxy.set_from(std::process::id(), Link::Delay(Duration::from_millis(150)));
        let took = round_trip(&mut s).await.expect("delayed, not cut");
        assert!(took >= Duration::from_millis(300), "{took:?}");

        // ours cut: the open connection ends, a new one is closed at once
        proxy.set_from(std::process::id(), Link::Cut);
        assert_eq!(round_trip(&mut s).await, None);
        let mut again = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        assert_eq!(round_trip(&mut again).await, None);

        proxy.heal();
        let mut healed = TcpStream::connect(("127.0.0.1", proxy.port)).await.unwrap();
        assert!(round_trip(&mut healed).await.is_some());

        // the inbound link cuts every sender
        proxy.set_inbound(Link::Cut);
        assert_eq!(round_trip(&mut healed).await, None);
    }
}
