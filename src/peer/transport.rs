//! The sending side of the peer port. See the module docs of `peer`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::io::AsyncReadExt as _;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};

use crate::cluster::Membership;
use crate::proto::peer::peer_client::PeerClient;
use crate::proto::peer::{ProbeRequest, RaftBatch, Route, SnapshotChunk};
use crate::storage::snapshot::Snapshotter;
use crate::tls::ReloadableTls;

/// Raft messages queued per remote member (etcd's streamBufSize is 4096).
const QUEUE: usize = 4096;
/// One batch on the wire carries at most this many messages / bytes.
const BATCH_MESSAGES: usize = 512;
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// Round-trip probes (etcd probes every 30 s; often enough to show in the
/// histogram, rare enough to cost nothing).
const PROBE_EVERY: Duration = Duration::from_secs(5);
/// Snapshot chunk size.
const CHUNK: usize = 1 << 20;

/// What the transport tells raft about delivery (etcd's rafthttp `Raft`
/// interface: ReportUnreachable, ReportSnapshot). The raft layer implements
/// it, so the transport below raft never names raft's messages.
pub trait DeliveryReports: Send + Sync {
    /// A message to `to` could not be delivered.
    fn unreachable(&self, to: u64);
    /// Sending a snapshot to `to` finished (`ok`) or failed.
    fn snapshot_status(&self, to: u64, ok: bool);
}

struct Peer {
    url: String,
    tx: mpsc::Sender<Message>,
    /// When the current connection was established; `None` while down.
    active_since: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
}

pub struct Transport {
    local_id: u64,
    cluster_id: u64,
    membership: Arc<Membership>,
    snapshots: Arc<Snapshotter>,
    reports: Box<dyn DeliveryReports>,
    runtime: tokio::runtime::Handle,
    peers: Mutex<HashMap<u64, Peer>>,
    /// Set when a peer tells us we were removed from the cluster.
    removed: tokio::sync::watch::Sender<bool>,
    /// Peer TLS: used towards https:// peer URLs.
    tls: Option<Arc<ReloadableTls>>,
}

impl Transport {
    pub fn new(
        membership: Arc<Membership>,
        snapshots: Arc<Snapshotter>,
        reports: Box<dyn DeliveryReports>,
        runtime: tokio::runtime::Handle,
        tls: Option<Arc<ReloadableTls>>,
    ) -> Arc<Self> {
        Arc::new(Transport {
            local_id: membership.local_id,
            cluster_id: membership.cluster_id,
            membership,
            snapshots,
            reports,
            runtime,
            peers: Mutex::new(HashMap::new()),
            removed: tokio::sync::watch::Sender::new(false),
            tls,
        })
    }

    /// This member was removed from the cluster: it stops.
    pub fn mark_removed(&self) {
        self.removed.send_replace(true);
    }

    /// Turns true when this member learns it was removed.
    /// This member's peer TLS, for other connections to peer URLs.
    pub fn tls(&self) -> Option<&ReloadableTls> {
        self.tls.as_deref()
    }

    pub fn removed(&self) -> tokio::sync::watch::Receiver<bool> {
        self.removed.subscribe()
    }

    fn route(&self, to: u64) -> Route {
        Route {
            cluster_id: self.cluster_id,
            from: self.local_id,
            to,
        }
    }

    /// Queues raft messages for their members. Called by the raft thread;
    /// never blocks.
    pub fn send(self: &Arc<Self>, msgs: Vec<Message>) {
        for m in msgs {
            if m.to == self.local_id || m.to == 0 {
                continue;
            }
            if m.get_msg_type() == MessageType::MsgSnapshot {
                let this = self.clone();
                self.runtime
                    .spawn(async move { this.send_snapshot(m).await });
                continue;
            }
            let to = m.to;
            let heartbeat = m.get_msg_type() == MessageType::MsgHeartbeat;
            let Some(tx) = self.queue(to) else {
                // Not a member (yet): raft will try again.
                continue;
            };
            if tx.try_send(m).is_err() {
                let net = crate::metrics::network();
                net.peer_sent_failures
                    .with_label_values(&[&format!("{to:x}")])
                    .inc();
                if heartbeat {
                    crate::metrics::server().heartbeat_send_failures.inc();
                }
                self.reports.unreachable(to);
            }
        }
    }

