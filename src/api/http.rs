//! Plain HTTP on the client listeners, as etcd serves it: `/version` and
//! `/health` (etcd 3.5's JSON bodies).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::server::EtcdServer;

pub fn routes(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/health", get(health))
        .with_state(server)
}

fn json(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn version(State(server): State<Arc<EtcdServer>>) -> Response {
    let cluster = server
        .store
        .get_meta(crate::apply::META_CLUSTER_VERSION)
        .ok()
        .flatten()
        .map(|v| String::from_utf8_lossy(&v).into_owned())
        .unwrap_or_else(|| "not_decided".to_string());
    json(
        StatusCode::OK,
        serde_json::json!({"etcdserver": crate::ETCD_VERSION, "etcdcluster": cluster}),
    )
}

async fn health(
    State(server): State<Arc<EtcdServer>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let unhealthy = |reason: &str| {
        json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"health": "false", "reason": reason}),
        )
    };
    if server.raft.shared.leader.load(Ordering::Acquire) == 0 {
        return unhealthy("RAFT NO LEADER");
    }
    let serializable = q.get("serializable").is_some_and(|v| v == "true");
    if !serializable {
        if let Err(e) = server.linearizable_read().await {
            return unhealthy(&format!("QGET ERROR:{e}"));
        }
    }
    json(
        StatusCode::OK,
        serde_json::json!({"health": "true", "reason": ""}),
    )
}
