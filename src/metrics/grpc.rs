//! `grpc_server_*` as go-grpc-prometheus exports them for etcd, and the
//! HTTP middleware that records them on the client listeners.
//!
//! The middleware sees each gRPC call as an HTTP/2 request: it counts the
//! call when it starts, counts length-prefixed messages as they cross the
//! request and response bodies, and counts the outcome when `grpc-status`
//! arrives (in the trailers, or in the headers of a trailers-only answer).
//! A response body dropped before its status counts as `Canceled`.
//! As in etcd, every method of etcd's v3 services is registered with zero
//! values at start; Lock and Election calls are counted once they happen.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use prometheus::{HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Registry};

use super::counter_vec;

/// gRPC's status codes by number, named as grpc-go prints them.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

const UNARY: &str = "unary";
const SERVER_STREAM: &str = "server_stream";
const BIDI_STREAM: &str = "bidi_stream";

/// A method of etcd's API: service, method, call type, and whether etcd
/// registers it with zero values at start (v3 services) or not (Lock and
/// Election, registered after go-grpc-prometheus' pass).
struct Method {
    service: &'static str,
    method: &'static str,
    kind: &'static str,
    preregistered: bool,
}

const fn m(service: &'static str, method: &'static str, kind: &'static str) -> Method {
    Method {
        service,
        method,
        kind,
        preregistered: true,
    }
}

const fn late(service: &'static str, method: &'static str, kind: &'static str) -> Method {
    Method {
        service,
        method,
        kind,
        preregistered: false,
    }
}

/// The services of proto/etcdserverpb/rpc.proto, v3lock.proto and
/// v3election.proto.
const METHODS: &[Method] = &[
    m("etcdserverpb.KV", "Range", UNARY),
    m("etcdserverpb.KV", "Put", UNARY),
    m("etcdserverpb.KV", "DeleteRange", UNARY),
    m("etcdserverpb.KV", "Txn", UNARY),
    m("etcdserverpb.KV", "Compact", UNARY),
    m("etcdserverpb.Watch", "Watch", BIDI_STREAM),
    m("etcdserverpb.Lease", "LeaseGrant", UNARY),
    m("etcdserverpb.Lease", "LeaseRevoke", UNARY),
    m("etcdserverpb.Lease", "LeaseKeepAlive", BIDI_STREAM),
    m("etcdserverpb.Lease", "LeaseTimeToLive", UNARY),
    m("etcdserverpb.Lease", "LeaseLeases", UNARY),
    m("etcdserverpb.Cluster", "MemberAdd", UNARY),
    m("etcdserverpb.Cluster", "MemberRemove", UNARY),
    m("etcdserverpb.Cluster", "MemberUpdate", UNARY),
    m("etcdserverpb.Cluster", "MemberList", UNARY),
    m("etcdserverpb.Cluster", "MemberPromote", UNARY),
    m("etcdserverpb.Maintenance", "Alarm", UNARY),
    m("etcdserverpb.Maintenance", "Status", UNARY),
    m("etcdserverpb.Maintenance", "Defragment", UNARY),
    m("etcdserverpb.Maintenance", "Hash", UNARY),
    m("etcdserverpb.Maintenance", "HashKV", UNARY),
    m("etcdserverpb.Maintenance", "Snapshot", SERVER_STREAM),
    m("etcdserverpb.Maintenance", "MoveLeader", UNARY),
    m("etcdserverpb.Maintenance", "Downgrade", UNARY),
    m("etcdserverpb.Auth", "AuthEnable", UNARY),
    m("etcdserverpb.Auth", "AuthDisable", UNARY),
    m("etcdserverpb.Auth", "AuthStatus", UNARY),
    m("etcdserverpb.Auth", "Authenticate", UNARY),
    m("etcdserverpb.Auth", "UserAdd", UNARY),
    m("etcdserverpb.Auth", "UserGet", UNARY),
    m("etcdserverpb.Auth", "UserList", UNARY),
    m("etcdserverpb.Auth", "UserDelete", UNARY),
    m("etcdserverpb.Auth", "UserChangePassword", UNARY),
    m("etcdserverpb.Auth", "UserGrantRole", UNARY),
    m("etcdserverpb.Auth", "UserRevokeRole", UNARY),
    m("etcdserverpb.Auth", "RoleAdd", UNARY),
    m("etcdserverpb.Auth", "RoleGet", UNARY),
    m("etcdserverpb.Auth", "RoleList", UNARY),
    m("etcdserverpb.Auth", "RoleDelete", UNARY),
    m("etcdserverpb.Auth", "RoleGrantPermission", UNARY),
    m("etcdserverpb.Auth", "RoleRevokePermission", UNARY),
    late("v3lockpb.Lock", "Lock", UNARY),
    late("v3lockpb.Lock", "Unlock", UNARY),
    late("v3electionpb.Election", "Campaign", UNARY),
    late("v3electionpb.Election", "Proclaim", UNARY),
    late("v3electionpb.Election", "Leader", UNARY),
    late("v3electionpb.Election", "Observe", SERVER_STREAM),
    late("v3electionpb.Election", "Resign", UNARY),
];

