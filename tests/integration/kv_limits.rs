//! Limits and keys at their edges, against our server and etcd 3.4 with the
//! same flags: keys far beyond LMDB's 511-byte key limit, --max-request-bytes,
//! --max-txn-ops and empty keys give etcd's answers.

use crate::support;
use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::{
    request_op, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
};
use support::kv::{reference_available, Flavor, Server};
use tonic::transport::Channel;

/// What a client sees of one call: the answer's interesting parts, or the
/// gRPC code and message.
#[derive(Debug, PartialEq)]
enum Seen {
    Ok(String),
    Err(tonic::Code, String),
}

fn seen<T>(r: Result<tonic::Response<T>, tonic::Status>, f: impl Fn(T) -> String) -> Seen {
    match r {
        Ok(resp) => Seen::Ok(f(resp.into_inner())),
        Err(s) => Seen::Err(s.code(), s.message().to_string()),
    }
}

async fn scenario(kv: &mut KvClient<Channel>) -> Vec<Seen> {
    let long_a = vec![b'a'; 5000];
    let mut long_b = long_a.clone();
    long_b.push(b'b');
    let mut out = Vec::new();
    for key in [&long_a, &long_b] {
        out.push(seen(
            kv.put(PutRequest {
                key: key.clone(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await,
            |r| format!("put rev {}", r.header.map(|h| h.revision).unwrap_or(0)),
        ));
    }
    // a prefix range over both long keys, then a single long key
    out.push(seen(
        kv.range(RangeRequest {
            key: long_a.clone(),
            range_end: {
                let mut e = long_a.clone();
                e.push(0xff);
                e
            },
            ..Default::default()
        })
        .await,
        |r| {
            format!(
                "count {} lens {:?}",
                r.count,
                r.kvs.iter().map(|k| k.key.len()).collect::<Vec<_>>()
            )
        },
    ));
    out.push(seen(
        kv.delete_range(DeleteRangeRequest {
            key: long_b.clone(),
            prev_kv: true,
            ..Default::default()
        })
        .await,
        |r| format!("deleted {} prev {}", r.deleted, r.prev_kvs.len()),
    ));
    // over --max-request-bytes (set to 10000 below) but within gRPC's slack
    out.push(seen(
        kv.put(PutRequest {
            key: b"big".to_vec(),
            value: vec![b'x'; 20_000],
            ..Default::default()
        })
        .await,
        |_| "accepted".into(),
    ));
    // --max-txn-ops=3
    let put = |k: &str| RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: k.as_bytes().to_vec(),
            ..Default::default()
        })),
    };
    out.push(seen(
        kv.txn(TxnRequest {
            success: vec![put("t1"), put("t2"), put("t3"), put("t4")],
            ..Default::default()
        })
        .await,
        |_| "accepted".into(),
    ));
    out.push(seen(
        kv.txn(TxnRequest {
            success: vec![put("t1"), put("t2"), put("t3")],
            ..Default::default()
        })
        .await,
        |r| format!("txn ok {}", r.succeeded),
    ));
    out.push(seen(kv.put(PutRequest::default()).await, |_| {
        "accepted".into()
    }));
    out.push(seen(kv.range(RangeRequest::default()).await, |_| {
        "accepted".into()
    }));
    out
}

#[tokio::test]
async fn limits_and_long_keys_match_etcd() {
    let flags = ["--max-request-bytes=10000", "--max-txn-ops=3"];
    let dir = tempfile::tempdir().unwrap();
    let ours = Server::start(Flavor::Ours, &dir.path().join("ours"), &flags)
        .await
        .expect("start our etcd");
    let mine = scenario(&mut ours.kv().await.unwrap()).await;
    // What etcd answers, written down so the test also runs without it.
    assert_eq!(mine[0], Seen::Ok("put rev 2".into()));
    assert_eq!(mine[2], Seen::Ok("count 2 lens [5000, 5001]".into()));
    assert_eq!(
        mine[4],
        Seen::Err(
            tonic::Code::InvalidArgument,
            "etcdserver: request is too large".into()
        )
    );
    assert_eq!(
        mine[5],
        Seen::Err(
            tonic::Code::InvalidArgument,
            "etcdserver: too many operations in txn request".into()
        )
    );
    assert_eq!(
        mine[7],
        Seen::Err(
            tonic::Code::InvalidArgument,
            "etcdserver: key is not provided".into()
        )
    );
    if !reference_available() {
        eprintln!("skipping the comparison: /usr/bin/etcd is not installed");
        return;
    }
    let reference = Server::start(Flavor::Reference, &dir.path().join("etcd"), &flags)
        .await
        .expect("start etcd");
    let theirs = scenario(&mut reference.kv().await.unwrap()).await;
    assert_eq!(mine, theirs);
}

/// --max-concurrent-streams bounds the streams of one client connection
/// (HTTP/2's SETTINGS_MAX_CONCURRENT_STREAMS, as etcd's gRPC server): with
/// 2, two watch streams held open keep a third call on the same connection
/// waiting until one of them ends.
#[tokio::test]
async fn max_concurrent_streams_holds_a_third_stream_back() {
    use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
    use rsetcd::proto::etcdserverpb::WatchRequest;
    use std::time::Duration;
    use tokio_stream::wrappers::ReceiverStream;

    let dir = tempfile::tempdir().expect("temp dir");
    let server = Server::start(
        Flavor::Ours,
        &dir.path().join("ours"),
        &["--max-concurrent-streams=2"],
    )
    .await
    .expect("start");
    let channel = Channel::from_shared(server.client_url())
        .expect("url")
        .connect()
        .await
        .expect("connect");
    let mut held = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = tokio::sync::mpsc::channel::<WatchRequest>(1);
        let stream = WatchClient::new(channel.clone())
            .watch(ReceiverStream::new(rx))
            .await
            .expect("open a watch stream")
            .into_inner();
        held.push((tx, stream));
    }
    let range = || {
        let mut kv = KvClient::new(channel.clone());
        async move {
            kv.range(RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })
            .await
        }
    };
    let third = tokio::time::timeout(Duration::from_millis(1500), range()).await;
    assert!(
        third.is_err(),
        "a third stream was served beside two open ones: {third:?}"
    );
    // one stream ends (the client cancels it): the next call goes through
    drop(held.pop());
    let after = tokio::time::timeout(Duration::from_secs(10), range()).await;
    assert!(
        matches!(after, Ok(Ok(_))),
        "no call served after a stream ended: {after:?}"
    );
}
