//! Plain HTTP on the client listeners, as etcd serves it: `/version`,
//! `/metrics` and the health endpoints (`health.rs`); and the routes of
//! `--listen-metrics-urls` listeners.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::server::EtcdServer;

pub fn routes(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/version", get(version))
        .route("/metrics", get(metrics))
        .merge(super::health::routes())
        .with_state(server)
}

/// What a `--listen-metrics-urls` listener serves: metrics and health.
pub fn metrics_listener_routes(server: Arc<EtcdServer>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .merge(super::health::routes())
        .with_state(server)
}

/// Go's ServeMux for a path nothing serves.
pub async fn not_found() -> Response {
    super::health::go_error(StatusCode::NOT_FOUND, "404 page not found")
}

async fn metrics() -> Response {
    (
        StatusCode::OK,
        [("content-type", crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(),
    )
        .into_response()
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
        .store()
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
