//! Heavy reads do not starve a member's other work: clients ranging over
//! the whole keyspace again and again, on every member of a three-member
//! cluster, must not delay raft traffic into an election, nor a lease's
//! keep-alives into its expiry. (Whole-keyspace ranges run on blocking
//! threads, walk the key index a chunk at a time, and history is read in
//! bounded steps.) `RSETCD_READ_LOAD=full` runs the 100,000 keys for
//! 30 s; the default is 20,000 keys for 8 s.

use crate::support;
use std::time::{Duration, Instant};

use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::lease_client::LeaseClient;
use rsetcd::proto::etcdserverpb::{
    request_op, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseTimeToLiveRequest, PutRequest,
    RangeRequest, RequestOp, TxnRequest,
};
use support::cluster::{Cluster, Flavor};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_keyspace_ranges_cause_no_election_and_no_lease_loss() {
    let full = std::env::var("RSETCD_READ_LOAD").is_ok_and(|v| v == "full");
    let (keys, duration) = if full {
        (100_000, Duration::from_secs(30))
    } else {
        (20_000, Duration::from_secs(8))
    };
    let mut cluster = Cluster::start(
        Flavor::Ours,
        3,
        &["--heartbeat-interval=100", "--election-timeout=1000"],
    )
    .await
    .unwrap();
    let leader = cluster.leader(Duration::from_secs(10)).await.unwrap();

    // 128 puts per txn: the load is quick to write
    let mut kv = cluster.members[leader].kv().await.unwrap();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(128) {
        let success = chunk
            .iter()
            .map(|i| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: format!("load/{i:06}").into_bytes(),
                    value: vec![b'v'; 100],
                    ..Default::default()
                })),
            })
            .collect();
        kv.txn(TxnRequest {
            success,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let terms: Vec<u64> = {
        let mut t = Vec::new();
        for m in &cluster.members {
            t.push(m.status().await.unwrap().header.unwrap().raft_term);
        }
        t
    };

    // a 5 s lease kept alive through a follower
    let follower = (leader + 1) % 3;
    let mut lease = LeaseClient::new(cluster.members[follower].channel().await.unwrap());
    let id = lease
        .lease_grant(LeaseGrantRequest { ttl: 5, id: 0 })
        .await
        .unwrap()
        .into_inner()
        .id;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut answers = lease
        .lease_keep_alive(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let keeper = tokio::spawn(async move {
        loop {
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                return;
            }
            match answers.message().await {
                Ok(Some(r)) if r.ttl > 0 => {}
                other => panic!("keep-alive failed: {other:?}"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });

    let until = Instant::now() + duration;
    let mut readers = Vec::new();
    for r in 0..4 {
        let mut kv = KvClient::new(cluster.members[r % 3].channel().await.unwrap())
            .max_decoding_message_size(64 << 20);
        readers.push(tokio::spawn(async move {
            let mut ranges = 0;
            while Instant::now() < until {
                let all = kv
                    .range(RangeRequest {
                        key: vec![0],
                        range_end: vec![0],
                        serializable: r % 2 == 0,
                        ..Default::default()
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(all.count, keys as i64);
                ranges += 1;
            }
            ranges
        }));
    }
    for r in readers {
        assert!(r.await.unwrap() > 0);
    }
    assert!(!keeper.is_finished(), "the keep-alive loop ended");
    keeper.abort();

    let ttl = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await
        .unwrap()
        .into_inner();
    assert!(ttl.ttl > 0, "the lease expired under read load: {ttl:?}");
    for (m, before) in cluster.members.iter().zip(terms) {
        let now = m.status().await.unwrap().header.unwrap().raft_term;
        assert_eq!(now, before, "an election happened under read load");
    }
}
