//! Every file and directory a member writes is private to its user, as
//! etcd's (directories 0700, files 0600): the WAL and the lock file, the
//! backend and its defragmented copy, a --wal-dir outside the data dir, and
//! a data dir an operator made world-readable, narrowed at start with
//! etcd's "check file permission" warning. (Backend snapshots a member
//! sends and receives are checked in tests/integration/auth_cluster.rs, which already
//! brings a member back through one.)

use crate::support;
use std::os::unix::fs::PermissionsExt as _;
use std::time::Duration;

use rsetcd::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use rsetcd::proto::etcdserverpb::{DefragmentRequest, PutRequest};
use support::kv::{Flavor, Server};
use support::modes::{file_count, too_wide};

#[tokio::test]
async fn a_member_writes_nothing_other_users_can_read() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let wal_dir = tmp.path().join("elsewhere/wal");
    // As `mkdir` with a common umask leaves it: readable by everyone.
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();

    let wal_flag = format!("--wal-dir={}", wal_dir.display());
    let mut server = Server::start(Flavor::Ours, &data_dir, &[&wal_flag, "--snapshot-count=20"])
        .await
        .unwrap();
    let mut kv = server.kv().await.unwrap();
    for i in 0..100 {
        kv.put(PutRequest {
            key: format!("k{i}").into_bytes(),
            value: vec![b'v'; 1000],
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut maintenance = MaintenanceClient::connect(server.client_url())
        .await
        .unwrap();
    maintenance.defragment(DefragmentRequest {}).await.unwrap();
    let log = server.log();
    assert!(
        log.contains("check file permission") && log.contains("drwxr-xr-x"),
        "the wide data dir should be reported as etcd does:\n{log}"
    );
    server.terminate(Duration::from_secs(20)).await.unwrap();

    for root in [&data_dir, &wal_dir] {
        assert!(
            file_count(root) >= 2,
            "nothing written under {}",
            root.display()
        );
        let wide = too_wide(root);
        assert!(wide.is_empty(), "wider than etcd's 0700/0600: {wide:#?}");
    }
    // The WAL dir's parent was created for it, privately too.
    assert!(too_wide(&tmp.path().join("elsewhere")).is_empty());

    // A restart on the same dirs keeps them private and serves the data.
    server.restart().await.unwrap();
    let got = server
        .kv()
        .await
        .unwrap()
        .range(rsetcd::proto::etcdserverpb::RangeRequest {
            key: b"k99".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.kvs.len(), 1);
    assert!(too_wide(&data_dir).is_empty());
}
