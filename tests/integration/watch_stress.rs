//! Watch under load: 1000 watchers (prefix and single key) whose clients
//! do not read at all while writers make 5000 changes (puts, deletes,
//! multi-key txns), then read — some deliberately slowly. Every watcher
//! must see exactly the events of its range, in revision order, with no
//! duplicates and no gaps, each revision's events in one response; and the
//! stalled readers must not hold the writers down (compared with the same
//! load and no watchers).

use crate::support;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rsetcd::proto::etcdserverpb::kv_client::KvClient;
use rsetcd::proto::etcdserverpb::watch_client::WatchClient;
use rsetcd::proto::etcdserverpb::{
    request_op, watch_request, DeleteRangeRequest, PutRequest, RequestOp, TxnRequest,
    WatchCreateRequest, WatchRequest,
};
use support::kv::{Flavor, Server};
use tokio::sync::Mutex;
use tonic::transport::Channel;

const STREAMS: usize = 50;
const WATCHERS_PER_STREAM: usize = 20;
const OPS: usize = 5000;
const KEYS: usize = 40;

/// (revision, key, is_put)
type Seen = (i64, String, bool);

fn key(i: usize) -> String {
    format!("p{}/k{}", i % 4, i)
}

/// Writes OPS changes with `writers` concurrent clients; returns the
/// expected event log (in revision order) and the time it took.
async fn write_load(kv: KvClient<Channel>, writers: usize) -> (Vec<Seen>, Duration) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let mut kv = kv.clone();
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            for n in (w..OPS).step_by(writers) {
                let k = key((n * 7 + w) % KEYS);
                match n % 5 {
                    0..=2 => {
                        let r = kv
                            .put(PutRequest {
                                key: k.clone().into_bytes(),
                                value: format!("v{n}").into_bytes(),
                                ..Default::default()
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        log.lock().await.push((r.header.unwrap().revision, k, true));
                    }
                    3 => {
                        let r = kv
                            .delete_range(DeleteRangeRequest {
                                key: k.clone().into_bytes(),
                                ..Default::default()
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        if r.deleted == 1 {
                            log.lock()
                                .await
                                .push((r.header.unwrap().revision, k, false));
                        }
                    }
                    _ => {
                        // a txn putting three distinct keys at one revision
                        let ks: Vec<String> = (0..3).map(|j| key((n + j * 13) % KEYS)).collect();
                        let ops = ks
                            .iter()
                            .map(|k| RequestOp {
                                request: Some(request_op::Request::RequestPut(PutRequest {
                                    key: k.clone().into_bytes(),
                                    value: b"t".to_vec(),
                                    ..Default::default()
                                })),
                            })
                            .collect();
                        let r = kv
                            .txn(TxnRequest {
                                success: ops,
                                ..Default::default()
                            })
                            .await
                            .unwrap()
                            .into_inner();
                        let rev = r.header.unwrap().revision;
                        let mut log = log.lock().await;
                        for k in ks {
                            log.push((rev, k, true));
                        }
                    }
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let took = start.elapsed();
    let mut log = Arc::try_unwrap(log).unwrap().into_inner();
    // stable: events of one txn keep their op order
    log.sort_by_key(|(rev, _, _)| *rev);
    (log, took)
}

/// One watcher's range: a prefix or a single key.
#[derive(Clone)]
struct Range {
    key: String,
    prefix: bool,
}

impl Range {
    fn matches(&self, k: &str) -> bool {
        if self.prefix {
            k.starts_with(&self.key)
        } else {
            k == self.key
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_watchers_see_exactly_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(Flavor::Ours, dir.path(), &[]).await.unwrap();
    let kv = server.kv().await.unwrap();

    // the same load with no watchers, for the throughput comparison
    let (_, alone) = write_load(kv.clone(), 16).await;
    let start_rev = kv
        .clone()
        .range(rsetcd::proto::etcdserverpb::RangeRequest {
            key: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .header
        .unwrap()
        .revision
        + 1;

    let mut readers = Vec::new();
    let (go_tx, go_rx) = tokio::sync::watch::channel(false);
    let channel = Channel::from_shared(server.client_url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    for s in 0..STREAMS {
        let slow = s % 5 == 0;
        let ranges: Vec<Range> = (0..WATCHERS_PER_STREAM)
            .map(|w| {
                let n = s * WATCHERS_PER_STREAM + w;
                if n % 2 == 0 {
                    Range {
                        key: format!("p{}/", n % 4),
                        prefix: true,
                    }
                } else {
                    Range {
                        key: key(n % KEYS),
                        prefix: false,
                    }
                }
            })
            .collect();
        let (tx, rx) = tokio::sync::mpsc::channel(WATCHERS_PER_STREAM);
        for r in &ranges {
            let mut range_end = Vec::new();
            if r.prefix {
                range_end = r.key.clone().into_bytes();
                *range_end.last_mut().unwrap() += 1;
            }
            tx.send(WatchRequest {
                request_union: Some(watch_request::RequestUnion::CreateRequest(
                    WatchCreateRequest {
                        key: r.key.clone().into_bytes(),
                        range_end,
                        start_revision: start_rev,
                        ..Default::default()
                    },
                )),
            })
            .await
            .unwrap();
        }
        let mut stream = WatchClient::new(channel.clone())
            .watch(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        // how many "done" markers each watcher's range holds (one per key)
        let markers: Vec<usize> = ranges
            .iter()
            .map(|r| (0..KEYS).filter(|i| r.matches(&key(*i))).count())
            .collect();
        let mut go = go_rx.clone();
        readers.push(tokio::spawn(async move {
            let _keep_open = tx;
            // stalled until the writers are done: the server must buffer
            // nothing unbounded and the writers must not wait
            let _ = go.wait_for(|g| *g).await;
            let mut seen: BTreeMap<i64, Vec<Seen>> = BTreeMap::new();
            let mut done: BTreeMap<i64, usize> = BTreeMap::new();
            let mut last_rev: BTreeMap<i64, i64> = BTreeMap::new();
            let mut created = 0;
            let mut split_revisions = 0;
            let all_done = |done: &BTreeMap<i64, usize>| {
                (0..WATCHERS_PER_STREAM)
                    .all(|id| done.get(&(id as i64)).copied().unwrap_or(0) >= markers[id])
            };
            while !all_done(&done) {
                let msg = tokio::time::timeout(Duration::from_secs(30), stream.message()).await;
                let Ok(Ok(Some(resp))) = msg else { break };
                if resp.created {
                    created += 1;
                    continue;
                }
                let id = resp.watch_id;
                if let (Some(first), Some(prev)) = (resp.events.first(), last_rev.get(&id)) {
                    // a revision never continues into the next response
                    if first.kv.as_ref().unwrap().mod_revision == *prev {
                        split_revisions += 1;
                    }
                }
                for e in &resp.events {
                    let kv = e.kv.as_ref().unwrap();
                    last_rev.insert(id, kv.mod_revision);
                    if kv.value == b"done" {
                        *done.entry(id).or_default() += 1;
                        continue;
                    }
                    seen.entry(id).or_default().push((
                        kv.mod_revision,
                        String::from_utf8(kv.key.clone()).unwrap(),
                        e.r#type == 0,
                    ));
                }
                if slow {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            (ranges, created, seen, done, markers, split_revisions)
        }));
    }

    // let every stream register its watchers before the load starts
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (expected, with_watchers) = write_load(kv.clone(), 16).await;
    go_tx.send(true).unwrap();
    // a final marker every watcher's range contains: one put per prefix and key
    let mut marker_kv = kv.clone();
    for i in 0..KEYS {
        marker_kv
            .put(PutRequest {
                key: key(i).into_bytes(),
                value: b"done".to_vec(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    for r in readers {
        let (ranges, created, seen, done, markers, split) = r.await.unwrap();
        assert_eq!(created, WATCHERS_PER_STREAM, "every watcher created");
        assert_eq!(split, 0, "a revision's events were split across responses");
        for (id, range) in ranges.iter().enumerate() {
            let got = seen.get(&(id as i64)).cloned().unwrap_or_default();
            let want: Vec<Seen> = expected
                .iter()
                .filter(|(_, k, _)| range.matches(k))
                .cloned()
                .collect();
            assert_eq!(
                got,
                want,
                "watcher {id} ({}{}) saw other events than its range had",
                range.key,
                if range.prefix { "*" } else { "" }
            );
            assert_eq!(
                done.get(&(id as i64)).copied().unwrap_or(0),
                markers[id],
                "watcher {id} missed final markers"
            );
        }
    }
    eprintln!("5000 writes: {alone:?} alone, {with_watchers:?} with 1000 stalled watchers");
    // Blocking on a stalled watcher would stop the writers outright; allow
    // for this machine's noise.
    assert!(
        with_watchers < alone * 2 + Duration::from_secs(2),
        "writers held down by stalled watchers: {alone:?} alone vs {with_watchers:?}"
    );
}
