//! Health endpoints: etcd 3.5's `/health` (JSON with a reason) and etcd
//! 3.6's `/livez` and `/readyz` (named checks, `?verbose`, `?exclude=`,
//! one sub-path per check), with etcd's status codes and bodies.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::proto::etcdserverpb::AlarmType;
use crate::server::EtcdServer;

/// Health routes for a router whose state is the server.
pub fn routes() -> Router<Arc<EtcdServer>> {
    Router::new()
        .route("/health", get(health).fallback(method_not_allowed))
        .route("/livez", get(livez).fallback(method_not_allowed))
        .route(
            "/livez/{check}",
            get(livez_one).fallback(method_not_allowed),
        )
        .route("/readyz", get(readyz).fallback(method_not_allowed))
        .route(
            "/readyz/{check}",
            get(readyz_one).fallback(method_not_allowed),
        )
}

/// Go's `http.Error`: plain text, `nosniff`, the message and a newline.
pub(super) fn go_error(status: StatusCode, message: &str) -> Response {
    let mut r = (status, format!("{message}\n")).into_response();
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn method_not_allowed() -> Response {
    let mut r = go_error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    r.headers_mut()
        .insert("allow", HeaderValue::from_static("GET"));
    r
}

/// Query values by name, repeated keys kept (`?exclude=a&exclude=b`), and
/// whether a bare key such as `?verbose` is present.
struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    fn parse(raw: Option<String>) -> Self {
        let raw = raw.unwrap_or_default();
        QueryParams(
            url::form_urlencoded::parse(raw.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn first<'a>(&'a self, key: &'a str) -> Option<&'a str> {
        self.all(key).next()
    }

    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
}

/// Alarm types active in the cluster, as this member has applied them.
fn active_alarms(server: &EtcdServer) -> Vec<AlarmType> {
    server.alarms().active_types()
}

/// etcd's health-check read: a one-key range, linearizable unless asked
/// otherwise, under the server's request timeout.
async fn read_check(server: &EtcdServer, serializable: bool) -> Result<(), String> {
    if !serializable {
        let timeout = server.limits().request_timeout.max(Duration::from_secs(1));
        match tokio::time::timeout(timeout, server.linearizable_read()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e.to_string()),
            Err(_) => return Err(crate::server::Error::Timeout.to_string()),
        }
    }
    server.store().read().map(|_| ()).map_err(|e| e.to_string())
}

async fn health(State(server): State<Arc<EtcdServer>>, RawQuery(raw): RawQuery) -> Response {
    let q = QueryParams::parse(raw);
    let excluded: HashSet<&str> = q.all("exclude").filter(|a| !a.is_empty()).collect();
    let serializable = q.first("serializable") == Some("true");
    let reason = health_reason(&server, &excluded, serializable).await;
    let m = crate::metrics::server();
    match reason {
        None => {
            m.health_success.inc();
            let mut r = (StatusCode::OK, r#"{"health":"true","reason":""}"#).into_response();
            // What Go's content sniffing makes of etcd's JSON body.
            r.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            r
        }
        Some(reason) => {
            m.health_failures.inc();
            let body = serde_json::json!({"health": "false", "reason": reason}).to_string();
            tracing::warn!(output = body.as_str(), "/health error");
            go_error(StatusCode::SERVICE_UNAVAILABLE, &body)
        }
    }
}

/// etcd 3.5's checks in order: alarms, leader, then a range.
async fn health_reason(
    server: &EtcdServer,
    excluded: &HashSet<&str>,
    serializable: bool,
) -> Option<String> {
    for alarm in active_alarms(server) {
        if excluded.contains(alarm.as_str_name()) {
            continue;
        }
        return Some(
            match alarm {
                AlarmType::Nospace => "ALARM NOSPACE",
                AlarmType::Corrupt => "ALARM CORRUPT",
                AlarmType::None => "ALARM UNKNOWN",
            }
            .to_string(),
        );
    }
    if !serializable && server.leader() == 0 {
        return Some("RAFT NO LEADER".to_string());
    }
    match read_check(server, serializable).await {
        Ok(()) => None,
        Err(e) => Some(format!("RANGE ERROR:{e}")),
    }
}

/// A named check of /livez or /readyz.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Check {
    DataCorruption,
    SerializableRead,
    LinearizableRead,
}

impl Check {
    fn name(self) -> &'static str {
        match self {
            Check::DataCorruption => "data_corruption",
            Check::SerializableRead => "serializable_read",
            Check::LinearizableRead => "linearizable_read",
        }
    }

    async fn run(self, server: &EtcdServer) -> Result<(), String> {
        match self {
            Check::DataCorruption => {
                if active_alarms(server).contains(&AlarmType::Corrupt) {
                    Err("alarm activated: CORRUPT".to_string())
                } else {
                    Ok(())
                }
            }
            Check::SerializableRead => read_check(server, true).await,
            Check::LinearizableRead => read_check(server, false).await,
        }
    }
}

const LIVEZ: &[Check] = &[Check::SerializableRead];
const READYZ: &[Check] = &[
    Check::DataCorruption,
    Check::SerializableRead,
    Check::LinearizableRead,
];

async fn livez(State(server): State<Arc<EtcdServer>>, RawQuery(raw): RawQuery) -> Response {
    run_checks(&server, "/livez", LIVEZ, &QueryParams::parse(raw)).await
}

async fn readyz(State(server): State<Arc<EtcdServer>>, RawQuery(raw): RawQuery) -> Response {
    run_checks(&server, "/readyz", READYZ, &QueryParams::parse(raw)).await
}

async fn livez_one(
    State(server): State<Arc<EtcdServer>>,
    Path(check): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    one_check(&server, "/livez", LIVEZ, &check, raw).await
}

async fn readyz_one(
    State(server): State<Arc<EtcdServer>>,
    Path(check): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    one_check(&server, "/readyz", READYZ, &check, raw).await
}

async fn one_check(
    server: &EtcdServer,
    root: &str,
    checks: &[Check],
    name: &str,
    raw: Option<String>,
) -> Response {
    match checks.iter().find(|c| c.name() == name) {
        Some(c) => {
            let path = format!("{root}/{name}");
            // A sub-path runs its check whatever `exclude` says.
            let q = QueryParams(
                QueryParams::parse(raw)
                    .0
                    .into_iter()
                    .filter(|(k, _)| k != "exclude")
                    .collect(),
            );
            run_checks(server, &path, &[*c], &q).await
        }
        None => go_error(StatusCode::NOT_FOUND, "404 page not found"),
    }
}

/// Runs `checks` minus `?exclude=` ones; unknown exclusions are ignored
/// with a warning, as etcd does for compatibility.
async fn run_checks(
    server: &EtcdServer,
    path: &str,
    checks: &[Check],
    q: &QueryParams,
) -> Response {
    let mut excluded: HashSet<&str> = q.all("exclude").filter(|e| !e.is_empty()).collect();
    let mut report = String::new();
    let mut failed = false;
    for check in checks {
        if excluded.remove(check.name()) {
            continue;
        }
        match check.run(server).await {
            Ok(()) => report.push_str(&format!("[+]{} ok\n", check.name())),
            Err(e) => {
                failed = true;
                report.push_str(&format!("[-]{} failed: {e}\n", check.name()));
            }
        }
    }
    if !excluded.is_empty() {
        let mut missing: Vec<&str> = excluded.into_iter().collect();
        missing.sort_unstable();
        tracing::warn!(
            missing_health_checks = missing.join(","),
            "some health checks cannot be excluded"
        );
    }
    if failed {
        tracing::error!(
            path,
            reason = report.as_str(),
            status_code = 503,
            "Health check error"
        );
        return go_error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!("{report}{path} check failed"),
        );
    }
    let body = if q.has("verbose") {
        format!("{report}ok\n")
    } else {
        "ok\n".to_string()
    };
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}
