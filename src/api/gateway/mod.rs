//! etcd's JSON gateway: every v3 RPC over plain HTTP/1.1 on the client
//! port (`POST /v3/...`, and `/v3beta/...` rewritten to it), as etcd 3.4
//! serves it through grpc-gateway and as Patroni, etcd3-py and curl use it.
//!
//! A request is translated, not reimplemented: its JSON body becomes the
//! protobuf request (`json`), which is sent in-process to the same gRPC
//! services the client port serves (the router, as a tower service: no
//! second connection), with the `Authorization` header as the
//! `authorization` metadata etcd reads its token from; the gRPC answer
//! comes back as JSON, a gRPC error as grpc-gateway's error body and
//! HTTP status. So every check (auth, limits, validation) is the gRPC
//! path's own. Streams (watch, lease keep-alive, snapshot, election
//! observe) answer `{"result":...}` lines as messages arrive. As in etcd,
//! the caller's TLS certificate is not an identity here (see
//! `super::access`, which also adds CORS headers, answers OPTIONS and
//! rewrites /v3beta/).
//!
//! The behaviour followed is Debian's etcd 3.4.23 (grpc-gateway runtime
//! 1.6.4), captured in docs/design/json-gateway.md.

pub mod grpc;
pub mod json;
mod values;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use prost_reflect::MethodDescriptor;
use tower::ServiceExt as _;

use super::access::after_reading;
use super::health::go_error;
use grpc::{Deframer, GrpcStatus};
use values::JsonValues;