    /// The queue of member `to`, starting its sender when needed (and
    /// restarting it when the member's peer URL changed).
    fn queue(self: &Arc<Self>, to: u64) -> Option<mpsc::Sender<Message>> {
        let url = self.membership.member(to)?.peer_urls.first()?.clone();
        let mut peers = self.peers.lock().expect("peers lock");
        if let Some(p) = peers.get(&to) {
            if p.url == url && !p.tx.is_closed() {
                return Some(p.tx.clone());
            }
            p.stop.store(true, Ordering::Release);
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let peer = Peer {
            url: url.clone(),
            tx: tx.clone(),
            active_since: Arc::default(),
            stop: Arc::default(),
        };
        let sender = PeerSender {
            transport: self.clone(),
            to,
            url,
            active_since: peer.active_since.clone(),
            stop: peer.stop.clone(),
        };
        self.runtime.spawn(sender.run(rx));
        peers.insert(to, peer);
        Some(tx)
    }

    /// Since when the connection to `id` has been up (etcd's ActiveSince).
    pub fn active_since(&self, id: u64) -> Option<Instant> {
        let peers = self.peers.lock().expect("peers lock");
        peers
            .get(&id)
            .and_then(|p| *p.active_since.lock().expect("active lock"))
    }

    /// Stops talking to a removed member.
    pub fn remove_peer(&self, id: u64) {
        if let Some(p) = self.peers.lock().expect("peers lock").remove(&id) {
            p.stop.store(true, Ordering::Release);
        }
    }

    /// Starts senders to every other member, so connections (and
    /// `active_since`, which --strict-reconfig-check reads) exist before
    /// raft has anything to say to them: a follower talks only to the
    /// leader, but it must know which members are up.
    pub fn connect_all(self: &Arc<Self>) {
        for m in self.membership.members() {
            self.connect(m.id);
        }
    }

    /// Starts (or, after a peer URL change, restarts) the sender to `id`.
    pub fn connect(self: &Arc<Self>, id: u64) {
        if id != self.local_id {
            let _ = self.queue(id);
        }
    }

    /// Streams the snapshot file named by the message to its member and
    /// tells raft how it went.
    async fn send_snapshot(self: Arc<Self>, m: Message) {
        let to = m.to;
        let index = m.get_snapshot().get_metadata().index;
        let result = self.try_send_snapshot(m).await;
        let ok = match &result {
            Ok(bytes) => {
                tracing::info!(
                    to = format!("{to:x}"),
                    index,
                    bytes,
                    "sent database snapshot to a member"
                );
                true
            }
            Err(e) => {
                tracing::warn!(to = format!("{to:x}"), index, error = %format!("{e:#}"), "failed to send database snapshot");
                false
            }
        };
        self.reports.snapshot_status(to, ok);
    }

    async fn try_send_snapshot(&self, m: Message) -> anyhow::Result<u64> {
        use anyhow::Context as _;
        let to = m.to;
        let index = m.get_snapshot().get_metadata().index;
        let path = self.snapshots.path(index);
        let url = self
            .membership
            .member(to)
            .and_then(|p| p.peer_urls.first().cloned())
            .context("no peer URL")?;
        let mut file = tokio::fs::File::open(&path)
            .await
            .with_context(|| format!("open {}", path.display()))?;
        let total = file.metadata().await?.len();
        let message = m.write_to_bytes()?;
        let (tx, rx) = mpsc::channel::<SnapshotChunk>(4);
        let route = self.route(to);
        let reader = async move {
            let mut crc = 0u32;
            let _ = tx
                .send(SnapshotChunk {
                    route: Some(route),
                    message,
                    total_bytes: total,
                    ..Default::default()
                })
                .await;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = file.read(&mut buf).await?;
                if n == 0 {
                    break;
                }
                crc = crc32c::crc32c_append(crc, &buf[..n]);
                if tx
                    .send(SnapshotChunk {
                        data: buf[..n].to_vec(),
                        ..Default::default()
                    })
                    .await
                    .is_err()
                {
                    return Ok::<_, std::io::Error>(());
                }
                // a chunk is on its way, the rest and the checksum are not
                crate::failpoint!("raftMidSnapshotSend");
            }
            let _ = tx
                .send(SnapshotChunk {
                    done: true,
                    crc32c: crc,
                    ..Default::default()
                })
                .await;
            Ok(())
        };
        let mut client = PeerClient::new(connect(&url, self.tls.as_deref()).await?)
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        let call = client.snapshot(tokio_stream::wrappers::ReceiverStream::new(rx));
        let (sent, read) = tokio::join!(call, reader);
        read?;
        sent.map_err(|s| anyhow::anyhow!("{}", s.message()))?;
        crate::metrics::network()
            .peer_sent_bytes
            .with_label_values(&[&format!("{to:x}")])
            .inc_by(total);
        Ok(total)
    }
}

