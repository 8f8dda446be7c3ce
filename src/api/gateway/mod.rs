//! etcd's JSON gateway: every v3 RPC over plain HTTP/1.1 on the client
//! port (`POST /v3/...`, and `/v3beta/...` rewritten to it), as etcd 3.4
//! serves it through grpc-gateway and as Patroni, etcd3-py and curl use it.
//!
//! A request is translated, not reimplemented: its JSON body becomes the
//! protobuf request (`json`), which is sent in-process to the same gRPC
//! services the client port serves (the router, as a tower service: no
//! second connection), with the `Authorization` header as the `token`
//! metadata etcd reads and the connection's TLS identity; the gRPC answer
//! comes back as JSON, a gRPC error as grpc-gateway's error body and
//! HTTP status. So every check (auth, limits, validation) is the gRPC
//! path's own. Streams (watch, lease keep-alive, snapshot, election
//! observe) answer `{"result":...}` lines as messages arrive.
//!
//! The behaviour followed is Debian's etcd 3.4.23 (grpc-gateway runtime
//! 1.6.4), captured in docs/design/json-gateway.md.

pub mod grpc;
pub mod json;

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

use grpc::{Deframer, GrpcStatus};

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
    /// For etcd's refusal of certificate identities through the gateway.
    server: Arc<crate::server::EtcdServer>,
    /// The largest request body read (JSON is larger than the protobuf it
    /// carries; the gRPC decoder enforces etcd's own limit after it).
    max_body: usize,
}

/// The gateway's routes, calling into `grpc` (the client port's gRPC
/// services); `max_request` is the gRPC receive limit.
pub fn routes(server: Arc<crate::server::EtcdServer>, grpc: Router, max_request: usize) -> Router {
    let gateway = Arc::new(Gateway {
        grpc,
        server,
        max_body: max_request.saturating_mul(4).max(1 << 20),
    });
    Router::new()
        .route("/v3/{*path}", any(handle))
        .route("/v3beta/{*path}", any(handle))
        .with_state(gateway)
}

/// With the gateway turned off (--enable-grpc-gateway=false), its paths
/// answer as etcd's then do: Go's plain 404.
pub fn disabled_routes() -> Router {
    async fn not_found() -> Response {
        plain(StatusCode::NOT_FOUND, "404 page not found\n")
    }
    Router::new()
        .route("/v3/{*path}", any(not_found))
        .route("/v3beta/{*path}", any(not_found))
}

fn find(path: &str) -> Option<MethodDescriptor> {
    let (_, service, method) = PATHS.iter().find(|(p, _, _)| *p == path)?;
    json::pool()
        .get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == *method)
}

/// What every answer of etcd's client port carries (its CORS defaults).
fn cors(headers: &mut HeaderMap) {
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert("access-control-allow-origin", HeaderValue::from_static("*"));
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = (status, text).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    cors(h);
    r
}

fn json_response(status: StatusCode, body: String, from_grpc: bool) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if from_grpc {
        h.insert(
            "grpc-metadata-content-type",
            HeaderValue::from_static("application/grpc"),
        );
    }
    cors(h);
    r
}

/// grpc-gateway's error body: `{"error":M,"message":M,"code":N}`.
fn error_response(status: &GrpcStatus) -> Response {
    let body = serde_json::json!({
        "error": status.message,
        "message": status.message,
        "code": status.code,
    });
    json_response(
        grpc::http_status(status.code),
        json::go_escape(&body.to_string()),
        false,
    )
}

fn invalid_argument(message: String) -> Response {
    error_response(&GrpcStatus { code: 3, message })
}