/// The gateway's paths (after `/v3/`) and the RPCs they call, as etcd
/// 3.4's rpc.pb.gw.go, v3lock and v3election gateways route them.
const PATHS: &[(&str, &str, &str)] = &[
    ("kv/range", "etcdserverpb.KV", "Range"),
    ("kv/put", "etcdserverpb.KV", "Put"),
    ("kv/deleterange", "etcdserverpb.KV", "DeleteRange"),
    ("kv/txn", "etcdserverpb.KV", "Txn"),
    ("kv/compaction", "etcdserverpb.KV", "Compact"),
    ("watch", "etcdserverpb.Watch", "Watch"),
    ("lease/grant", "etcdserverpb.Lease", "LeaseGrant"),
    ("lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("kv/lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("lease/keepalive", "etcdserverpb.Lease", "LeaseKeepAlive"),
    ("lease/timetolive", "etcdserverpb.Lease", "LeaseTimeToLive"),
    (
        "kv/lease/timetolive",
        "etcdserverpb.Lease",
        "LeaseTimeToLive",
    ),
    ("lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("kv/lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("cluster/member/add", "etcdserverpb.Cluster", "MemberAdd"),
    (
        "cluster/member/remove",
        "etcdserverpb.Cluster",
        "MemberRemove",
    ),
    (
        "cluster/member/update",
        "etcdserverpb.Cluster",
        "MemberUpdate",
    ),
    ("cluster/member/list", "etcdserverpb.Cluster", "MemberList"),
    (
        "cluster/member/promote",
        "etcdserverpb.Cluster",
        "MemberPromote",
    ),
    ("maintenance/alarm", "etcdserverpb.Maintenance", "Alarm"),
    ("maintenance/status", "etcdserverpb.Maintenance", "Status"),
    (
        "maintenance/defragment",
        "etcdserverpb.Maintenance",
        "Defragment",
    ),
    // etcd's gateway routes HashKV here too, and Hash wins: HashKV is
    // not reachable over JSON in etcd 3.4
    ("maintenance/hash", "etcdserverpb.Maintenance", "Hash"),
    (
        "maintenance/snapshot",
        "etcdserverpb.Maintenance",
        "Snapshot",
    ),
    (
        "maintenance/transfer-leadership",
        "etcdserverpb.Maintenance",
        "MoveLeader",
    ),
    ("auth/enable", "etcdserverpb.Auth", "AuthEnable"),
    ("auth/disable", "etcdserverpb.Auth", "AuthDisable"),
    ("auth/authenticate", "etcdserverpb.Auth", "Authenticate"),
    ("auth/user/add", "etcdserverpb.Auth", "UserAdd"),
    ("auth/user/get", "etcdserverpb.Auth", "UserGet"),
    ("auth/user/list", "etcdserverpb.Auth", "UserList"),
    ("auth/user/delete", "etcdserverpb.Auth", "UserDelete"),
    (
        "auth/user/changepw",
        "etcdserverpb.Auth",
        "UserChangePassword",
    ),
    ("auth/user/grant", "etcdserverpb.Auth", "UserGrantRole"),
    ("auth/user/revoke", "etcdserverpb.Auth", "UserRevokeRole"),
    ("auth/role/add", "etcdserverpb.Auth", "RoleAdd"),
    ("auth/role/get", "etcdserverpb.Auth", "RoleGet"),
    ("auth/role/list", "etcdserverpb.Auth", "RoleList"),
    ("auth/role/delete", "etcdserverpb.Auth", "RoleDelete"),
    (
        "auth/role/grant",
        "etcdserverpb.Auth",
        "RoleGrantPermission",
    ),
    (
        "auth/role/revoke",
        "etcdserverpb.Auth",
        "RoleRevokePermission",
    ),
    ("lock/lock", "v3lockpb.Lock", "Lock"),
    ("lock/unlock", "v3lockpb.Lock", "Unlock"),
    ("election/campaign", "v3electionpb.Election", "Campaign"),
    ("election/proclaim", "v3electionpb.Election", "Proclaim"),
    ("election/leader", "v3electionpb.Election", "Leader"),
    ("election/observe", "v3electionpb.Election", "Observe"),
    ("election/resign", "v3electionpb.Election", "Resign"),
];

struct Gateway {
    /// The gRPC services, called in-process.
    grpc: Router,
    /// The largest request body read (JSON is larger than the protobuf it
    /// carries; the gRPC decoder enforces etcd's own limit after it).
    max_body: usize,
}

/// The gateway's routes, calling into `grpc` (the client port's gRPC
/// services); `max_request` is the gRPC receive limit.
pub fn routes(grpc: Router, max_request: usize) -> Router {
    let gateway = Arc::new(Gateway {
        grpc,
        // base64 is 4/3 of the bytes it carries; JSON's names and quotes
        // are the rest
        max_body: max_request.saturating_mul(2).saturating_add(1 << 20),
    });
    // (/v3beta/ is rewritten to /v3/ before routing: super::access)
    Router::new()
        .route("/v3/", any(handle))
        .route("/v3/{*path}", any(handle))
        .with_state(gateway)
}

fn find(path: &str) -> Option<MethodDescriptor> {
    let (_, service, method) = PATHS.iter().find(|(p, _, _)| *p == path)?;
    json::pool()
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == *method)
}

/// How Go's net/http frames a body written in one piece: past its
/// 2048-byte buffer it goes out chunked, within it with a Content-Length.
/// (Clients do not care; curl -v shows it.)
fn go_framed(body: String) -> Body {
    if body.len() > 2048 {
        Body::from_stream(futures::stream::once(async move {
            Ok::<_, std::convert::Infallible>(Bytes::from(body))
        }))
    } else {
        Body::from(body)
    }
}

fn json_response(status: StatusCode, body: String, with_grpc_metadata: bool) -> Response {
    let mut r = (status, go_framed(body)).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if with_grpc_metadata {
        h.insert(
            "grpc-metadata-content-type",
            HeaderValue::from_static("application/grpc"),
        );
    }
    r
}

/// grpc-gateway's error body: `{"error":M,"message":M,"code":N}`.
fn error_body(status: &GrpcStatus) -> String {
    let body = serde_json::json!({
        "error": status.message,
        "message": status.message,
        "code": status.code,
    });
    json::go_escape(&body.to_string())
}

/// An error of the gateway's own (a body it cannot read, its deadline).
fn error_response(status: &GrpcStatus) -> Response {
    json_response(grpc::http_status(status.code), error_body(status), false)
}

/// An error the gRPC service answered with: etcd's gateway gets it as a
/// trailers-only response and passes the trailer on, so Go sends it
/// chunked with `Trailer: Grpc-Trailer-Content-Type` (the trailer itself
/// only to clients that accept trailers: hyper's rule, TE: trailers).
fn server_error_response(status: &GrpcStatus) -> Response {
    let mut trailers = HeaderMap::new();
    trailers.insert(
        "grpc-trailer-content-type",
        HeaderValue::from_static("application/grpc"),
    );
    let frames = futures::stream::iter([
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(error_body(status)))),
        Ok(http_body::Frame::trailers(trailers)),
    ]);
    let mut r = Response::new(Body::new(http_body_util::StreamBody::new(frames)));
    *r.status_mut() = grpc::http_status(status.code);
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(
        header::TRAILER,
        HeaderValue::from_static("Grpc-Trailer-Content-Type"),
    );
    r
}

