//! What stands in front of every plain-HTTP answer of the client port, as
//! etcd's accessController and Go's ServeMux do (embed/serve.go): the
//! /v3beta/ prefix rewritten to /v3/; --host-whitelist on plain-text
//! connections (DNS rebinding, CVE-2018-5702); a client certificate's
//! Common Name refused on the gateway while certificate auth and auth are
//! on; the CORS headers of --cors on every answer; OPTIONS answered on any
//! path; unclean paths (`//`, `.`, `..`, `/v3`) redirected with a 301.
//! gRPC requests never come here (`super::ClientRoutes`).

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;

use super::health::go_error;
use crate::server::EtcdServer;

/// --cors and --host-whitelist, as etcd reads them: empty or `*` allows
/// every origin or host.
#[derive(Debug, Clone, Default)]
pub struct AccessOptions {
    pub cors: Vec<String>,
    pub host_whitelist: Vec<String>,
    /// --enable-grpc-gateway: the Common Name refusal is the gateway's.
    pub json_gateway: bool,
}

struct Access {
    cors: BTreeSet<String>,
    hosts: BTreeSet<String>,
    json_gateway: bool,
    server: Arc<EtcdServer>,
    inner: Router,
}

impl Access {
    fn origin_allowed(&self, origin: &str) -> bool {
        self.cors.is_empty() || self.cors.contains("*") || self.cors.contains(origin)
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.hosts.is_empty() || self.hosts.contains("*") || self.hosts.contains(host)
    }
}

/// `inner` (the client port's plain-HTTP routes) behind etcd's access
/// control, as one router whose every request is seen here first.
pub fn guard(server: Arc<EtcdServer>, options: AccessOptions, inner: Router) -> Router {
    let access = Arc::new(Access {
        cors: options.cors.into_iter().collect(),
        hosts: options.host_whitelist.into_iter().collect(),
        json_gateway: options.json_gateway,
        server,
        inner,
    });
    Router::new().fallback_service(tower::service_fn(move |req: Request| {
        let access = access.clone();
        async move { Ok::<_, std::convert::Infallible>(serve(&access, req).await) }
    }))
}

async fn serve(access: &Access, mut req: Request) -> Response {
    if let Some(rest) = req.uri().path().strip_prefix("/v3beta/") {
        let path = format!("/v3/{rest}");
        set_path(req.uri_mut(), &path);
    }
    let tls = req.extensions().get::<TlsInfo>().is_some();
    if !tls {
        let host = hostname(&req);
        if !access.host_allowed(&host) {
            tracing::warn!(
                host = host.as_str(),
                "rejecting HTTP request to prevent DNS rebinding attacks"
            );
            let answer = go_error(StatusCode::MISDIRECTED_REQUEST, &cve_2018_5702(&host));
            return after_reading(req.into_body(), answer).await;
        }
    } else if access.json_gateway
        && req.uri().path().starts_with("/v3/")
        && refuses_certificate_identity(&access.server, &req)
    {
        let refused = go_error(
            StatusCode::BAD_REQUEST,
            "CommonName of client sending a request against gateway will be ignored and not used as expected",
        );
        return after_reading(req.into_body(), refused).await;
    }
    let cors = if access.origin_allowed("*") {
        Some(HeaderValue::from_static("*"))
    } else {
        req.headers()
            .get(header::ORIGIN)
            .filter(|o| access.origin_allowed(o.to_str().unwrap_or_default()))
            .cloned()
    };
    let mut answer = if req.method() == Method::OPTIONS {
        let r = StatusCode::OK.into_response();
        after_reading(req.into_body(), r).await
    } else if let Some(location) = redirect(req.uri(), access.json_gateway) {
        let get = req.method() == Method::GET;
        let r = moved_permanently(&location, get);
        after_reading(req.into_body(), r).await
    } else {
        match access.inner.clone().oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    };
    if let Some(origin) = cors {
        add_cors(answer.headers_mut(), origin);
    }
    answer
}

type TlsInfo = tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>;

/// etcd's answer to a client certificate with a Common Name on a /v3/
/// request while certificate auth and auth are on: through the gateway
/// the certificate is not the caller's identity (etcd's gateway is a
/// client of its own gRPC server), so etcd refuses rather than ignore it
/// silently (embed/serve.go, accessController; 3.4 and 3.5 alike).
fn refuses_certificate_identity(server: &EtcdServer, req: &Request) -> bool {
    let auth = server.auth();
    if !auth.client_cert_auth() || !auth.is_enabled() {
        return false;
    }
    req.extensions()
        .get::<TlsInfo>()
        .and_then(|tls| tls.peer_certs())
        .and_then(|certs| crate::tls::peer_common_name(&certs))
        .is_some_and(|cn| !cn.is_empty())
}

