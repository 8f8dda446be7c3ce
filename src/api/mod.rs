//! The client-facing surface: etcd's gRPC services and its plain-HTTP
//! endpoints, served together on every client listener (gRPC over h2c,
//! HTTP/1.1 for curl), as etcd does; over TLS on https:// listeners.
//!
//! `api` validates requests and maps errors; it never opens an LMDB write
//! transaction and never talks to raft except through `server`. `peer` is
//! the peer port's service: it also hands received raft messages and
//! snapshots to the raft thread.

pub mod access;
pub mod auth;
pub mod cluster;
pub mod concurrency;
pub mod election;
pub mod gateway;
pub mod health;
pub mod http;
pub mod kv;
pub mod lease;
pub mod lock;
pub mod maintenance;
pub mod peer;
pub mod status;
pub mod validate;
pub mod watch;

use std::sync::Arc;

use tokio::net::TcpListener;

use tonic::service::Routes;

use crate::proto::etcdserverpb::auth_server::AuthServer;
use crate::proto::etcdserverpb::cluster_server::ClusterServer;
use crate::proto::etcdserverpb::kv_server::KvServer;
use crate::proto::etcdserverpb::lease_server::LeaseServer;
use crate::proto::etcdserverpb::maintenance_server::MaintenanceServer;
use crate::proto::etcdserverpb::watch_server::WatchServer;
use crate::proto::v3electionpb::election_server::ElectionServer;
use crate::proto::v3lockpb::lock_server::LockServer;
use crate::server::EtcdServer;

use crate::server::GRPC_OVERHEAD_BYTES;

/// What a client listener serves: both kinds of traffic (etcd's default),
/// or one of them (with --listen-client-http-urls, the client URLs serve
/// gRPC and those URLs HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    GrpcAndHttp,
    Grpc,
    Http,
}

impl Traffic {
    /// etcd's `traffic` field of its "serving client traffic" lines.
    pub fn label(self) -> &'static str {
        match self {
            Traffic::GrpcAndHttp => "grpc+http",
            Traffic::Grpc => "grpc",
            Traffic::Http => "http",
        }
    }
}

/// The client port's services, made once per member (their limits, such
/// as concurrent snapshots and password checks, are the member's) and
/// served by every client listener: gRPC, and the plain-HTTP endpoints
/// with (given `json_gateway`, etcd's --enable-grpc-gateway) the JSON
/// gateway, which calls the gRPC services in-process.
#[derive(Clone)]
pub struct ClientRoutes {
    grpc: axum::Router,
    web: axum::Router,
}

impl ClientRoutes {
    /// What a listener serving `traffic` answers. Serving both, a request
    /// is gRPC when it is HTTP/2 with a gRPC content type, as etcd's
    /// grpcHandlerFunc splits them; everything else is plain HTTP.
    pub fn for_traffic(&self, traffic: Traffic) -> Routes {
        Routes::from(match traffic {
            Traffic::Grpc => self.grpc.clone(),
            Traffic::Http => self.web.clone(),
            Traffic::GrpcAndHttp => {
                let (grpc, web) = (self.grpc.clone(), self.web.clone());
                axum::Router::new().fallback_service(tower::service_fn(
                    move |req: axum::extract::Request| {
                        let is_grpc = req.version() == axum::http::Version::HTTP_2
                            && req
                                .headers()
                                .get(axum::http::header::CONTENT_TYPE)
                                .and_then(|v| v.to_str().ok())
                                .is_some_and(|v| v.starts_with("application/grpc"));
                        let to = if is_grpc { grpc.clone() } else { web.clone() };
                        tower::ServiceExt::oneshot(to, req)
                    },
                ))
            }
        })
    }
}

pub fn routes(server: Arc<EtcdServer>, access: access::AccessOptions) -> ClientRoutes {
    let max_recv = server.limits().max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    let kv = KvServer::new(kv::KvService::new(server.clone()))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let maintenance = MaintenanceServer::new(maintenance::MaintenanceService::new(server.clone()))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let auth = AuthServer::new(auth::AuthService::new(server.clone()));
    let cluster = ClusterServer::new(cluster::ClusterService::new(server.clone()));
    let watch = WatchServer::new(watch::WatchService::new(server.clone()))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let lease = LeaseServer::new(lease::LeaseService::new(server.clone()))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let lock = LockServer::new(lock::LockService::new(server.clone()))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let election = ElectionServer::new(election::ElectionService::new(server.clone()))
        .max_decoding_message_size(max_recv)
        .max_encoding_message_size(usize::MAX);
    let grpc = Routes::new(kv)
        .add_service(watch)
        .add_service(lease)
        .add_service(maintenance)
        .add_service(auth)
        .add_service(cluster)
        .add_service(lock)
        .add_service(election)
        .prepare()
        .into_axum_router()
        // grpc_server_* metrics for every gRPC service above.
        .layer(axum::middleware::from_fn(crate::metrics::grpc::record));
    let mut web = http::routes(server.clone());
    if access.json_gateway {
        web = web.merge(gateway::routes(grpc.clone(), max_recv));
    }
    let web = access::guard(server, access, web.fallback(http::not_found));
    ClientRoutes { grpc, web }
}

/// HTTP/2 settings of the client listeners (etcd's --grpc-keepalive-* and
/// --max-concurrent-streams).
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    pub keepalive_interval: std::time::Duration,
    pub keepalive_timeout: std::time::Duration,
    pub max_concurrent_streams: u32,
}

/// Serves `routes` on `listener` until `shutdown` turns true; in-flight
/// requests finish first.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    grpc: GrpcOptions,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    // Our own listener: socket options must be set on the incoming
    // stream (the builder's tcp_nodelay applies only to its own bind).
    // Without TCP_NODELAY small responses wait on Nagle + delayed ACK.
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(std::time::Duration::from_secs(30)));
    serve_incoming(incoming, routes, grpc, shutdown).await
}

/// [`serve`] for an https:// listener: connections are TLS-handshaken
/// (with the certificates loaded at that moment) before they reach gRPC,
/// so `Request::peer_certs()` returns a verified client chain.
pub async fn serve_tls(
    listener: TcpListener,
    tls: std::sync::Arc<crate::tls::ReloadableTls>,
    routes: Routes,
    grpc: GrpcOptions,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    let incoming = crate::tls::acceptor::incoming(listener, tls);
    serve_incoming(incoming, routes, grpc, shutdown).await
}

async fn serve_incoming<S, IO, IE>(
    incoming: S,
    routes: Routes,
    grpc: GrpcOptions,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error>
where
    S: tokio_stream::Stream<Item = Result<IO, IE>>,
    IO: tonic::transport::server::Connected
        + tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + Unpin
        + Send
        + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let nonzero = |d: std::time::Duration| (!d.is_zero()).then_some(d);
    tonic::transport::Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(nonzero(grpc.keepalive_interval))
        .http2_keepalive_timeout(nonzero(grpc.keepalive_timeout))
        .max_concurrent_streams(grpc.max_concurrent_streams)
        .add_routes(routes)
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = shutdown.wait_for(|&s| s).await;
        })
        .await
}