fn lookup(path: &str) -> Option<&'static Method> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    METHODS
        .iter()
        .find(|m| m.service == service && m.method == method)
}

pub struct GrpcMetrics {
    /// Labelled `grpc_type`, `grpc_service`, `grpc_method`.
    pub started: IntCounterVec,
    /// Labelled as `started`, plus `grpc_code`.
    pub handled: IntCounterVec,
    pub msg_received: IntCounterVec,
    pub msg_sent: IntCounterVec,
    /// Only with `--metrics=extensive`.
    handling_seconds: OnceLock<HistogramVec>,
}

const LABELS: [&str; 3] = ["grpc_type", "grpc_service", "grpc_method"];

impl GrpcMetrics {
    pub(super) fn new(r: &Registry) -> Self {
        GrpcMetrics {
            started: counter_vec(
                r,
                "grpc_server_started_total",
                "Total number of RPCs started on the server.",
                &LABELS,
            ),
            handled: counter_vec(
                r,
                "grpc_server_handled_total",
                "Total number of RPCs completed on the server, regardless of success or failure.",
                &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
            ),
            msg_received: counter_vec(
                r,
                "grpc_server_msg_received_total",
                "Total number of RPC stream messages received on the server.",
                &LABELS,
            ),
            msg_sent: counter_vec(
                r,
                "grpc_server_msg_sent_total",
                "Total number of gRPC stream messages sent by the server.",
                &LABELS,
            ),
            handling_seconds: OnceLock::new(),
        }
    }

    pub(super) fn enable_handling_histogram(&self, r: &Registry) {
        self.handling_seconds.get_or_init(|| {
            super::register(
                r,
                HistogramVec::new(
                    HistogramOpts::new(
                        "grpc_server_handling_seconds",
                        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                    )
                    // Prometheus' default buckets, as go-grpc-prometheus uses.
                    .buckets(prometheus::DEFAULT_BUCKETS.to_vec()),
                    &LABELS,
                )
                .expect("valid metric"),
            )
        });
    }

    /// Zero-valued series for every method of etcd's v3 services.
    pub(super) fn preregister_etcd_services(&self) {
        for m in METHODS.iter().filter(|m| m.preregistered) {
            let labels = [m.kind, m.service, m.method];
            self.started.with_label_values(&labels);
            self.msg_received.with_label_values(&labels);
            self.msg_sent.with_label_values(&labels);
            if let Some(h) = self.handling_seconds.get() {
                h.with_label_values(&labels);
            }
            for code in CODES {
                self.handled
                    .with_label_values(&[m.kind, m.service, m.method, code]);
            }
        }
    }
}

/// One gRPC call in flight, with its message counters looked up once.
struct Call {
    method: &'static Method,
    start: Instant,
    finished: AtomicBool,
    received: IntCounter,
    sent: IntCounter,
}

impl Call {
    fn labels(&self) -> [&'static str; 3] {
        [self.method.kind, self.method.service, self.method.method]
    }

    /// Counts the outcome once, whichever way the call ends first.
    fn finish(&self, code: &str) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        let g = super::grpc();
        let [kind, service, method] = self.labels();
        g.handled
            .with_label_values(&[kind, service, method, code])
            .inc();
        if let Some(h) = g.handling_seconds.get() {
            h.with_label_values(&self.labels())
                .observe(self.start.elapsed().as_secs_f64());
        }
    }

    fn finish_with_status(&self, status: Option<&axum::http::HeaderValue>) {
        let code = status
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<usize>().ok())
            .and_then(|n| CODES.get(n))
            .copied()
            .unwrap_or("Unknown");
        self.finish(code);
    }
}

