//! Watch against etcd 3.4: the same history on both servers, then the same
//! watch requests (history replay from a start revision, prefix and range,
//! prev_kv, NOPUT/NODELETE filters, a compacted start revision, cancel);
//! the responses must match, member ids and raft term aside.

use crate::support;
use std::time::Duration;

use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::{
    watch_create_request::FilterType, watch_request, CompactionRequest, DeleteRangeRequest,
    PutRequest, WatchCancelRequest, WatchCreateRequest, WatchRequest, WatchResponse,
};
use support::kv::{reference_available, Flavor, Server};
use tonic::transport::Channel;

async fn history(kv: &mut KvClient<Channel>) {
    let put = |k: &str, v: &str| PutRequest {
        key: k.into(),
        value: v.into(),
        ..Default::default()
    };
    for (k, v) in [
        ("a/1", "x"),
        ("a/2", "y"),
        ("b/1", "z"),
        ("a/1", "x2"),
        ("c", "w"),
    ] {
        kv.put(put(k, v)).await.unwrap();
    }
    kv.delete_range(DeleteRangeRequest {
        key: b"a/2".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    kv.put(put("a/3", "v")).await.unwrap();
    kv.delete_range(DeleteRangeRequest {
        key: b"a/".to_vec(),
        range_end: b"a0".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    kv.put(put("b/2", "q")).await.unwrap();
}

fn create(
    key: &str,
    end: &str,
    start: i64,
    prev_kv: bool,
    filters: Vec<FilterType>,
) -> WatchRequest {
    WatchRequest {
        request_union: Some(watch_request::RequestUnion::CreateRequest(
            WatchCreateRequest {
                key: key.into(),
                range_end: end.into(),
                start_revision: start,
                prev_kv,
                filters: filters.into_iter().map(|f| f as i32).collect(),
                ..Default::default()
            },
        )),
    }
}

/// Sends `requests` on one stream and collects `n` responses, masked.
async fn watch(channel: Channel, requests: Vec<WatchRequest>, n: usize) -> Vec<WatchResponse> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    // etcd sends the response headers only with its first message, so the
    // requests must flow while the call is being set up.
    let sender = tokio::spawn(async move {
        for r in requests {
            tx.send(r).await.unwrap();
            // one request at a time, so both servers see the same order
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tx
    });
    let mut stream = WatchClient::new(channel)
        .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let _keep_open = sender.await.unwrap();
    let mut out = Vec::new();
    while out.len() < n {
        match tokio::time::timeout(Duration::from_secs(5), stream.message()).await {
            Ok(Ok(Some(mut r))) => {
                if let Some(h) = r.header.as_mut() {
                    h.cluster_id = 0;
                    h.member_id = 0;
                    h.raft_term = 0;
                }
                out.push(r);
            }
            other if n == usize::MAX => {
                drop(other);
                break;
            }
            other => panic!("stream ended after {} responses: {other:?}", out.len()),
        }
    }
    // watchers on one stream answer independently: compare per watcher
    out.sort_by_key(|r| (r.watch_id, !r.created));
    out
}

async fn scenario(server: &Server) -> Vec<Vec<WatchResponse>> {
    let mut kv = server.kv().await.unwrap();
    history(&mut kv).await;
    let channel = Channel::from_shared(server.client_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut out = Vec::new();
    // replay the whole history of a prefix, with prev_kv
    out.push(
        watch(
            channel.clone(),
            vec![create("a/", "a0", 1, true, vec![])],
            2,
        )
        .await,
    );
    // a range, deletes filtered out; a single key, puts filtered out
    out.push(
        watch(
            channel.clone(),
            vec![
                create("a/", "b/2", 2, false, vec![FilterType::Nodelete]),
                create("a/1", "", 2, false, vec![FilterType::Noput]),
            ],
            4,
        )
        .await,
    );
    // from-key ("\0" range end) from a middle revision
    out.push(
        watch(
            channel.clone(),
            vec![create("b", "\0", 4, false, vec![])],
            2,
        )
        .await,
    );
    // cancel: the canceled response
    out.push(
        watch(
            channel.clone(),
            vec![
                create("zzz", "", 0, false, vec![]),
                WatchRequest {
                    request_union: Some(watch_request::RequestUnion::CancelRequest(
                        WatchCancelRequest { watch_id: 0 },
                    )),
                },
            ],
            2,
        )
        .await,
    );
    // an empty range is refused at creation
    out.push(watch(channel.clone(), vec![create("b", "a", 0, false, vec![])], 1).await);
    // a negative start before any compaction: below -1 the watch ends as
    // compacted at -1; -1 itself watches from now on (a put then shows it)
    out.push(
        watch(
            channel.clone(),
            vec![create("a/", "a0", -5, false, vec![])],
            2,
        )
        .await,
    );
    let mut writer = kv.clone();
    let put_later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        writer
            .put(PutRequest {
                key: b"n".to_vec(),
                value: b"x".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
    });
    out.push(watch(channel.clone(), vec![create("n", "", -1, false, vec![])], 2).await);
    put_later.await.unwrap();
    // after compaction, a watch from an old revision is canceled
    kv.compact(CompactionRequest {
        revision: 6,
        physical: true,
    })
    .await
    .unwrap();
    out.push(
        watch(
            channel.clone(),
            vec![create("a/", "a0", 3, false, vec![])],
            2,
        )
        .await,
    );
    // after it, any negative start ends as compacted at the compaction
    out.push(
        watch(
            channel.clone(),
            vec![create("a/", "a0", -1, false, vec![])],
            2,
        )
        .await,
    );
    out
}

#[tokio::test]
async fn watch_answers_match_etcd() {
    if !reference_available() {
        eprintln!("skipping: /usr/bin/etcd is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ours = Server::start(Flavor::Ours, &dir.path().join("ours"), &[])
        .await
        .unwrap();
    let reference = Server::start(Flavor::Reference, &dir.path().join("etcd"), &[])
        .await
        .unwrap();
    let (mine, theirs) = tokio::join!(scenario(&ours), scenario(&reference));
    for (i, (m, t)) in mine.iter().zip(&theirs).enumerate() {
        assert_eq!(m, t, "scenario {i} differs\nours: {m:#?}\netcd: {t:#?}");
    }
}

/// A replay larger than --max-request-bytes, asked with `fragment`, comes
/// in parts; all but the last are marked as fragments, as etcd sends them.
#[tokio::test]
async fn fragmented_replay_matches_etcd() {
    if !reference_available() {
        eprintln!("skipping: /usr/bin/etcd is not installed");
        return;
    }
    async fn run(server: &Server) -> Vec<WatchResponse> {
        let mut kv = server.kv().await.unwrap();
        for i in 0..5 {
            kv.put(PutRequest {
                key: format!("f/{i}").into_bytes(),
                value: vec![b'x'; 250_000],
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let channel = Channel::from_shared(server.client_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut req = create("f/", "f0", 2, false, vec![]);
        if let Some(watch_request::RequestUnion::CreateRequest(c)) = req.request_union.as_mut() {
            c.fragment = true;
        }
        // everything that arrives until the stream goes quiet
        watch(channel, vec![req], usize::MAX).await
    }
    let dir = tempfile::tempdir().unwrap();
    // responses are split past max-request-bytes + 512 KiB (etcd's
    // grpcOverheadBytes): 5 × 250 kB comes in two parts
    let flags = ["--max-request-bytes=300000"];
    let ours = Server::start(Flavor::Ours, &dir.path().join("ours"), &flags)
        .await
        .unwrap();
    let reference = Server::start(Flavor::Reference, &dir.path().join("etcd"), &flags)
        .await
        .unwrap();
    let (mine, theirs) = tokio::join!(run(&ours), run(&reference));
    assert_eq!(
        theirs.iter().filter(|r| r.fragment).count(),
        1,
        "etcd split the replay: {theirs:#?}"
    );
    assert_eq!(mine, theirs);
}

/// A client that closes its sending side keeps its watchers: etcd's
/// recvLoop returns on EOF and the stream lives until the client leaves
/// (the JSON gateway's watch relies on it: its request body ends at once).
#[tokio::test]
async fn closing_the_sending_side_keeps_the_watch() {
    if !reference_available() {
        eprintln!("skipping: /usr/bin/etcd is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for flavor in [Flavor::Reference, Flavor::Ours] {
        let server = Server::start(flavor, &dir.path().join(format!("{flavor:?}")), &[])
            .await
            .unwrap();
        let channel = tonic::transport::Endpoint::from_shared(server.client_url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let requests = tokio_stream::iter(vec![create("k", "", 0, false, vec![])]);
        let mut stream = WatchClient::new(channel.clone())
            .watch(requests)
            .await
            .unwrap()
            .into_inner();
        let first = stream.message().await.unwrap().expect("created");
        assert!(first.created, "{flavor:?}: {first:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        KvClient::new(channel)
            .put(PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
        let event = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .unwrap_or_else(|_| panic!("{flavor:?}: no event after the sending side closed"))
            .unwrap()
            .expect("an event, not the end");
        assert_eq!(event.events.len(), 1, "{flavor:?}: {event:?}");
    }
}