/// A channel to a member's peer URL; TLS (with this member's peer
/// certificate, checked against --peer-trusted-ca-file) for https:// URLs.
pub async fn connect(url: &str, tls: Option<&ReloadableTls>) -> anyhow::Result<Channel> {
    PeerEndpoint::new(url, tls, |e| {
        e.connect_timeout(Duration::from_secs(1))
            .http2_keep_alive_interval(Duration::from_secs(2))
            .keep_alive_timeout(Duration::from_secs(5))
    })?
    .connect()
    .await
}

/// How to reach a member's peer URL: plain for http://; for https:// TLS
/// with this member's peer certificate, trusted CA, cipher suites and
/// --tls-min-version/--tls-max-version, as etcd's peer transport uses the
/// same TLSInfo as its peer listener. Without peer TLS configured no
/// certificate can be trusted, as in etcd.
pub struct PeerEndpoint {
    endpoint: Endpoint,
    tls: Option<TlsConnect>,
}

impl PeerEndpoint {
    /// `tune` sets timeouts and keep-alives.
    pub fn new(
        url: &str,
        tls: Option<&ReloadableTls>,
        tune: impl FnOnce(Endpoint) -> Endpoint,
    ) -> anyhow::Result<PeerEndpoint> {
        let Some(address) = url.strip_prefix("https://") else {
            let endpoint = Endpoint::from_shared(url.to_string())?.tcp_nodelay(true);
            return Ok(PeerEndpoint {
                endpoint: tune(endpoint),
                tls: None,
            });
        };
        let config = match tls {
            Some(tls) => tls.client_config()?,
            None => Arc::new(
                rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(crate::tls::verify::ChainUnchecked {
                    provider: Arc::new(rustls::crypto::ring::default_provider()),
                    accept_any: false,
                }))
                .with_no_client_auth(),
            ),
        };
        let uri: tonic::transport::Uri = url.parse()?;
        let host = uri
            .host()
            .ok_or_else(|| anyhow::anyhow!("peer URL {url} has no host"))?;
        let server_name =
            rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_string())?;
        // tonic's own TLS always offers TLS 1.2 and 1.3 and cannot take a
        // rustls config, and refuses https:// without it: the endpoint
        // names the address as http:// and `TlsConnect` does the TLS.
        let endpoint = Endpoint::from_shared(format!("http://{address}"))?;
        Ok(PeerEndpoint {
            endpoint: tune(endpoint),
            tls: Some(TlsConnect {
                config,
                server_name,
            }),
        })
    }

    pub async fn connect(&self) -> anyhow::Result<Channel> {
        Ok(match &self.tls {
            None => self.endpoint.connect().await?,
            Some(tls) => self.endpoint.connect_with_connector(tls.clone()).await?,
        })
    }

    /// A channel that connects on its first request.
    pub fn connect_lazy(&self) -> Channel {
        match &self.tls {
            None => self.endpoint.connect_lazy(),
            Some(tls) => self.endpoint.connect_with_connector_lazy(tls.clone()),
        }
    }
}

/// Opens TCP then TLS to the URI's address with one rustls config.
#[derive(Clone)]
struct TlsConnect {
    config: Arc<rustls::ClientConfig>,
    server_name: rustls::pki_types::ServerName<'static>,
}

type TlsIo = hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

impl tonic::codegen::Service<tonic::transport::Uri> for TlsConnect {
    type Response = TlsIo;
    type Error = std::io::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<TlsIo, std::io::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), std::io::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: tonic::transport::Uri) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
            let port = uri.port_u16().unwrap_or(443);
            let tcp = tokio::net::TcpStream::connect((host, port)).await?;
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(this.config)
                .connect(this.server_name, tcp)
                .await?;
            Ok(hyper_util::rt::TokioIo::new(tls))
        })
    }
}

/// The task that owns the connection to one member.
struct PeerSender {
    transport: Arc<Transport>,
    to: u64,
    url: String,
    active_since: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
}