fn invalid_argument(message: String) -> Response {
    error_response(&GrpcStatus { code: 3, message })
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    let rest = req.uri().path().strip_prefix("/v3/").unwrap_or_default();
    let Some(method) = find(rest) else {
        let r = go_error(StatusCode::NOT_FOUND, "Not Found");
        return after_reading(req.into_body(), r).await;
    };
    // grpc-gateway's X-HTTP-Method-Override, for a POST of a form only: Go
    // parses the form first, so a POST override leaves no body to decode
    let (parts, mut body) = req.into_parts();
    let mut http_method = parts.method.clone();
    if let Some(over) = method_override(&parts) {
        http_method =
            Method::from_bytes(over.to_ascii_uppercase().as_bytes()).unwrap_or(Method::GET);
        if http_method == Method::POST {
            let _ = after_reading(body, Response::default()).await;
            body = Body::empty();
        }
    }
    if http_method != Method::POST {
        let r = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
        return after_reading(body, r).await;
    }
    // tonic's server applies the same header to the whole HTTP request
    // (and would answer with a bare gRPC status): the gateway's deadline
    // comes a little earlier, so that its answer is the one sent
    let deadline = match grpc_timeout(&parts.headers) {
        Ok(d) => d.map(|d| {
            let margin = (d / 2).min(std::time::Duration::from_millis(20));
            tokio::time::Instant::now() + d - margin
        }),
        Err(bad) => {
            let r = invalid_argument(format!("invalid grpc-timeout: {bad}"));
            return after_reading(body, r).await;
        }
    };
    let call = Call {
        gw,
        method,
        parts,
        deadline,
    };
    if call.method.is_client_streaming() {
        call.bidi(body).await
    } else if call.method.is_server_streaming() {
        call.server_stream(body).await
    } else {
        call.unary(body).await
    }
}

/// The `X-HTTP-Method-Override` grpc-gateway honours: on a POST whose
/// Content-Type is exactly a form's.
fn method_override(parts: &axum::http::request::Parts) -> Option<String> {
    let form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v == "application/x-www-form-urlencoded");
    if parts.method != Method::POST || !form {
        return None;
    }
    let over = parts.headers.get("x-http-method-override")?.to_str().ok()?;
    (!over.is_empty()).then(|| over.to_string())
}

/// The `Grpc-Timeout` header (gRPC's format: up to 8 digits and a unit),
/// which the gateway turns into the call's deadline; the bad value, when
/// it is not one.
fn grpc_timeout(headers: &HeaderMap) -> Result<Option<std::time::Duration>, String> {
    use std::time::Duration;
    let Some(v) = headers.get("grpc-timeout") else {
        return Ok(None);
    };
    let text = v.to_str().map_err(|_| "(not text)".to_string())?;
    let bad = || text.to_string();
    let (digits, unit) = text.split_at(text.len().saturating_sub(1));
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    Ok(Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(bad()),
    }))
}

/// Metadata names a caller may not set through `Grpc-Metadata-*`: the
/// ones gRPC itself owns (grpc-go drops them too).
fn reserved_metadata(name: &str) -> bool {
    matches!(
        name,
        "content-type" | "te" | "user-agent" | "host" | "connection"
    ) || name.starts_with("grpc-")
        || name.starts_with(':')
}

fn deadline_exceeded() -> GrpcStatus {
    GrpcStatus {
        code: 4,
        message: "context deadline exceeded".into(),
    }
}

/// One gateway request on its way to the gRPC service.
struct Call {
    gw: Arc<Gateway>,
    method: MethodDescriptor,
    parts: axum::http::request::Parts,
    deadline: Option<tokio::time::Instant>,
}

