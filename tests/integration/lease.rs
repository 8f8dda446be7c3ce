//! Leases as a user sees them: a key on a lease disappears after expiry,
//! keep-alives keep it, and a kill -9 neither resets a lease to its full
//! TTL nor expires it early.

use crate::support;
use std::time::{Duration, Instant};

use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, PutRequest, RangeRequest,
};
use support::kv::{Flavor, Server};
use tonic::transport::Channel;

async fn lease_client(server: &Server) -> LeaseClient<Channel> {
    LeaseClient::connect(server.client_url()).await.unwrap()
}

async fn exists(server: &Server, key: &str) -> bool {
    let mut kv = server.kv().await.unwrap();
    let r = kv
        .range(RangeRequest {
            key: key.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    r.count == 1
}

async fn grant_and_put(server: &Server, ttl: i64, key: &str) -> i64 {
    let mut lease = lease_client(server).await;
    let id = lease
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    assert!(id > 0);
    server
        .kv()
        .await
        .unwrap()
        .put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease: id,
            ..Default::default()
        })
        .await
        .unwrap();
    id
}

#[tokio::test]
async fn expiry_and_keep_alive() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Flavor::Ours, dir.path(), &[]).await.unwrap();

    // a 5 s lease: the key lives about 5 s, then goes
    let start = Instant::now();
    grant_and_put(&server, 5, "short").await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(exists(&server, "short").await, "gone before its TTL");
    while exists(&server, "short").await {
        assert!(start.elapsed() < Duration::from_secs(9), "never expired");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(start.elapsed() >= Duration::from_secs(5), "expired early");

    // keep-alives every second keep a 3 s lease alive for 6 s
    let id = grant_and_put(&server, 3, "kept").await;
    let mut lease = lease_client(&server).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for _ in 0..6 {
        tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
        let a = answers.message().await.unwrap().unwrap();
        assert_eq!((a.id, a.ttl), (id, 3));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(exists(&server, "kept").await, "expired despite keep-alives");
    drop(tx);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(!exists(&server, "kept").await, "outlived its TTL");
    // keep-alive of a gone lease answers TTL 0
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut answers = lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(LeaseKeepAliveRequest { id }).await.unwrap();
    assert_eq!(answers.message().await.unwrap().unwrap().ttl, 0);
}

#[tokio::test]
async fn remaining_ttl_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(Flavor::Ours, dir.path(), &[]).await.unwrap();
    let id = grant_and_put(&server, 60, "long").await;
    // past two checkpoints (every 5 s): the last one is at least 5 s old
    tokio::time::sleep(Duration::from_secs(12)).await;
    server.kill();
    server.restart().await.unwrap();
    let ttl = lease_client(&server)
        .await
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ttl.granted_ttl, 60);
    assert_eq!(ttl.keys, vec![b"long".to_vec()]);
    // neither reset to 60 (plus the 1 s handover grace) nor expired early
    assert!(
        ttl.ttl > 40 && ttl.ttl <= 57,
        "remaining TTL after restart: {}",
        ttl.ttl
    );
    assert!(exists(&server, "long").await);
}