/// etcd's answer to a client certificate with a Common Name on a /v3/
/// request while certificate auth and auth are on: through the gateway
/// the certificate is not the caller's identity (etcd's gateway is a
/// client of its own gRPC server), so etcd refuses rather than ignore it
/// silently (embed/serve.go, accessController; 3.4 and 3.5 alike).
fn refuses_certificate_identity(gw: &Gateway, req: &Request) -> bool {
    let auth = gw.server.auth();
    if !auth.client_cert_auth() || !auth.is_enabled() {
        return false;
    }
    type Tls = tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>;
    req.extensions()
        .get::<Tls>()
        .and_then(|tls| tls.peer_certs())
        .and_then(|certs| crate::tls::peer_common_name(&certs))
        .is_some_and(|cn| !cn.is_empty())
}

async fn handle(State(gw): State<Arc<Gateway>>, req: Request) -> Response {
    if refuses_certificate_identity(&gw, &req) {
        let mut r = (
            StatusCode::BAD_REQUEST,
            "CommonName of client sending a request against gateway will be ignored and not used as expected\n",
        )
            .into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            "x-content-type-options",
            HeaderValue::from_static("nosniff"),
        );
        return r;
    }
    let path = req.uri().path();
    let rest = path
        .strip_prefix("/v3/")
        .or_else(|| path.strip_prefix("/v3beta/"))
        .unwrap_or_default()
        .to_string();
    if req.method() == Method::OPTIONS {
        let mut r = StatusCode::OK.into_response();
        cors(r.headers_mut());
        return r;
    }
    let Some(method) = find(&rest) else {
        return plain(StatusCode::NOT_FOUND, "Not Found\n");
    };
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    if method.is_client_streaming() {
        bidi(gw, method, req).await
    } else if method.is_server_streaming() {
        server_stream(gw, method, req).await
    } else {
        unary(gw, method, req).await
    }
}

/// The in-process gRPC request for `method`: the metadata etcd's gateway
/// forwards (the `Authorization` header as-is, `Grpc-Metadata-*`
/// headers without the prefix, `Grpc-Timeout`) and the connection's
/// identity (peer address, verified client certificates).
fn grpc_request(method: &MethodDescriptor, outer: &Request, body: Body) -> Request {
    let uri = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let mut inner = Request::new(body);
    *inner.method_mut() = Method::POST;
    *inner.uri_mut() = uri.parse().expect("a service path is a URI");
    let h = inner.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert(header::TE, HeaderValue::from_static("trailers"));
    for (name, value) in outer.headers() {
        let name = name.as_str();
        if name == "authorization" || name == "grpc-timeout" {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).expect("a valid name"),
                value.clone(),
            );
        } else if let Some(key) = name.strip_prefix("grpc-metadata-") {
            if let Ok(key) = axum::http::HeaderName::from_bytes(key.as_bytes()) {
                h.append(key, value.clone());
            }
        }
    }
    let ext = outer.extensions();
    if let Some(tcp) = ext.get::<tonic::transport::server::TcpConnectInfo>() {
        inner.extensions_mut().insert(tcp.clone());
    }
    if let Some(tls) = ext
        .get::<tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>>()
    {
        inner.extensions_mut().insert(tls.clone());
    }
    inner
}

/// Reads the whole request body, bounded.
async fn read_body(gw: &Gateway, req: Request) -> Result<Bytes, Response> {
    axum::body::to_bytes(req.into_body(), gw.max_body)
        .await
        .map_err(|_| {
            error_response(&GrpcStatus {
                code: 8,
                message: format!(
                    "grpc: received message larger than max (more than {} bytes of JSON)",
                    gw.max_body
                ),
            })
        })
}