impl Call {
    /// The in-process gRPC request: the metadata etcd's gateway forwards
    /// (the `Authorization` header as-is, `Grpc-Metadata-*` headers without
    /// the prefix) and the peer's address. Not the TLS certificate: through
    /// the gateway it is no identity (as in etcd).
    fn grpc_request(&self, body: Body) -> Request {
        let uri = format!(
            "/{}/{}",
            self.method.parent_service().full_name(),
            self.method.name()
        );
        let mut inner = Request::new(body);
        *inner.method_mut() = Method::POST;
        *inner.uri_mut() = uri.parse().expect("a service path is a URI");
        let h = inner.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/grpc"),
        );
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        for (name, value) in &self.parts.headers {
            if name == header::AUTHORIZATION {
                h.append(header::AUTHORIZATION, value.clone());
            } else if let Some(key) = name.as_str().strip_prefix("grpc-metadata-") {
                if reserved_metadata(key) {
                    continue;
                }
                if let Ok(key) = axum::http::HeaderName::from_bytes(key.as_bytes()) {
                    h.append(key, value.clone());
                }
            }
        }
        if let Some(tcp) = self
            .parts
            .extensions
            .get::<tonic::transport::server::TcpConnectInfo>()
        {
            inner.extensions_mut().insert(tcp.clone());
        }
        inner
    }

    /// Reads the whole request body, bounded (one announced past the
    /// bound is refused before it is read).
    async fn read_body(&self, body: Body) -> Result<Bytes, Response> {
        let too_large = || {
            error_response(&GrpcStatus {
                code: 8,
                message: format!(
                    "grpc: received message larger than max (more than {} bytes of JSON)",
                    self.gw.max_body
                ),
            })
        };
        let announced = self
            .parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if announced.is_some_and(|n| n > self.gw.max_body as u64) {
            return Err(too_large());
        }
        match axum::body::to_bytes(body, self.gw.max_body).await {
            Ok(b) => Ok(b),
            Err(e) => {
                let too_large_body = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                Err(if too_large_body {
                    too_large()
                } else {
                    invalid_argument(format!("read the request body: {e}"))
                })
            }
        }
    }

    /// Sends `inner` to the gRPC services; the answer's head.
    async fn send(&self, inner: Request) -> axum::http::Response<Body> {
        match self.gw.grpc.clone().oneshot(inner).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }

    /// `f` unless the deadline passes first.
    async fn in_time<T>(&self, f: impl std::future::Future<Output = T>) -> Option<T> {
        match self.deadline {
            None => Some(f.await),
            Some(at) => tokio::time::timeout_at(at, f).await.ok(),
        }
    }

    async fn unary(self, body: Body) -> Response {
        let body = match self.read_body(body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let message = match json::decode_request(&self.method.input(), &body) {
            Ok(m) => m,
            Err(e) => return invalid_argument(e.0),
        };
        let inner = self.grpc_request(Body::from(grpc::frame(&message)));
        let answer = async {
            let (parts, mut body) = self.send(inner).await.into_parts();
            if let Some(status) = grpc::status_of(&parts.headers).filter(|s| s.code != 0) {
                return Err(status);
            }
            let mut deframer = Deframer::default();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| GrpcStatus {
                    code: 13,
                    message: e.to_string(),
                })?;
                if let Some(data) = frame.data_ref() {
                    deframer.push(data);
                } else if let Some(trailers) = frame.trailers_ref() {
                    if let Some(s) = grpc::status_of(trailers).filter(|s| s.code != 0) {
                        return Err(s);
                    }
                }
            }
            Ok(deframer
                .next_message()
                .map_err(|e| GrpcStatus {
                    code: 13,
                    message: e,
                })?
                .unwrap_or_default())
        };
        let message = match self.in_time(answer).await {
            None => return error_response(&deadline_exceeded()),
            Some(Err(status)) => return server_error_response(&status),
            Some(Ok(m)) => m,
        };
        match json::encode_response(&self.method.output(), &message) {
            Ok(text) => json_response(StatusCode::OK, text, true),
            Err(e) => error_response(&GrpcStatus {
                code: 13,
                message: e,
            }),
        }
    }

    /// Snapshot and election observe: one request object, a stream back.
    async fn server_stream(self, body: Body) -> Response {
        let body = match self.read_body(body).await {
            Ok(b) => b,
            Err(r) => return r,
        };
        let message = match json::decode_request(&self.method.input(), &body) {
            Ok(m) => m,
            Err(e) => return invalid_argument(e.0),
        };
        let inner = self.grpc_request(Body::from(grpc::frame(&message)));
        self.stream_back(inner).await
    }

    /// Watch and lease keep-alive: the request objects as they arrive in
    /// the body, a stream back. When the body ends the request stream
    /// ends: keep-alive then ends its answer, the watch goes on until the
    /// client leaves (as etcd's servers do).
    async fn bidi(self, body: Body) -> Response {
        let mut reader = JsonValues::new(body, self.gw.max_body);
        // The first object decides the answer: a body that is not JSON is
        // refused before the call (etcd: 500, code Unknown).
        let first = match reader.next().await {
            Ok(v) => v,
            Err(e) => {
                return error_response(&GrpcStatus {
                    code: 2,
                    message: e,
                })
            }
        };
        let input = self.method.input();
        let first = match first {
            None => None, // an empty body: nothing to send
            Some(v) => match json::decode_value(&input, v) {
                Ok(m) => Some(m),
                Err(e) => {
                    return error_response(&GrpcStatus {
                        code: 2,
                        message: e.0,
                    })
                }
            },
        };
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(16);
        if let Some(m) = first {
            let _ = tx.send(Ok(grpc::frame(&m))).await;
            // later objects as they come; a bad one ends the reading (etcd:
            // the stream stays, nothing more is read); the task ends with
            // the body or with the call
            tokio::spawn(async move {
                while let Ok(Some(v)) = reader.next().await {
                    let Ok(m) = json::decode_value(&input, v) else {
                        break;
                    };
                    if tx.send(Ok(grpc::frame(&m))).await.is_err() {
                        break;
                    }
                }
            });
        }
        let inner = self.grpc_request(Body::from_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ));
        self.stream_back(inner).await
    }

    /// Calls `inner` and answers with its messages as `{"result":...}`
    /// lines. Nothing is answered before the first message (as etcd's
    /// gateway): an error or the deadline before it is an ordinary error
    /// answer; after it, a last `{"error":{...}}` object.
    async fn stream_back(self, inner: Request) -> Response {
        let head = match self.in_time(self.send(inner)).await {
            Some(r) => r,
            None => return error_response(&deadline_exceeded()),
        };
        let (parts, body) = head.into_parts();
        if let Some(status) = grpc::status_of(&parts.headers).filter(|s| s.code != 0) {
            return error_response(&status);
        }
        let mut lines = Lines {
            body,
            deframer: Deframer::default(),
            output: self.method.output(),
            deadline: self.deadline,
            done: false,
        };
        let first = match lines.next_line().await {
            Some(Line::Result(text)) => text,
            Some(Line::Error(status)) => return error_response(&status),
            None => {
                // ended without a message (keep-alive with an empty body)
                let mut r = (StatusCode::OK, Body::empty()).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return r;
            }
        };
        let rest = futures::stream::unfold(lines, |mut lines| async move {
            let text = match lines.next_line().await? {
                Line::Result(text) => text,
                Line::Error(s) => stream_error(&s),
            };
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(text)), lines))
        });
        let stream = futures::StreamExt::chain(
            futures::stream::once(
                async move { Ok::<_, std::convert::Infallible>(Bytes::from(first)) },
            ),
            rest,
        );
        let mut r = (StatusCode::OK, Body::from_stream(stream)).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(
            "grpc-metadata-content-type",
            HeaderValue::from_static("application/grpc"),
        );
        r
    }
}

