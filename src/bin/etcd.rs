//! The `etcd` daemon. Interim argument handling until `config` lands.

use std::time::Duration;

use rsetcd::etcdmain::{self, ServeOptions};

fn main() {
    let mut o = ServeOptions {
        name: "default".into(),
        data_dir: "default.etcd".into(),
        wal_dir: None,
        snapshot_count: 100_000,
        heartbeat_interval: Duration::from_millis(100),
        election_timeout: Duration::from_millis(1000),
        listen_client_urls: vec![url::Url::parse("http://localhost:2379").unwrap()],
        advertise_client_urls: vec![url::Url::parse("http://localhost:2379").unwrap()],
        initial_advertise_peer_urls: vec![url::Url::parse("http://localhost:2380").unwrap()],
        initial_cluster: vec![("default".into(), url::Url::parse("http://localhost:2380").unwrap())],
        initial_cluster_token: "etcd-cluster".into(),
        initial_cluster_state_new: true,
        max_request_bytes: 1_572_864,
        max_txn_ops: 128,
        pre_vote: true,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for a in &args {
        if let Some((k, v)) = a.split_once('=') {
            match k {
                "--data-dir" => o.data_dir = v.into(),
                "--listen-client-urls" => o.listen_client_urls = vec![url::Url::parse(v).unwrap()],
                "--snapshot-count" => o.snapshot_count = v.parse().unwrap(),
                _ => {}
            }
        }
    }
    rsetcd::logging::init(tracing::Level::INFO, rsetcd::logging::Format::Json, &[rsetcd::logging::Output::Stderr]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    if let Err(e) = rt.block_on(etcdmain::run(o)) {
        eprintln!("etcd: {e:#}");
        std::process::exit(1);
    }
}