async fn call(gw: &Gateway, inner: Request) -> axum::http::Response<Body> {
    match gw.grpc.clone().oneshot(inner).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

async fn unary(gw: Arc<Gateway>, method: MethodDescriptor, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outer = Request::from_parts(parts, Body::empty());
    let body = match read_body(&gw, Request::new(body)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let message = match json::decode_request(&method.input(), &body) {
        Ok(m) => m,
        Err(e) => return invalid_argument(e.0),
    };
    let inner = grpc_request(&method, &outer, Body::from(grpc::frame(&message)));
    let response = call(&gw, inner).await;
    let (parts, mut body) = response.into_parts();
    if let Some(status) = grpc::status_of(&parts.headers).filter(|s| s.code != 0) {
        return error_response(&status);
    }
    let mut deframer = Deframer::default();
    let mut status = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return error_response(&GrpcStatus {
                    code: 13,
                    message: e.to_string(),
                })
            }
        };
        if let Some(data) = frame.data_ref() {
            deframer.push(data);
        } else if let Some(trailers) = frame.trailers_ref() {
            status = grpc::status_of(trailers);
        }
    }
    match status {
        Some(s) if s.code != 0 => return error_response(&s),
        _ => {}
    }
    let message = match deframer.next_message() {
        Ok(Some(m)) => m,
        Ok(None) => Bytes::new(),
        Err(e) => {
            return error_response(&GrpcStatus {
                code: 13,
                message: e,
            })
        }
    };
    match json::encode_response(&method.output(), &message) {
        Ok(text) => json_response(StatusCode::OK, text, true),
        Err(e) => error_response(&GrpcStatus {
            code: 13,
            message: e,
        }),
    }
}

/// Snapshot and election observe: one request object, a stream back.
async fn server_stream(gw: Arc<Gateway>, method: MethodDescriptor, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outer = Request::from_parts(parts, Body::empty());
    let body = match read_body(&gw, Request::new(body)).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let message = match json::decode_request(&method.input(), &body) {
        Ok(m) => m,
        Err(e) => return invalid_argument(e.0),
    };
    let inner = grpc_request(&method, &outer, Body::from(grpc::frame(&message)));
    stream_back(&gw, method, inner).await
}

/// Watch and lease keep-alive: request objects as they arrive in the
/// body, a stream back. The watch keeps its stream open after the body
/// ends (its watchers go on until the client leaves), keep-alive ends it,
/// as etcd's servers do.
async fn bidi(gw: Arc<Gateway>, method: MethodDescriptor, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let outer = Request::from_parts(parts, Body::empty());
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(16);
    let mut reader = JsonValues::new(body, gw.max_body);
    // The first object decides the answer: a body that is not JSON is
    // refused before the call (etcd: 500, code Unknown).
    let first = match reader.next().await {
        Ok(Some(v)) => v,
        Ok(None) => serde_json::Value::Null,
        Err(e) => {
            return error_response(&GrpcStatus {
                code: 2,
                message: e,
            });
        }
    };
    let keep_open = method.name() == "Watch";
    let input = method.input();
    let first_done = match first {
        // an empty body sends nothing (the server then sends nothing)
        serde_json::Value::Null => true,
        v => match json::decode_value(&input, v) {
            Ok(m) => {
                let _ = tx.send(Ok(grpc::frame(&m))).await;
                false
            }
            Err(e) => {
                return error_response(&GrpcStatus {
                    code: 2,
                    message: e.0,
                })
            }
        },
    };
    let feeder_tx = tx.clone();
    tokio::spawn(async move {
        if !first_done {
            // later objects: sent as they come; a bad one ends the reading
            while let Ok(Some(v)) = reader.next().await {
                match json::decode_value(&input, v) {
                    Ok(m) => {
                        if feeder_tx.send(Ok(grpc::frame(&m))).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
        }
        if keep_open {
            // the stream stays open until the response side lets go
            feeder_tx.closed().await;
        }
    });
    drop(tx);
    let inner = grpc_request(
        &method,
        &outer,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    );
    stream_back(&gw, method, inner).await
}

/// Calls `inner` and answers with its messages as `{"result":...}` lines.
/// Nothing is answered before the first message (as etcd's gateway): an
/// error before it is an ordinary error answer; one after it is a last
/// `{"error":{...}}` object.
async fn stream_back(gw: &Gateway, method: MethodDescriptor, inner: Request) -> Response {
    let response = call(gw, inner).await;
    let (parts, body) = response.into_parts();
    if let Some(status) = grpc::status_of(&parts.headers).filter(|s| s.code != 0) {
        return error_response(&status);
    }
    let mut lines = Lines {
        body,
        deframer: Deframer::default(),
        output: method.output(),
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
            cors(r.headers_mut());
            return r;
        }
    };
    let rest = futures::stream::unfold(lines, |mut lines| async move {
        let line = lines.next_line().await?;
        let text = match line {
            Line::Result(text) => text,
            Line::Error(s) => {
                lines.done = true;
                stream_error(&s)
            }
        };
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(text)), lines))
    });
    let stream = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::convert::Infallible>(Bytes::from(first)) }),
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
    cors(h);
    r
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

