//! gRPC connections to the cluster: endpoint parsing, `--target-leader`
//! discovery, dialing `--conns` HTTP/2 connections round-robin over the
//! endpoints, and handing them out to `--clients` (client i uses
//! connection i % conns, as etcd's benchmark does).

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rsetcd::client::{endpoint_host_port, EndpointError};
use rsetcd::proto::etcdserverpb::cluster_client::ClusterClient;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{MemberListRequest, StatusRequest};
use tonic::transport::{Channel, Endpoint};

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub endpoints: Vec<String>,
    pub conns: usize,
    pub dial_timeout: Duration,
    pub target_leader: bool,
}

/// Turns an etcd endpoint ("host:port" or "http://host:port") into a URL
/// tonic can dial.
pub fn endpoint_url(endpoint: &str) -> Result<String> {
    let endpoint = endpoint.trim();
    if endpoint.is_empty() {
        bail!("empty endpoint in --endpoints");
    }
    match endpoint_host_port(endpoint) {
        Ok(host_port) => Ok(format!("http://{host_port}")),
        Err(EndpointError::Tls) => {
            bail!("{endpoint}: TLS endpoints are not supported by rsetcd-bench")
        }
        Err(EndpointError::UnsupportedScheme) => {
            bail!("{endpoint}: unsupported endpoint scheme (use host:port or http://host:port)")
        }
    }
}

async fn dial(url: &str, dial_timeout: Duration) -> Result<Channel> {
    let mut endpoint = Endpoint::from_shared(url.to_string())
        .with_context(|| format!("invalid endpoint {url}"))?
        .tcp_nodelay(true)
        // Wide static windows rather than hyper's adaptive ones: its BDP
        // pings, sent as data arrives, count as abusive pings on Go's gRPC
        // server, which ends the connection with ENHANCE_YOUR_CALM under a
        // watch's stream of events (etcd 3.4 did, here)
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(16 << 20));
    if !dial_timeout.is_zero() {
        endpoint = endpoint.connect_timeout(dial_timeout);
    }
    endpoint
        .connect()
        .await
        .with_context(|| format!("dial error: {url}"))
}

/// Asks the endpoints, in order, who the leader is and returns the leader's
/// first advertised client URL.
async fn find_leader(urls: &[String], dial_timeout: Duration) -> Result<String> {
    let mut last_error = None;
    for url in urls {
        let status = async {
            let channel = dial(url, dial_timeout).await?;
            let status = MaintenanceClient::new(channel.clone())
                .status(StatusRequest {})
                .await
                .with_context(|| format!("status of {url}"))?
                .into_inner();
            let members = ClusterClient::new(channel)
                .member_list(MemberListRequest::default())
                .await
                .context("failed to get a member list")?
                .into_inner()
                .members;
            anyhow::Ok((status.leader, members))
        }
        .await;
        match status {
            Ok((leader, members)) => {
                let leader_urls = members
                    .into_iter()
                    .find(|member| member.id == leader)
                    .map(|member| member.client_ur_ls)
                    .unwrap_or_default();
                let first = leader_urls
                    .first()
                    .ok_or_else(|| anyhow!("failed to find a leader endpoint"))?;
                return endpoint_url(first);
            }
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error
        .unwrap_or_else(|| anyhow!("no endpoints"))
        .context("failed to find a leader endpoint"))
}

/// Dials `conns` connections: round-robin over the endpoints, or all to the
/// leader with `--target-leader` and several endpoints (with one endpoint
/// there is nothing to choose, so no lookup is made).
pub async fn connect(options: &ConnectOptions) -> Result<Vec<Channel>> {
    if options.conns == 0 {
        bail!("--conns must be at least 1");
    }
    let urls = options
        .endpoints
        .iter()
        .map(|endpoint| endpoint_url(endpoint))
        .collect::<Result<Vec<_>>>()?;
    if urls.is_empty() {
        bail!("--endpoints is empty");
    }
    let targets = if options.target_leader && urls.len() > 1 {
        vec![find_leader(&urls, options.dial_timeout).await?]
    } else {
        urls
    };
    let mut channels = Vec::with_capacity(options.conns);
    for i in 0..options.conns {
        channels.push(dial(&targets[i % targets.len()], options.dial_timeout).await?);
    }
    Ok(channels)
}

/// One KV client per benchmark client, sharing connections round-robin.
pub fn kv_clients(channels: &[Channel], clients: usize) -> Vec<KvClient<Channel>> {
    (0..clients)
        .map(|i| {
            // etcd's client accepts any message size; so do we.
            KvClient::new(channels[i % channels.len()].clone())
                .max_decoding_message_size(usize::MAX)
                .max_encoding_message_size(usize::MAX)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_accept_etcd_forms() {
        assert_eq!(
            endpoint_url("127.0.0.1:2379").unwrap(),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            endpoint_url(" http://localhost:2379").unwrap(),
            "http://localhost:2379"
        );
        assert!(endpoint_url("https://127.0.0.1:2379").is_err());
        assert!(endpoint_url("").is_err());
    }
}