/// The last object of a stream that failed after it began.
fn stream_error(s: &GrpcStatus) -> String {
    let http = grpc::http_status(s.code);
    let body = serde_json::json!({
        "error": {
            "grpc_code": s.code,
            "http_code": http.as_u16(),
            "message": s.message,
            "http_status": http.canonical_reason().unwrap_or_default(),
        }
    });
    json::go_escape(&body.to_string())
}

enum Line {
    Result(String),
    Error(GrpcStatus),
}

/// The messages of a streaming gRPC response, as gateway lines. Dropping
/// it (the client went away) drops the call's answer, which ends the
/// call on the service's side.
struct Lines {
    body: Body,
    deframer: Deframer,
    output: prost_reflect::MessageDescriptor,
    deadline: Option<tokio::time::Instant>,
    done: bool,
}

impl Lines {
    /// The next line; `None` once the stream ended (after an error line,
    /// if it ended with an error or at the deadline).
    async fn next_line(&mut self) -> Option<Line> {
        if self.done {
            return None;
        }
        let line = match self.deadline {
            None => self.read_line().await,
            Some(at) => match tokio::time::timeout_at(at, self.read_line()).await {
                Ok(line) => line,
                Err(_) => Some(Line::Error(deadline_exceeded())),
            },
        };
        if !matches!(line, Some(Line::Result(_))) {
            self.done = true;
        }
        line
    }

    async fn read_line(&mut self) -> Option<Line> {
        loop {
            match self.deframer.next_message() {
                Ok(Some(m)) => {
                    return Some(match json::encode_response(&self.output, &m) {
                        Ok(text) => Line::Result(format!("{{\"result\":{text}}}\n")),
                        Err(e) => Line::Error(GrpcStatus {
                            code: 13,
                            message: e,
                        }),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    return Some(Line::Error(GrpcStatus {
                        code: 13,
                        message: e,
                    }))
                }
            }
            match self.body.frame().await {
                None => return None,
                Some(Err(e)) => {
                    return Some(Line::Error(GrpcStatus {
                        code: 13,
                        message: e.to_string(),
                    }))
                }
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.deframer.push(data);
                    } else if let Some(trailers) = frame.trailers_ref() {
                        return grpc::status_of(trailers)
                            .filter(|s| s.code != 0)
                            .map(Line::Error);
                    }
                }
            }
        }
    }
}