/// The messages of a streaming gRPC response, as gateway lines.
struct Lines {
    body: Body,
    deframer: Deframer,
    output: prost_reflect::MessageDescriptor,
    done: bool,
}

impl Lines {
    async fn next_line(&mut self) -> Option<Line> {
        if self.done {
            return None;
        }
        loop {
            match self.deframer.next_message() {
                Ok(Some(m)) => {
                    return Some(match json::encode_response(&self.output, &m) {
                        Ok(text) => Line::Result(format!("{{\"result\":{text}}}\n")),
                        Err(e) => {
                            self.done = true;
                            Line::Error(GrpcStatus {
                                code: 13,
                                message: e,
                            })
                        }
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    self.done = true;
                    return Some(Line::Error(GrpcStatus {
                        code: 13,
                        message: e,
                    }));
                }
            }
            match self.body.frame().await {
                None => {
                    self.done = true;
                    return None;
                }
                Some(Err(e)) => {
                    self.done = true;
                    return Some(Line::Error(GrpcStatus {
                        code: 13,
                        message: e.to_string(),
                    }));
                }
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.deframer.push(data);
                    } else if let Some(trailers) = frame.trailers_ref() {
                        self.done = true;
                        return match grpc::status_of(trailers) {
                            Some(s) if s.code != 0 => Some(Line::Error(s)),
                            _ => None,
                        };
                    }
                }
            }
        }
    }
}

/// JSON values read one by one from a request body as it arrives (the
/// watch's and keep-alive's requests); bounded by `max` buffered bytes.
struct JsonValues {
    body: Body,
    buf: Vec<u8>,
    max: usize,
    ended: bool,
}

impl JsonValues {
    fn new(body: Body, max: usize) -> JsonValues {
        JsonValues {
            body,
            buf: Vec::new(),
            max,
            ended: false,
        }
    }

    /// The next value; `None` at the end of the body; an error for a body
    /// that is not JSON (Go's words).
    async fn next(&mut self) -> Result<Option<serde_json::Value>, String> {
        loop {
            let start = self.buf.iter().position(|b| !b.is_ascii_whitespace());
            match start {
                None if self.ended => return Ok(None),
                None => {}
                Some(start) => {
                    let mut it = serde_json::Deserializer::from_slice(&self.buf[start..])
                        .into_iter::<serde_json::Value>();
                    match it.next() {
                        Some(Ok(v)) => {
                            let used = start + it.byte_offset();
                            self.buf.drain(..used);
                            return Ok(Some(v));
                        }
                        Some(Err(e)) if e.is_eof() && !self.ended => {}
                        Some(Err(e)) if e.is_eof() => return Err("unexpected EOF".into()),
                        Some(Err(e)) => return Err(json::go_json_error(&self.buf[start..], &e)),
                        None => {}
                    }
                }
            }
            if self.ended {
                return Ok(None);
            }
            match self.body.frame().await {
                None => self.ended = true,
                Some(Err(e)) => return Err(e.to_string()),
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        self.buf.extend_from_slice(data);
                        if self.buf.len() > self.max {
                            return Err(format!(
                                "a request object of more than {} bytes",
                                self.max
                            ));
                        }
                    }
                }
            }
        }
    }
}