impl PeerSender {
    async fn run(self, mut rx: mpsc::Receiver<Message>) {
        let label = format!("{:x}", self.to);
        let local = format!("{:x}", self.transport.local_id);
        let net = crate::metrics::network();
        let mut backoff = BACKOFF_MIN;
        let mut logged_down = false;
        while !self.stop.load(Ordering::Acquire) {
            let channel = match connect(&self.url, self.transport.tls.as_deref()).await {
                Ok(c) => c,
                Err(e) => {
                    if !logged_down {
                        tracing::warn!(remote_peer_id = label.as_str(), url = self.url.as_str(), error = %format!("{e:#}"), "peer is unreachable; retrying");
                        logged_down = true;
                    }
                    // Raft must not wait on a dead member: drop what queued.
                    let mut dropped = false;
                    while rx.try_recv().is_ok() {
                        dropped = true;
                    }
                    if dropped {
                        net.peer_sent_failures.with_label_values(&[&label]).inc();
                        self.transport.reports.unreachable(self.to);
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            backoff = BACKOFF_MIN;
            let (btx, brx) = mpsc::channel::<RaftBatch>(16);
            let mut client = PeerClient::new(channel.clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX);
            let mut call = tokio::spawn(async move {
                client
                    .raft(tokio_stream::wrappers::ReceiverStream::new(brx))
                    .await
            });
            let probe = tokio::spawn(probe(
                PeerClient::new(channel),
                self.transport.route(self.to),
                label.clone(),
            ));
            *self.active_since.lock().expect("active lock") = Some(Instant::now());
            net.active_peers.with_label_values(&[&local, &label]).inc();
            tracing::info!(
                remote_peer_id = label.as_str(),
                "established a stream to a remote peer"
            );
            logged_down = false;
            let ended = loop {
                if self.stop.load(Ordering::Acquire) {
                    break None;
                }
                tokio::select! {
                    m = rx.recv() => {
                        let Some(m) = m else { break None };
                        let batch = self.batch(m, &mut rx);
                        let bytes: usize = batch.messages.iter().map(Vec::len).sum();
                        if btx.send(batch).await.is_err() {
                            break None;
                        }
                        net.peer_sent_bytes.with_label_values(&[&label]).inc_by(bytes as u64);
                    }
                    r = &mut call => break Some(r),
                }
            };
            probe.abort();
            *self.active_since.lock().expect("active lock") = None;
            net.active_peers.with_label_values(&[&local, &label]).dec();
            net.disconnected_peers
                .with_label_values(&[&local, &label])
                .inc();
            drop(btx);
            let result = match ended {
                Some(r) => r,
                None => call.await,
            };
            match result {
                Ok(Err(status)) if status.message() == super::REMOVED_MEMBER => {
                    tracing::error!(remote_peer_id = label.as_str(), "{}", super::REMOVED_MEMBER);
                    self.transport.removed.send_replace(true);
                    return;
                }
                Ok(Err(status)) => {
                    tracing::warn!(
                        remote_peer_id = label.as_str(),
                        error = status.message(),
                        "lost the stream to a remote peer"
                    );
                }
                _ => tracing::info!(
                    remote_peer_id = label.as_str(),
                    "closed the stream to a remote peer"
                ),
            }
            if rx.is_closed() {
                return;
            }
            self.transport.reports.unreachable(self.to);
            tokio::time::sleep(backoff).await;
        }
    }

    /// `first` and whatever else is queued, up to the batch bounds.
    fn batch(&self, first: Message, rx: &mut mpsc::Receiver<Message>) -> RaftBatch {
        let mut messages = Vec::new();
        let mut bytes = 0;
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m.write_to_bytes() {
                Ok(b) => {
                    bytes += b.len();
                    messages.push(b);
                }
                Err(e) => tracing::error!(error = %e, "cannot encode a raft message"),
            }
            if messages.len() < BATCH_MESSAGES && bytes < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        RaftBatch {
            route: Some(self.transport.route(self.to)),
            messages,
        }
    }
}

/// Measures the round trip to a member until aborted.
async fn probe(mut client: PeerClient<Channel>, route: Route, label: String) {
    let rtt = crate::metrics::network()
        .peer_round_trip_time
        .with_label_values(&[&label]);
    loop {
        let started = Instant::now();
        if client
            .probe(ProbeRequest { route: Some(route) })
            .await
            .is_ok()
        {
            rtt.observe(started.elapsed().as_secs_f64());
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}