/// Whether a client's `client-api-version` header is a version ("3.5"):
/// it becomes a label value, and labels a client may make up without
/// bound are a memory leak (etcd takes the header as is).
fn is_api_version(v: &str) -> bool {
    let mut parts = v.split('.');
    let number = |p: Option<&str>| {
        p.is_some_and(|p| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    number(parts.next()) && number(parts.next()) && parts.next().is_none()
}

/// The middleware: wraps gRPC requests to etcd's services; anything else
/// (plain HTTP, unknown methods) passes untouched.
pub async fn record(req: Request, next: Next) -> Response {
    let is_grpc = req
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    let method = match lookup(req.uri().path()) {
        Some(m) if is_grpc => m,
        _ => return next.run(req).await,
    };
    let api_version = req
        .headers()
        .get("client-api-version")
        .and_then(|v| v.to_str().ok())
        .filter(|v| is_api_version(v))
        .unwrap_or("unknown")
        .to_string();
    let g = super::grpc();
    let labels = [method.kind, method.service, method.method];
    let call = Arc::new(Call {
        method,
        start: Instant::now(),
        finished: AtomicBool::new(false),
        received: g.msg_received.with_label_values(&labels),
        sent: g.msg_sent.with_label_values(&labels),
    });
    g.started.with_label_values(&labels).inc();
    let kind = if method.kind == UNARY {
        "unary"
    } else {
        "stream"
    };
    super::server()
        .client_requests
        .with_label_values(&[kind, &api_version])
        .inc();
    let req = req.map(|body| Body::new(Counted::new(body, call.clone(), Direction::Received)));
    let resp = next.run(req).await;
    if let Some(status) = resp.headers().get("grpc-status") {
        // A trailers-only answer: the call ended without a message.
        call.finish_with_status(Some(status));
    }
    resp.map(|body| Body::new(Counted::new(body, call, Direction::Sent)))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    Received,
    Sent,
}

/// A body that counts the gRPC messages passing through it.
struct Counted {
    inner: Body,
    call: Arc<Call>,
    direction: Direction,
    frames: MessageCounter,
}

impl Counted {
    fn new(inner: Body, call: Arc<Call>, direction: Direction) -> Self {
        Counted {
            inner,
            call,
            direction,
            frames: MessageCounter::default(),
        }
    }

    fn on_data(&mut self, data: &Bytes) {
        let messages = self.frames.feed(data);
        let n = super::network();
        match self.direction {
            Direction::Received => {
                n.client_grpc_received_bytes.inc_by(data.len() as u64);
                self.call.received.inc_by(messages);
            }
            Direction::Sent => {
                n.client_grpc_sent_bytes.inc_by(data.len() as u64);
                self.call.sent.inc_by(messages);
            }
        }
    }
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    this.on_data(&data);
                }
                if let Some(trailers) = frame.trailers_ref() {
                    if this.direction == Direction::Sent {
                        this.call.finish_with_status(trailers.get("grpc-status"));
                    }
                }
            }
            Poll::Ready(Some(Err(_))) | Poll::Ready(None) => {
                if this.direction == Direction::Sent {
                    // Ended without a status: not a well-formed gRPC answer.
                    this.call.finish("Unknown");
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.direction == Direction::Sent {
            // The client went away before the answer was complete.
            self.call.finish("Canceled");
        }
    }
}

/// Counts gRPC's length-prefixed messages (1 flag byte, 4 length bytes,
/// payload) across arbitrary chunk boundaries.
#[derive(Default)]
struct MessageCounter {
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
}

impl MessageCounter {
    /// Feeds a chunk; returns how many messages began in it.
    fn feed(&mut self, mut data: &[u8]) -> u64 {
        let mut started = 0;
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len() as u64) as usize;
                self.remaining -= take as u64;
                data = &data[take..];
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 5 {
                started += 1;
                self.header_len = 0;
                let len = [
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ];
                self.remaining = u64::from(u32::from_be_bytes(len));
            }
        }
        started
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn counts_messages_across_chunks() {
        let mut stream = frame(b"hello");
        stream.extend(frame(b""));
        stream.extend(frame(&[7; 300]));
        for chunk in [1, 2, 3, 5, 7, 64, 1000] {
            let mut c = MessageCounter::default();
            let n: u64 = stream.chunks(chunk).map(|c2| c.feed(c2)).sum();
            assert_eq!(n, 3, "chunk size {chunk}");
            assert_eq!((c.header_len, c.remaining), (0, 0));
        }
    }

    #[test]
    fn method_table() {
        let range = lookup("/etcdserverpb.KV/Range").expect("Range");
        assert_eq!((range.kind, range.preregistered), ("unary", true));
        assert_eq!(
            lookup("/etcdserverpb.Watch/Watch").map(|m| m.kind),
            Some("bidi_stream")
        );
        assert_eq!(
            lookup("/v3electionpb.Election/Observe").map(|m| (m.kind, m.preregistered)),
            Some(("server_stream", false))
        );
        assert!(lookup("/etcdserverpb.KV/Nope").is_none());
        assert!(lookup("/version").is_none());
    }

    #[test]
    fn only_versions_become_api_version_labels() {
        for v in ["3.5", "3.4", "10.12"] {
            assert!(is_api_version(v), "{v}");
        }
        for v in [
            "",
            "3",
            "3.5.1",
            "v3.5",
            "3.x",
            "123.4",
            "a-made-up-label",
            "3..5",
        ] {
            assert!(!is_api_version(v), "{v}");
        }
    }
}