/// The three headers etcd adds for an allowed origin.
fn add_cors(headers: &mut HeaderMap, origin: HeaderValue) {
    headers.insert(
        "access-control-allow-methods",
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert("access-control-allow-origin", origin);
    headers.insert(
        "access-control-allow-headers",
        HeaderValue::from_static("accept, content-type, authorization"),
    );
}

/// Go's httputil.GetHostname: the Host header without its port.
fn hostname(req: &Request) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    // net.SplitHostPort: "[::1]:2379" and "h:2379" have ports; a bare
    // "h" or "::1" does not
    if let Some(rest) = host.strip_prefix('[') {
        if let Some((h, port)) = rest.split_once("]:") {
            if !port.contains(':') {
                return h.to_string();
            }
        }
        return host;
    }
    match host.rsplit_once(':') {
        Some((h, _)) if !h.contains(':') => h.to_string(),
        _ => host,
    }
}

fn cve_2018_5702(host: &str) -> String {
    format!(
        "\netcd received your request, but the Host header was unrecognized.\n\n\
         To fix this, choose one of the following options:\n\
         - Enable TLS, then any HTTPS request will be allowed.\n\
         - Add the hostname you want to use to the whitelist in settings.\n  \
         - e.g. etcd --host-whitelist {host:?}\n\n\
         This requirement has been added to help prevent \"DNS Rebinding\" attacks (CVE-2018-5702).\n"
    )
}

fn set_path(uri: &mut Uri, path: &str) {
    let with_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    if let Ok(p) = with_query.parse() {
        let mut parts = uri.clone().into_parts();
        parts.path_and_query = Some(p);
        if let Ok(u) = Uri::from_parts(parts) {
            *uri = u;
        }
    }
}

/// Where Go's ServeMux sends a request whose path it would not serve as
/// written: the cleaned path, or `/v3/` for `/v3` when the gateway's
/// subtree is registered.
fn redirect(uri: &Uri, gateway: bool) -> Option<String> {
    let path = uri.path();
    let clean = clean_path(path);
    let target = if clean == "/v3" && gateway {
        "/v3/".to_string()
    } else if clean != path {
        clean
    } else {
        return None;
    };
    Some(match uri.query() {
        Some(q) => format!("{target}?{q}"),
        None => target,
    })
}

/// Go's net/http cleanPath: path.Clean, keeping a trailing slash.
fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut clean = format!("/{}", parts.join("/"));
    if p.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

/// Go's http.Redirect with 301: a short HTML body for GET only.
fn moved_permanently(location: &str, get: bool) -> Response {
    let body = if get {
        Body::from(format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            location
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&#34;")
                .replace('\'', "&#39;")
        ))
    } else {
        Body::empty()
    };
    let mut r = (StatusCode::MOVED_PERMANENTLY, body).into_response();
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if get {
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    r
}

/// `answer`, once what the client sent is read (up to 256 KiB, as Go's
/// server reads an unread body): closing a connection with unread bytes
/// resets it, and the client may lose the answer.
pub(super) async fn after_reading(mut body: Body, answer: Response) -> Response {
    let read = async {
        let mut n = 0;
        while let Some(Ok(frame)) = body.frame().await {
            n += frame.data_ref().map_or(0, |d| d.len());
            if n > 256 << 10 {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), read).await;
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_cleaned_as_go_cleans_them() {
        for (path, clean) in [
            ("/", "/"),
            ("/v3/kv/range", "/v3/kv/range"),
            ("/v3//kv/range", "/v3/kv/range"),
            ("/v3/./kv/../kv/range", "/v3/kv/range"),
            ("/../health", "/health"),
            ("/v3/kv/range/", "/v3/kv/range/"),
            ("//", "/"),
        ] {
            assert_eq!(clean_path(path), clean, "{path}");
        }
        let r = |u: &str| redirect(&u.parse().unwrap(), true);
        assert_eq!(r("/v3"), Some("/v3/".into()));
        assert_eq!(r("/v3//kv/range?x=1"), Some("/v3/kv/range?x=1".into()));
        assert_eq!(r("/v3/kv/range"), None);
        assert_eq!(r("/health"), None);
        assert_eq!(redirect(&"/v3".parse().unwrap(), false), None);
    }

    #[test]
    fn hosts_are_named_without_their_ports() {
        let host = |h: &str| {
            let req = Request::builder()
                .header(header::HOST, h)
                .body(Body::empty())
                .unwrap();
            hostname(&req)
        };
        assert_eq!(host("localhost:2379"), "localhost");
        assert_eq!(host("example.com"), "example.com");
        assert_eq!(host("[::1]:2379"), "::1");
        assert_eq!(host("::1"), "::1");
    }
}
